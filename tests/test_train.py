"""Tests for train.py: config names, flags, and bad input before training."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import config as config_lib
import train
from datasets import dataset_tool
from dnnlib.util import UserError
from msg_stylegan import snapshot
from tests.helpers import SUBPROCESS_DEADLINE

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Synthetic datasets at 16 (the demo config's size) and at 32."""
    out = {}
    for res in (16, 32):
        path = tmp_path_factory.mktemp("d") / f"syn{res}"
        dataset_tool.main(
            [
                "create_synthetic",
                str(path),
                "--resolution",
                str(res),
                "--num-images",
                "24",
            ]
        )
        out[res] = str(path)
    return out


def _fails(argv, capsys, match):
    with pytest.raises(SystemExit) as e:
        from dnnlib.util import run_cli

        run_cli(train.main, argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert match in err, err
    return err


def test_every_named_config_resolves_and_validates():
    names = config_lib.config_names()
    for dataset in (
        "ffhq",
        "celebahq",
        "lsun-churches",
        "flowers",
        "indian-celebs",
        "cifar10",
        "demo",
    ):
        assert f"msg-stylegan-{dataset}" in names
        assert f"stylegan-{dataset}" in names
        cfg = config_lib.validate(config_lib.get_config(f"stylegan-{dataset}"))
        assert cfg.architecture == "stylegan"
    ffhq = config_lib.get_config("msg-stylegan-ffhq")
    assert (ffhq.img_resolution, ffhq.lr, ffhq.combine) == (
        1024,
        0.003,
        "cat_lin",
    )
    assert config_lib.Config.from_json(ffhq.to_json()) == ffhq


def test_unknown_config_lists_valid_names(capsys):
    err = _fails(["--config=msg-stylegan-ffhqq"], capsys, "unknown config")
    assert "msg-stylegan-ffhq" in err and "stylegan-cifar10" in err


def test_bad_inputs_are_one_line_errors(tmp_path, capsys, data, monkeypatch):
    demo = ["--config=msg-stylegan-demo"]
    _fails(demo, capsys, "--data")
    _fails(demo + [f"--data={tmp_path}/none"], capsys, "none")
    _fails(
        demo + [f"--data={data[32]}"],
        capsys,
        "is 32x32 but config 'msg-stylegan-demo' trains at 16x16",
    )
    blocker = tmp_path / "file"
    blocker.write_text("x")
    ok = demo + [f"--data={data[16]}"]
    _fails(
        ok + ["--outdir", str(blocker / "runs")], capsys, "cannot create outdir"
    )
    corrupt = tmp_path / "corrupt.pkl"
    # Fixed bytes: pickle's error for a persistent id spans two lines.
    corrupt.write_bytes(b"P0\n.")
    _fails(ok + [f"--resume={corrupt}"], capsys, "corrupt")
    _fails(ok + [f"--resume={tmp_path}/missing.pkl"], capsys, "does not exist")
    _fails(
        ok + ["--resume=latest", f"--outdir={tmp_path}"],
        capsys,
        "no snapshot of config",
    )
    # A snapshot of other networks is refused before a run directory.
    other = tmp_path / "other.pkl"
    demo_cfg = config_lib.get_config("msg-stylegan-demo")
    trained = config_lib.override(demo_cfg, mbstd="4x4", combine="simple")
    nets = {"G": {}, "D": {}, "Gs": {}}
    snapshot.save(other, {"config": trained.to_json(), **nets})
    _fails(
        ok + [f"--resume={other}"],
        capsys,
        "has other networks: combine='simple' (here 'cat_lin'), "
        "mbstd='4x4' (here 'auto')",
    )
    snapshot.save(other, {"config": '{"z_dim": "x", "lr"', **nets})
    _fails(ok + [f"--resume={other}"], capsys, "has a bad config")
    _fails(ok + ["--metrics=fid5k"], capsys, "fid5k")
    # --metrics without Inception weights stops before training starts.
    monkeypatch.setenv("MSG_STYLEGAN_INCEPTION", str(tmp_path / "none.npz"))
    _fails(ok + ["--metrics=fid1k"], capsys, "none.npz")
    assert not [p for p in os.listdir(tmp_path) if p[:1].isdigit()]


def test_dry_run_prints_resolved_config(capsys, data):
    train.main(
        [
            "--config=msg-stylegan-demo",
            f"--data={data[16]}",
            "--kimg=2",
            "--lr=0.001",
            "--mirror=1",
            "--combine=lin_cat",
            "--mbstd=4x4",
            "--dry-run",
        ]
    )
    cfg = config_lib.Config.from_json(capsys.readouterr().out)
    assert (cfg.total_kimg, cfg.lr, cfg.mirror) == (2.0, 0.001, True)
    assert (cfg.combine, cfg.mbstd) == ("lin_cat", "4x4")


def test_xla_modes(capsys, data, monkeypatch):
    """--xla takes a boolean word or 'elementwise'; configs saved with a
    boolean (before the mode existed) read as "on"/"off"."""
    demo = ["--config=msg-stylegan-demo", f"--data={data[16]}", "--dry-run"]
    for flag, mode in (
        ("1", "on"),
        ("off", "off"),
        ("elementwise", "elementwise"),
    ):
        train.main(demo + [f"--xla={flag}"])
        assert config_lib.Config.from_json(capsys.readouterr().out).xla == mode
    with pytest.raises(SystemExit):
        train.main(demo + ["--xla=maybe"])
    assert "expected on, off or elementwise, got 'maybe'" in (
        capsys.readouterr().err
    )
    cfg = config_lib.get_config("msg-stylegan-demo")
    old = json.loads(cfg.to_json())
    old["xla"] = False
    assert config_lib.Config.from_json(old).xla == "off"
    with pytest.raises(UserError, match="unknown xla 'fast'; valid: on"):
        config_lib.override(cfg, xla="fast")
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    _fails(demo + ["--xla=elementwise"], capsys, "JAX compiles the whole")


def _start_training(tmp_path, data, *extra, preexec_fn=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [
            sys.executable,
            "train.py",
            "--config=msg-stylegan-demo",
            f"--data={data}",
            f"--outdir={tmp_path}",
            "--batch=8",
            "--tick=0.008",
            "--xla=false",
            *extra,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=preexec_fn,
    )


def _finish(proc):
    """The rest of the output, waiting generously; kill on a hang."""
    try:
        out, _ = proc.communicate(timeout=SUBPROCESS_DEADLINE)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"train.py hung:\n{out[-3000:]}")
    return out


@pytest.mark.large
@pytest.mark.parametrize(
    "sig, when",
    [("SIGINT", "tick 2"), ("SIGTERM", "Training msg-stylegan-demo")],
    ids=["sigint-at-tick-2", "sigterm-before-first-step"],
)
def test_signal_writes_a_snapshot_and_exits_cleanly(sig, when, tmp_path, data):
    import signal

    proc = _start_training(tmp_path, data[16], "--kimg=100")
    lines = []
    for line in proc.stdout:  # wait for a state, never for a time
        lines.append(line)
        if line.startswith(when):
            break
    proc.send_signal(getattr(signal, sig))
    text = "".join(lines) + _finish(proc)
    assert proc.returncode == 0, text
    assert f"Stopped by {sig}" in text and "--resume=" in text, text
    snaps = list(tmp_path.glob("*/network-snapshot-*.pkl"))
    assert len(snaps) == 1, text
    from msg_stylegan import snapshot

    step = snapshot.load(snaps[0])["step"]
    assert step >= 2 if sig == "SIGINT" else step >= 0
    assert not list(tmp_path.glob("*/.*.tmp"))


@pytest.mark.large
def test_a_failing_snapshot_write_is_one_line_and_keeps_earlier_ones(
    tmp_path, data
):
    import resource

    # A file-size limit between the log's size and a snapshot's: the first
    # run writes snapshots, the resumed one cannot.
    first = _start_training(tmp_path / "a", data[16], "--kimg=0.016")
    out = _finish(first)
    assert first.returncode == 0, out
    final = next((tmp_path / "a").glob("*/network-final.pkl"))
    limit = final.stat().st_size // 2

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = _start_training(
        tmp_path / "b",
        data[16],
        "--kimg=0.032",
        f"--resume={final}",
        preexec_fn=small_files,
    )
    out = _finish(proc)
    assert proc.returncode == 2, out
    last = out.strip().splitlines()[-1]
    assert "error: cannot write" in last and "network-final.pkl" in last, out
    assert "File too large" in last
    from msg_stylegan import snapshot

    assert snapshot.load(final)["step"] == 2  # the earlier one is intact
    assert not list((tmp_path / "b").glob("*/network-final.pkl"))
    assert not list((tmp_path / "b").glob("*/.*.tmp"))
