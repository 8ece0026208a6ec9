"""Tests for train.py: config names, flags, and bad input before training."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import config as config_lib
import train
from datasets import dataset_tool

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Synthetic datasets at 32 (the demo config's size) and at 16."""
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


def test_bad_inputs_are_one_line_errors(tmp_path, capsys, data):
    demo = ["--config=msg-stylegan-demo"]
    _fails(demo, capsys, "--data")
    _fails(demo + [f"--data={tmp_path}/none"], capsys, "none")
    _fails(
        demo + [f"--data={data[16]}"],
        capsys,
        "is 16x16 but config 'msg-stylegan-demo' trains at 32x32",
    )
    blocker = tmp_path / "file"
    blocker.write_text("x")
    ok = demo + [f"--data={data[32]}"]
    _fails(
        ok + ["--outdir", str(blocker / "runs")], capsys, "cannot create outdir"
    )
    corrupt = tmp_path / "corrupt.pkl"
    corrupt.write_bytes(os.urandom(100))
    _fails(ok + [f"--resume={corrupt}"], capsys, "corrupt")
    _fails(ok + [f"--resume={tmp_path}/missing.pkl"], capsys, "does not exist")
    _fails(
        ok + ["--resume=latest", f"--outdir={tmp_path}"],
        capsys,
        "no snapshot of config",
    )
    _fails(ok + ["--metrics=fid5k"], capsys, "fid5k")
    assert not [p for p in os.listdir(tmp_path) if p[:1].isdigit()]


def test_bad_flags_exit_2_and_help_is_fast():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [
            sys.executable,
            "train.py",
            "--config=msg-stylegan-demo",
            "--batch=-3",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "must be positive" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "train.py", "--help"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0 and "--resume" in proc.stdout
    assert "tensorflow" not in proc.stderr.split("train")[0] or (
        " tensorflow" not in proc.stderr
    )


def test_dry_run_prints_resolved_config(capsys, data):
    train.main(
        [
            "--config=msg-stylegan-demo",
            f"--data={data[32]}",
            "--kimg=2",
            "--lr=0.001",
            "--mirror=1",
            "--dry-run",
        ]
    )
    cfg = config_lib.Config.from_json(capsys.readouterr().out)
    assert (cfg.total_kimg, cfg.lr, cfg.mirror) == (2.0, 0.001, True)


@pytest.mark.large
def test_ctrl_c_writes_a_snapshot_and_exits_cleanly(tmp_path, data):
    import signal
    import time

    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [
            sys.executable,
            "train.py",
            "--config=msg-stylegan-demo",
            f"--data={data[32]}",
            f"--outdir={tmp_path}",
            "--batch=8",
            "--tick=0.008",
            "--xla=false",
            "--kimg=100",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    deadline = time.time() + 300
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("tick 2") or time.time() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    text = "".join(lines) + out
    assert proc.returncode == 0, text
    assert "Interrupted: wrote" in text, text
    snaps = list(tmp_path.glob("*/network-snapshot-*.pkl"))
    assert len(snaps) == 1
    from training import snapshot

    assert snapshot.load(snaps[0])["step"] >= 2
