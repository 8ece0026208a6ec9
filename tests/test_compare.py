"""compare.py on two hand-made run directories, and its bad inputs."""

import json
import os

import numpy as np
import pytest
from PIL import Image

import compare
from tests.helpers import make_tiny_snapshot, tiny_config

SEEDS = 3

# (kimg, sec_per_tick, sec_per_kimg, peak_mem_gb) per tick; the first
# tick's sec/kimg (compilation) is an outlier the median must leave out.
TICKS = [
    (4.0, 400.0, 100.0, 1.5),
    (8.0, 40.0, 10.0, 2.5),
    (12.0, 48.0, 12.0, 2),
]
# run A: best 30.0 at kimg 8, final (network-final = kimg 12) 35.0.
METRIC_A = [
    "network-snapshot-000004 time 12s fid10k 80.5000",
    "network-snapshot-000008 time 1m 02s fid10k 40.0000",
    "network-snapshot-000008 time 11s fid10k 30.0000",  # re-run: latest wins
    "network-final time 13s fid10k 35.0000",
]
# run B (stylegan, 8x8): best = final = 20.0 at kimg 12.
METRIC_B = [
    "network-snapshot-000004 time 12s fid10k 90.0000",
    "network-final time 13s fid10k 20.0000",
]


def make_run(path, metric_lines, res=16, **changes):
    """A run directory as train.py leaves it, without training."""
    path.mkdir(parents=True)
    cfg = make_tiny_snapshot(path / "network-final.pkl", res=res, **changes)
    assert cfg == tiny_config(res, **changes)
    (path / "config.json").write_text(cfg.to_json() + "\n")
    rows = []
    for i, (kimg, spt, spk, mem) in enumerate(TICKS):
        row = {
            "Progress/kimg": kimg,
            "Progress/tick": i + 1,
            "Timing/sec_per_tick": spt,
            "Timing/sec_per_kimg": spk,
            "Resources/peak_mem_gb": mem,
            # run A's D wins more; means over the last quarter (tick 3)
            "Loss/G/loss": 1.0 + i * (res == 16),
            "Loss/D/loss": 1.2 - 0.1 * i * (res == 16),
            "Loss/D/reg": 0.05 * (i + 1),
            "Loss/scores/real": 0.5 * i,
            "Loss/scores/fake": -0.25 * i,
        }
        for r in range(2, int(np.log2(res)) + 1) if res == 16 else [3]:
            row[f"Loss/D/r1/{2**r}x{2**r}"] = 0.001 * 2**r * (i + 1)
        if i != 1:  # image snapshots at ticks 1 and 3 only
            for r in range(2, int(np.log2(res))):
                row[f"Consistency/{2**r}x{2**r}"] = 0.1 * r + 0.01 * i
        rows.append(json.dumps(row, sort_keys=True))
    (path / "stats.jsonl").write_text("\n".join(rows) + "\n")
    (path / "metric-fid10k.txt").write_text("\n".join(metric_lines) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    a = make_run(root / "00000-msg-1gpu", METRIC_A, name="msg-tiny")
    b = make_run(
        root / "00001-sg-1gpu",
        METRIC_B,
        res=8,
        name="sg-tiny",
        architecture="stylegan",
    )
    return a, b


@pytest.fixture(scope="module")
def outdir(runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp") / "new" / "compare"
    code = compare.run_cli(
        compare.main, [*runs, f"--outdir={out}", f"--seeds=0-{SEEDS - 1}"]
    )
    assert code == 0
    return out


def run(*argv):
    return compare.run_cli(compare.main, [str(a) for a in argv])


def fails(capsys, *argv):
    """Run, expect exit 2, return the single error line."""
    with pytest.raises(SystemExit) as e:
        run(*argv)
    assert e.value.code == 2
    errors = [ln for ln in capsys.readouterr().err.splitlines() if ln]
    assert len(errors) == 1, errors
    return errors[0]


@pytest.mark.parametrize(
    "name",
    [
        "fid_vs_kimg.png",
        "fid_vs_time.png",
        "losses.png",
        "r1_scales.png",
        "scale_consistency.png",
    ],
)
def test_plots_are_pngs(outdir, name):
    with Image.open(outdir / name) as img:
        assert img.format == "PNG"
        assert img.width > 200 and img.height > 200
        assert np.asarray(img.convert("L")).std() > 0
    assert not [f for f in os.listdir(outdir) if f.endswith(".tmp")]


def test_table(outdir):
    text = (outdir / "comparison.md").read_text().split("## The game")[0]
    rows = {
        line.split("|")[1].strip(): [c.strip() for c in line.split("|")[1:-1]]
        for line in text.splitlines()
        if line.startswith("| ") and "tiny" in line
    }
    assert set(rows) == {"msg-tiny", "sg-tiny"}
    # config, run, kimg, best, best at, final, sec/kimg, img/s, mem, G, D
    a, b = rows["msg-tiny"], rows["sg-tiny"]
    assert a[2:9] == [
        "12",
        "30.0000",
        "8",
        "35.0000",
        "11.00",  # median of 10 and 12: the 100 of tick 1 is left out
        "90.9",  # 1000 / 11
        "2.50",
    ]
    assert b[3:6] == ["20.0000", "12", "20.0000"]
    g_a, d_a = (int(x.replace(",", "")) for x in a[9:11])
    g_b, d_b = (int(x.replace(",", "")) for x in b[9:11])
    assert min(g_a, d_a, g_b, d_b) > 0
    assert g_b < g_a  # an 8x8 G has one block less than 16x16


def test_the_games_late_means_are_tabulated(outdir):
    text = (outdir / "comparison.md").read_text()
    table = text[text.index("## The game") :].splitlines()
    head = [c.strip() for c in table[2].split("|")[1:-1]]
    assert head == [
        "config",
        "D/loss",
        "D/reg",
        "G/loss",
        "scores/real",
        "scores/fake",
        "D/r1/4x4",
        "D/r1/8x8",
        "D/r1/16x16",
    ]
    rows = {
        line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
        for line in table
        if "tiny" in line
    }
    # the last quarter of 12 kimg holds only the tick at 12 (i = 2)
    game = ["0.1500", "3.0000", "1.0000", "-0.5000"]
    assert rows["msg-tiny"] == ["1.0000", *game, "0.0120", "0.0240", "0.0480"]
    game[1] = "1.0000"  # run B's G loss stays at 1
    assert rows["sg-tiny"] == ["1.2000", *game, "-", "0.0240", "-"]


def test_loss_means_average_the_last_quarter():
    rows = [{"Progress/kimg": k, "Loss/G/loss": float(k)} for k in range(1, 9)]
    rows[-1]["Loss/D/loss"] = 2.0  # a statistic only the last tick has
    run = compare.Run(path="r", cfg=None, rows=rows)
    assert compare.loss_means(run) == {"Loss/G/loss": 7.0, "Loss/D/loss": 2.0}


def test_samples_size(outdir):
    margin = compare.label_margin(["msg-tiny", "sg-tiny"])
    with Image.open(outdir / "samples.png") as img:
        assert img.mode == "RGB"
        # rows = runs, cols = seeds, all at the largest resolution, 16
        assert img.size == (margin + SEEDS * 16, 2 * 16)
        pixels = np.asarray(img)
    # The 8x8 run is nearest-upsampled: 2x2 blocks of equal pixels.
    row_b = pixels[16:, margin:]
    assert np.array_equal(row_b[::2, ::2], row_b[1::2, 1::2])
    assert pixels[:, :margin].max() > 0  # a label was drawn


def test_training_hours():
    rows = [
        {"Progress/kimg": k, "Timing/sec_per_tick": s} for k, s, _, _ in TICKS
    ]
    assert compare.training_hours(rows, 4) == pytest.approx(400 / 3600)
    assert compare.training_hours(rows, 8) == pytest.approx(440 / 3600)
    assert compare.training_hours(rows, 12) == pytest.approx(488 / 3600)
    # Snapshot names floor the kimg: 8 is the tick that reached 8.03.
    rows[1]["Progress/kimg"] = 8.03
    assert compare.training_hours(rows, 8) == pytest.approx(440 / 3600)


def test_labels_number_runs_that_share_a_config():
    def fake(path, name, **changes):
        cfg = tiny_config(name=name, **changes)
        return compare.Run(path=path, cfg=cfg, rows=[])

    runs = [
        fake("r/00003-a-1gpu", "msg"),
        fake("r/00007-b-1gpu", "msg"),
        fake("r/00008-c", "sg"),
    ]
    assert compare.run_labels(runs) == ["msg (00003)", "msg (00007)", "sg"]
    # An ablation by overrides is labelled by what it changed; metrics
    # and snapshot intervals do not count.
    runs = [
        fake("r/00003-a", "msg", metrics=("fid2k",)),
        fake("r/00004-a", "msg", r1_gamma=40.0, seed=3),
        fake("r/00005-b", "sg", r1_gamma=40.0),
    ]
    assert compare.run_labels(runs) == [
        "msg (r1_gamma=10.0, seed=0)",
        "msg (r1_gamma=40.0, seed=3)",
        "sg",
    ]


def test_bad_runs(runs, tmp_path, capsys):
    a, _ = runs
    out = f"--outdir={tmp_path / 'out'}"
    assert "at least one run" in fails(capsys, out)
    assert "not a directory" in fails(
        capsys, os.path.join(a, "config.json"), out
    )
    assert "does not exist" in fails(capsys, tmp_path / "nope", out)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no config.json" in fails(capsys, empty, out)
    (empty / "config.json").write_text(tiny_config(16).to_json())
    assert "no stats.jsonl" in fails(capsys, empty, out)
    (empty / "stats.jsonl").write_text('{"Progress/kimg": 4.0}\n')
    line = fails(capsys, a, empty, out)
    assert "no metric-*.txt" in line and "run_metrics.py" in line
    assert "no metric-kid10k.txt" in fails(capsys, a, "--metric=kid10k", out)
    assert "given twice" in fails(capsys, a, a, out)
    assert not (tmp_path / "out").exists()  # nothing made on errors


def test_metric_lines_name_the_resize_mode(tmp_path):
    """`resize=<mode>` ends a line; lines without it were half-pixel."""
    run_ = compare.Run(path=str(tmp_path), cfg=None, rows=[])
    file = tmp_path / "metric-fid10k.txt"
    file.write_text(
        "network-snapshot-000004 time 1m 02s fid10k 40.0000 resize=tf1\n"
        "network-snapshot-000008 time 12s fid10k 30.0000 resize=tf1\n"
    )
    assert compare.read_metric(run_, "fid10k") == [(4.0, 40.0), (8.0, 30.0)]
    assert run_.resize == "tf1"
    file.write_text("network-snapshot-000004 time 12s fid10k 40.0000\n")
    assert compare.read_metric(run_, "fid10k") == [(4.0, 40.0)]
    assert run_.resize == "half-pixel"
    file.write_text(
        "network-snapshot-000004 time 12s fid10k 40.0000 resize=tf1\n"
        "network-snapshot-000008 time 12s fid10k 30.0000\n"
    )
    with pytest.raises(compare.UserError, match="half-pixel and tf1"):
        compare.read_metric(run_, "fid10k")


def test_runs_in_different_resize_modes_are_refused(runs, tmp_path, capsys):
    tf1 = [line + " resize=tf1" for line in METRIC_B]
    other = make_run(tmp_path / "00002-sg-1gpu", tf1, res=8, name="sg-tiny")
    err = fails(capsys, runs[0], other, f"--outdir={tmp_path / 'out'}")
    assert "different --fid-resize modes" in err
    assert "half-pixel" in err and "tf1" in err


def test_a_stops_snapshot_is_after_its_kimgs_tick_snapshot(tmp_path):
    # A stop 416 images past the tick snapshot of kimg 12 (snapshot_name).
    for name in ("000004", "000012", "000012-416"):
        (tmp_path / f"network-snapshot-{name}.pkl").write_bytes(b"")
    latest = compare.latest_network(str(tmp_path))
    assert latest == str(tmp_path / "network-snapshot-000012-416.pkl")
    assert compare.network_kimg("network-snapshot-000012-416", None) == 12.416
    assert compare.network_kimg("network-snapshot-000004", None) == 4


def _leg(path, ticks, metric_lines, resumed_from=None):
    """A run directory with only what compare reads before the samples:
    config.json, stats.jsonl of (kimg, sec_per_tick) ticks numbered from
    1, a metric file and, for a resumed leg, log.txt."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(tiny_config(16).to_json() + "\n")
    rows = [
        {
            "Progress/kimg": k,
            "Progress/tick": i + 1,
            "Timing/sec_per_tick": s,
            # A first tick compiles: slow, left out of the speed.
            "Timing/sec_per_kimg": 1000.0 if i == 0 else s,
        }
        for i, (k, s) in enumerate(ticks)
    ]
    (path / "stats.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows)
    )
    if metric_lines:
        (path / "metric-fid2k.txt").write_text("\n".join(metric_lines) + "\n")
    log = ["Run directory: " + str(path)]
    if resumed_from:
        log.append(f"Resumed from '{resumed_from}' at kimg 8.0")
    log.append("tick 1     kimg 9.0")
    (path / "log.txt").write_text("\n".join(log) + "\n")
    return path


def test_a_resumed_run_continues_the_curve_of_its_earlier_legs(
    tmp_path, capsys
):
    # Leg 0 went to kimg 12, but leg 1 resumed from its kimg-8 snapshot:
    # leg 0's tick and value at 12 are an abandoned branch.
    root = tmp_path / "results"
    leg0 = _leg(
        root / "00000-a-1cpu",
        [(4.0, 40.0), (8.0, 40.0), (12.0, 40.0)],
        [
            f"network-snapshot-00000{k} time 1s fid2k {v} resize=tf1"
            for k, v in ((0, 300.0), (4, 200.0), (8, 150.0))
        ]
        + ["network-snapshot-000012 time 1s fid2k 999.0 resize=tf1"],
    )
    leg1 = _leg(
        root / "00001-a-1cpu",
        [(9.0, 10.0), (10.0, 10.0), (11.0, 10.0)],
        None,  # no value of its own yet
        resumed_from=leg0 / "network-snapshot-000008.pkl",
    )
    # Leg 2 logged a path of another machine: found as a sibling by name.
    leg2 = _leg(
        root / "00002-a-1cpu",
        [(12.0, 5.0), (13.0, 5.0)],
        [
            "network-snapshot-000012 time 1s fid2k 120.0 resize=tf1",
            "network-final time 1s fid2k 110.0 resize=tf1",
        ],
        resumed_from="/elsewhere/results/00001-a-1cpu/"
        "network-snapshot-000011.pkl",
    )
    run_ = compare.read_run(str(leg2))
    assert run_.legs == [(str(leg0), 8.0), (str(leg1), 11.0)]
    assert [r["Progress/kimg"] for r in run_.rows] == [4, 8, 9, 10, 11, 12, 13]
    run_.points = compare.read_metric(run_, "fid2k")
    assert run_.points == [
        (0.0, 300.0),
        (4.0, 200.0),
        (8.0, 150.0),
        (12.0, 120.0),
        (13.0, 110.0),
    ]
    assert run_.resize == "tf1"
    assert compare.training_hours(run_.rows, 13) == pytest.approx(
        (80 + 30 + 10) / 3600
    )
    # Each leg's first tick (compilation) is left out of the speed.
    summary = compare.summarize(run_)
    assert summary["sec_per_kimg"] == 10.0  # median of 40, 10, 10, 5
    assert (summary["best"], summary["best_kimg"]) == (110.0, 13.0)
    assert compare.metric_names([str(leg1)]) == []
    # Samples come from the latest snapshot along the legs.
    for leg, kimg in ((leg0, "000008"), (leg0, "000012"), (leg1, "000010")):
        (leg / f"network-snapshot-{kimg}.pkl").write_bytes(b"")
    assert compare.run_network(run_) == str(
        leg1 / "network-snapshot-000010.pkl"
    )
    (leg1 / "network-snapshot-000010.pkl").unlink()
    assert compare.run_network(run_) == str(
        leg0 / "network-snapshot-000008.pkl"
    )
    table = compare.comparison_table([run_], [summary], [(1, 2)], "fid2k")
    assert f"`{leg2}` after `{leg1}` after `{leg0}`" in table
    # A leg whose run is gone: the curve starts where the next one resumed.
    os.rename(leg0, root / "moved")
    run_ = compare.read_run(str(leg2))
    assert run_.legs == [(str(leg1), 11.0)]
    assert "network-snapshot-000008.pkl" in capsys.readouterr().out
    with pytest.raises(compare.UserError, match="no metric-"):
        compare.choose_metric([compare.read_run(str(leg1))], None)
    assert compare.choose_metric([run_], None) == "fid2k"  # leg 2's own
    # Modes may not mix across legs either.
    (leg1 / "metric-fid2k.txt").write_text(
        "network-snapshot-000010 time 1s fid2k 130.0\n"
    )
    with pytest.raises(compare.UserError, match="half-pixel and tf1"):
        compare.read_metric(compare.read_run(str(leg2)), "fid2k")
