"""bench/peers_table.py and bench/gpu_peers.sh: rows, ratios, the dry run."""

import io
import json
import os
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import peers_table  # noqa: E402


def row(who, res, mode, img_s, run="r1", what="train_step", **kw):
    """A row as `peers_table.py tag` writes it."""
    out = dict(
        run=run,
        case=f"{who}-{mode}-{res}",
        who=who,
        what=what,
        res=res,
        batch=32,
        precision={"mixed": "bf16", "tf32": "fp32"}[mode],
        mode=mode,
        img_per_s=img_s,
        sec_per_kimg=1000.0 / img_s if img_s else None,
        tflops=None,
        warmup_s=12.5,
        case_s=20.0,
        peak_mem_gb=None,
        error=None if img_s else "stopped at its 150s limit",
    )
    out.update(kw)
    return out


def write(path, rows, extra_lines=()):
    lines = [json.dumps(r) for r in rows] + list(extra_lines)
    path.write_text("\n".join(lines) + "\n")
    return path


def table_lines(tmp_path, rows):
    text = peers_table.tables(
        peers_table.load_rows(write(tmp_path / "p", rows))
    )
    return [x for x in text.splitlines() if x.startswith("| ")][2:]


def cells(line):
    return [c.strip() for c in line.strip("|").split("|")]


def test_ratio_per_resolution_and_mode(tmp_path):
    sg = "stylegan2-ada-pytorch"
    rows = [
        row("msg-stylegan", 64, "mixed", 600.0),
        row("msg-stylegan", 64, "tf32", 400.0),
        row(sg, 64, "mixed", 300.0, precision="fp16"),
        row(sg, 64, "tf32", 500.0),
        row("msg-stylegan", 128, "mixed", 380.0),
        row(sg, 128, "mixed", 190.0, precision="fp16", note="reference ops"),
    ]
    got = [cells(x) for x in table_lines(tmp_path, rows)]
    # res, mode, ours' precision and img/s, peer, peer's precision and
    # img/s, ratio (600/300, 400/500, 380/190).
    assert [(c[0], c[1], c[2], c[3], c[5], c[6], c[7], c[9]) for c in got] == [
        ("64", "mixed", "bf16", "600.0", sg, "fp16", "300.0", "2.00"),
        ("64", "tf32", "fp32", "400.0", sg, "fp32", "500.0", "0.80"),
        (
            "128",
            "mixed",
            "bf16",
            "380.0",
            sg,
            "fp16 (reference ops)",
            "190.0",
            "2.00",
        ),
    ]
    assert all(c[4] == "12.5" and c[8] == "12.5" for c in got)


def test_missing_peer_and_failed_case_give_no_ratio(tmp_path):
    sg = "stylegan2-ada-pytorch"
    rows = [
        row("msg-stylegan", 64, "mixed", 600.0),
        row(sg, 64, "mixed", 300.0, precision="fp16"),
        row("msg-stylegan", 256, "mixed", 200.0),  # the peer never ran
        row("msg-stylegan", 128, "tf32", None),  # ours stopped at its cap
        row(sg, 128, "tf32", 250.0),
    ]
    got = {(c[0], c[1]): c for c in map(cells, table_lines(tmp_path, rows))}
    assert got[("64", "mixed")][9] == "2.00"
    assert got[("256", "mixed")][7] == "not run"
    assert got[("256", "mixed")][9] == "-"
    assert got[("128", "tf32")][3].startswith("error: stopped at its")
    assert got[("128", "tf32")][9] == "-"


def test_no_peer_at_all_still_lists_ours(tmp_path):
    got = [
        cells(x)
        for x in table_lines(tmp_path, [row("msg-stylegan", 64, "mixed", 1.5)])
    ]
    assert [(c[0], c[3], c[5], c[9]) for c in got] == [
        ("64", "1.5", "(none)", "-")
    ]


