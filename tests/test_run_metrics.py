"""run_metrics.py end to end on tiny snapshots, and its bad inputs."""

import math
import re

import pytest

import run_metrics
from datasets import dataset_tool
from tests.helpers import make_tiny_snapshot, shared_data

RES = 16
NUM = "10"  # images per side: Inception runs at a few img/s on this CPU
LINE = re.compile(
    r"^(\S+) time (\d+s|\d+m \d\ds) (\w+) (-?\d+\.\d+) resize=(\S+)$"
)


@pytest.fixture(scope="module")
def weights():
    return str(
        shared_data("fid-inception-2015-12-05", "fid_inception_2015_12_05.npz")
    )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "shapes16"
    dataset_tool.main(
        ["create_synthetic", str(path), "--resolution", str(RES)]
        + ["--num-images", "40"]
    )
    return str(path)


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory, dataset):
    """A run directory: snapshots 12 and 4 kimg and a final one."""
    run = tmp_path_factory.mktemp("00000-test-1cpu")
    for i, name in enumerate(
        ["network-snapshot-000012", "network-snapshot-000004", "network-final"]
    ):
        make_tiny_snapshot(
            run / f"{name}.pkl", res=RES, data=dataset, mirror=True, seed=i
        )
    (run / "config.json").write_text("{}\n")
    return run


@pytest.fixture(autouse=True)
def env(tmp_path_factory, monkeypatch):
    """One real-statistics cache for the module; no weights from the env."""
    cache = tmp_path_factory.getbasetemp() / "run-metrics-cache"
    monkeypatch.setenv("MSG_STYLEGAN_CACHE", str(cache))
    monkeypatch.delenv("MSG_STYLEGAN_INCEPTION", raising=False)


def run(*argv):
    """run_metrics' main in-process, as the command line runs it."""
    return run_metrics.run_cli(run_metrics.main, [str(a) for a in argv])


def fails(capsys, *argv):
    """Run, expect exit 2, return the single error line."""
    with pytest.raises(SystemExit) as e:
        run(*argv)
    assert e.value.code == 2
    errors = [ln for ln in capsys.readouterr().err.splitlines() if ln]
    errors = [ln for ln in errors if "error:" in ln]
    assert len(errors) == 1, errors
    return errors[0]


def result_lines(text):
    return [ln for ln in text.splitlines() if LINE.match(ln)]


@pytest.mark.large
def test_pkl_in_run_dir(snapshots, weights, capsys):
    """Data and mirror from the snapshot's config; the line is logged."""
    pkl = snapshots / "network-snapshot-000004.pkl"
    args = ["--network", pkl, "--metric=kid10k", "--num", NUM, "--batch", NUM]
    args += ["--fid-resize=half-pixel"]
    assert run(*args, "--inception", weights) == 0
    lines = result_lines(capsys.readouterr().out)
    assert len(lines) == 1
    m = LINE.match(lines[0])
    assert m.group(1) == "network-snapshot-000004" and m.group(3) == "kid10k"
    assert m.group(5) == "half-pixel"
    assert math.isfinite(float(m.group(4))) and float(m.group(4)) > 0
    logged = (snapshots / "metric-kid10k.txt").read_text().splitlines()
    assert logged[-1] == lines[0]


@pytest.mark.large
def test_run_dir_in_kimg_order(snapshots, weights, capsys, tmp_path):
    # A copy of the run, so the metric file holds this test's lines only.
    run_dir = tmp_path / "00001-test-1cpu"
    run_dir.mkdir()
    for pkl in snapshots.glob("*.pkl"):
        (run_dir / pkl.name).write_bytes(pkl.read_bytes())
    args = ["--network", run_dir, "--metric=kid10k", "--num", NUM]
    assert run(*args, "--batch", NUM, "--inception", weights) == 0
    lines = result_lines(capsys.readouterr().out)
    names = [LINE.match(ln).group(1) for ln in lines]
    assert names == [
        "network-snapshot-000004",
        "network-snapshot-000012",
        "network-final",
    ]
    values = [float(LINE.match(ln).group(4)) for ln in lines]
    assert all(math.isfinite(v) for v in values)
    assert len(set(values)) == 3  # three different networks
    logged = (run_dir / "metric-kid10k.txt").read_text().splitlines()
    assert logged == lines


def test_missing_pkl(tmp_path, capsys):
    err = fails(capsys, "--network", tmp_path / "nope.pkl")
    assert "does not exist" in err


def test_empty_run_dir(tmp_path, capsys):
    err = fails(capsys, "--network", tmp_path)
    assert "holds no network-snapshot-*.pkl" in err


def test_corrupt_pkl(tmp_path, capsys):
    bad = tmp_path / "network-final.pkl"
    bad.write_bytes(b"not a pickle")
    err = fails(capsys, "--network", bad)
    assert "corrupt or not a snapshot" in err


def test_unknown_metric(snapshots, capsys):
    with pytest.raises(SystemExit) as e:
        run("--network", snapshots, "--metric=fid50k,fid7k")
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "unknown metric 'fid7k'" in err and "kid10k" in err


def test_missing_data(snapshots, tmp_path, capsys):
    pkl = snapshots / "network-final.pkl"
    err = fails(capsys, "--network", pkl, "--data", tmp_path / "none")
    assert "does not exist" in err
    alone = tmp_path / "network-final.pkl"
    make_tiny_snapshot(alone, res=RES)  # its config names no dataset
    err = fails(capsys, "--network", alone)
    assert "names no dataset; pass --data" in err


def test_no_inception_weights(snapshots, tmp_path, capsys, monkeypatch):
    pkl = snapshots / "network-final.pkl"
    err = fails(capsys, "--network", pkl, "--inception", tmp_path / "w.npz")
    assert "not found" in err
    # Nothing in the env or cache and the download fails (no network here).
    from metrics import inception

    monkeypatch.setenv("MSG_STYLEGAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(inception, "PTH_URL", (tmp_path / "x.pth").as_uri())
    err = fails(capsys, "--network", pkl)
    assert "FID Inception weights not found" in err


@pytest.mark.parametrize(
    "changes",
    [
        dict(architecture="msg-progan"),
        dict(architecture="stylegan", progressive=True),
    ],
)
def test_every_generator_family(changes, dataset, weights, tmp_path, capsys):
    """Metrics drive ProGAN and progressive generators like StyleGAN's."""
    pkl = tmp_path / "network-final.pkl"
    make_tiny_snapshot(pkl, res=RES, data=dataset, mirror=True, **changes)
    args = ["--network", pkl, "--metric=kid10k", "--num", NUM, "--batch", NUM]
    assert run(*args, "--inception", weights) == 0
    lines = result_lines(capsys.readouterr().out)
    assert len(lines) == 1 and math.isfinite(float(LINE.match(lines[0])[4]))
