"""Two TensorFlow workers on localhost against one two-replica process.

The workers (MultiWorkerMirroredStrategy from TF_CONFIG, one CPU replica
each) run train.py on a tiny config; one process with two logical CPUs
(MirroredStrategy) trains the same config. Same weights and Adam states,
and only the chief wrote a run directory.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import config as config_lib
from tests.helpers import SUBPROCESS_DEADLINE
from training import snapshot, training_loop

ROOT = Path(__file__).resolve().parents[2]

# train.py with the named config replaced by a tiny one.
WORKER = r"""
import sys
import config as config_lib
import train
from dnnlib.util import run_cli
from tests.helpers import tiny_config

cfg = tiny_config(8, xla=False, kimg_per_tick=0.016, grid_size=2,
                  network_snapshot_ticks=1)
config_lib.get_config = lambda name: cfg
run_cli(train.main, sys.argv[1:])
"""


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.large
def test_two_workers_equal_two_replicas_and_only_the_chief_writes(
    synthetic8, tmp_path
):
    outdir = tmp_path / "runs"
    workers = [f"localhost:{p}" for p in _free_ports(2)]
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SLURM_") and k != "TF_CONFIG"
    }
    env.update(PYTHONPATH=str(ROOT), KERAS_BACKEND="tensorflow")
    argv = [sys.executable, "-c", WORKER, "--config=test"]
    argv += [f"--data={synthetic8}", f"--outdir={outdir}", "--kimg=0.032"]
    procs = []
    for index in range(2):
        task = {"type": "worker", "index": index}
        tf_config = {"cluster": {"worker": workers}, "task": task}
        procs.append(
            subprocess.Popen(
                argv,
                env=dict(env, TF_CONFIG=json.dumps(tf_config)),
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    logs = []
    try:
        for proc in procs:
            logs.append(proc.communicate(timeout=SUBPROCESS_DEADLINE)[0])
    finally:
        for proc in procs:
            proc.kill()
    for proc, log in zip(procs, logs):
        assert proc.returncode == 0, log[-3000:]
    assert "Worker 0 of 2 (chief, writes the run)" in logs[0]
    assert "Worker 1 of 2 (computes only)" in logs[1]

    # One run directory, named by both workers' replicas, one series.
    runs = os.listdir(outdir)
    assert runs == ["00000-test-2cpu"], runs
    run = outdir / runs[0]
    pkls = sorted(p.name for p in run.glob("*.pkl"))
    assert pkls == ["network-final.pkl", "network-snapshot-000000.pkl"]
    assert len((run / "stats.jsonl").read_text().splitlines()) == 2

    cfg = config_lib.Config.from_json((run / "config.json").read_text())
    ref = training_loop.training_loop(
        cfg, str(tmp_path / "ref"), devices=["/cpu:0", "/cpu:1"]
    )
    a, b = snapshot.load(str(run / "network-final.pkl")), snapshot.load(ref)
    assert a["step"] == b["step"] == 4
    for key in ("G", "D", "Gs", "G_opt", "D_opt"):
        assert sorted(a[key]) == sorted(b[key]), key
        for name in a[key]:
            np.testing.assert_allclose(
                a[key][name],
                b[key][name],
                rtol=1e-4,
                atol=1e-5,
                err_msg=f"{key}/{name}",
            )