def test_tables_keep_kinds_apart_and_rows_without_res(tmp_path):
    rows = [
        row("msg-stylegan", 64, "mixed", 600.0),
        row("stylegan2-ada-pytorch", None, "mixed", None),
        row("msg-stylegan", 64, "tf32", 900.0, what="inception"),
        row("pytorch-fid", 64, "tf32", 450.0, what="inception"),
    ]
    text = peers_table.tables(
        peers_table.load_rows(write(tmp_path / "p", rows))
    )
    train, inception = text.split("### Inception")
    assert "pytorch-fid" not in train and "stylegan2" not in inception
    assert "| None | mixed | - | not run |" in train
    assert "| 64 | tf32 | fp32 | 900.0 | 12.5 | pytorch-fid |" in inception
    assert inception.rstrip().endswith("| 2.00 |")


def test_ratios_only_within_one_run(tmp_path):
    sg = "stylegan2-ada-pytorch"
    rows = [
        row("msg-stylegan", 64, "mixed", 600.0, run="a"),
        row(sg, 64, "mixed", 300.0, run="b", precision="fp16"),
    ]
    text = peers_table.tables(
        peers_table.load_rows(write(tmp_path / "p", rows))
    )
    assert "run a" in text and "run b" in text
    assert all(
        cells(x)[9] == "-" for x in text.splitlines() if x.startswith("| 64")
    )


@pytest.mark.parametrize(
    "bad, says",
    [
        ("{not json", "line 2: not JSON"),
        ('{"run": "r1"}', "line 2: not a peers row"),
    ],
)
def test_malformed_line_is_one_line_error(tmp_path, bad, says):
    path = write(
        tmp_path / "p.jsonl", [row("msg-stylegan", 64, "mixed", 1.0)], [bad]
    )
    r = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "peers_table.py"),
            "table",
            str(path),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1
    assert says in r.stderr and str(path) in r.stderr


def test_tag_reads_each_scripts_rows():
    args = Namespace(
        run="r1",
        case="c",
        who="w",
        what="train_step",
        res=None,
        precision="fp16",
        mode="mixed",
        error="rc=124",
    )
    ours = dict(
        res=64, batch=32, img_per_s=500.0, achieved_tflops=200.0, warmup_s=50.0
    )
    peer = dict(
        peer="sg",
        res=64,
        batch=32,
        img_per_s=250.0,
        warmup_s=9.0,
        peak_alloc_gib=1.0,
        plugins=dict(bias_act=True, upfirdn2d=False),
    )
    failed = dict(peer="sg", res=128, batch=32, error="RuntimeError('x')")
    lines = [
        "env {}",
        json.dumps(ours),
        "result " + json.dumps(peer),
        "noise",
        json.dumps(failed),
    ]
    out = io.StringIO()
    assert peers_table.tag(args, lines, out) == 3
    got = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [
        (r["res"], r["img_per_s"], r["tflops"], r["warmup_s"]) for r in got
    ] == [
        (64, 500.0, 200.0, 50.0),
        (64, 250.0, None, 9.0),
        (128, None, None, None),
    ]
    assert got[0]["sec_per_kimg"] == 2.0
    assert got[1]["peak_mem_gb"] == round(2**30 / 1e9, 3)
    assert got[2]["error"] == "RuntimeError('x')"
    assert [r["note"] for r in got] == [None, "reference ops", None]
    assert got[0]["raw"] == ours
    # A case that printed nothing still leaves a row with why.
    out = io.StringIO()
    assert peers_table.tag(args, ["noise"], out) == 1
    assert json.loads(out.getvalue())["error"] == "rc=124"


@pytest.mark.large
@pytest.mark.dryrun
def test_tiny_dry_run_skips_absent_peers(tmp_path):
    """The whole script on the CPU: our rows and table, peers skipped."""
    empty = tmp_path / "peers"
    empty.mkdir()
    out = tmp_path / "out"
    env = dict(
        os.environ,
        TINY="1",
        TINY_RES="16",
        TINY_DEADLINE_S="2400",
        OUT=str(out),
        PEERS_DIR=str(empty),
        PYTHON=sys.executable,
        PEER_PYTHON=sys.executable,
    )
    r = subprocess.run(
        ["bash", str(ROOT / "bench" / "gpu_peers.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=2700,  # it took ~20 minutes on 2 shared cores
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    rows = [
        json.loads(x) for x in (out / "peers.jsonl").read_text().splitlines()
    ]
    got = {(x["case"], x["who"], x["what"], x["res"]): x for x in rows}
    assert set(got) == {
        ("ours-bf16-16", "msg-stylegan", "train_step", 16),
        ("ours-tf32-16", "msg-stylegan", "train_step", 16),
        ("inception", "msg-stylegan", "inception", 16),
    }
    for x in rows:
        assert x["img_per_s"] > 0 and x["error"] is None, x
        assert x["warmup_s"] > 0 and x["batch"] == (
            8 if x["what"] == "train_step" else 4
        )
    assert (
        got[("ours-bf16-16",) + ("msg-stylegan", "train_step", 16)]["tflops"]
        > 0
    )
    log = (out / "log.txt").read_text()
    assert "sg2ada-fp16-16 skipped: no stylegan2-ada-pytorch" in log
    assert "sg2ada-fp32-16 skipped" in log
    assert "inception pytorch-fid skipped" in log
    table = (out / "table.md").read_text()
    assert "| 16 | mixed | bf16 |" in table and "| (none) |" in table


PERF_SCRIPT = """\
def bench_sg2ada(res, args):
    G = dict(synthesis_kwargs=dict(num_fp16_res=4, conv_clamp=256))
    D = dict(num_fp16_res=4, conv_clamp=256, block_kwargs={})
    return dict(G=G, D=D, cfg=dict(num_fp16_res=4, conv_clamp=256))


def parser(ap):
    ap.add_argument('--aug', default='ada')
"""


def prepare(tmp_path, perf_text):
    """Run prepare_peers.sh on a made-up timing script and a tiny repo."""
    perf = tmp_path / "perf"
    perf.mkdir(exist_ok=True)
    (perf / "peer_step_bench.py").write_text(perf_text)
    repo = tmp_path / "peer.git"
    work = tmp_path / "work"
    (work / "training").mkdir(parents=True, exist_ok=True)
    (work / "training" / "networks.py").write_text("# a peer file\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    subprocess.run(git + ["-C", str(work), "add", "."], check=True)
    subprocess.run(git + ["-C", str(work), "commit", "-qm", "c"], check=True)
    subprocess.run(
        ["git", "clone", "-q", "--bare", str(work), str(repo)], check=True
    )
    wheels = tmp_path / "whl"
    wheels.mkdir(exist_ok=True)
    (wheels / "keras-0-py3-none-any.whl").write_text("")  # no download
    env = dict(
        os.environ,
        PEERS_DIR=str(tmp_path / "peers"),
        PERF_DIR=str(perf),
        SG2ADA_GIT=str(repo),
        WHEEL_DIR=str(wheels),
    )
    return subprocess.run(
        ["bash", str(ROOT / "bench" / "prepare_peers.sh")],
        env=env,
        capture_output=True,
        text=True,
    )


def test_prepare_peers_exports_and_adds_fp32(tmp_path):
    r = prepare(tmp_path, PERF_SCRIPT)
    assert r.returncode == 0, r.stderr
    peers = tmp_path / "peers"
    assert (peers / "stylegan2-ada-pytorch/training/networks.py").is_file()
    text = (peers / "perf/peer_step_bench.py").read_text()
    assert text.count("num_fp16_res=0 if args.fp32 else 4") == 3
    assert text.count("conv_clamp=None if args.fp32 else 256") == 3
    assert "ap.add_argument('--fp32', action='store_true'" in text
    scope = {}
    exec(text, scope)  # the edited copy is still valid Python
    got = scope["bench_sg2ada"](64, Namespace(fp32=True))
    assert got["D"]["num_fp16_res"] == 0 and got["cfg"]["conv_clamp"] is None


def test_prepare_peers_refuses_a_changed_script(tmp_path):
    r = prepare(tmp_path, PERF_SCRIPT.replace("conv_clamp=256", "x=1", 1))
    assert r.returncode != 0
    assert "changed: cannot add --fp32" in r.stderr
