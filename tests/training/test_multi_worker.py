"""Two TensorFlow workers on localhost against one two-replica process.

The workers (MultiWorkerMirroredStrategy from TF_CONFIG, one CPU replica
each, each reading its own rows of every global batch) run train.py on a
tiny config. Worker 1 is sent SIGTERM in the middle of the run: both stop
after the same step and only the chief writes the snapshot; both then
continue with --resume=latest. One process with two logical CPUs
(MirroredStrategy) trains the same config without a stop: same weights and
Adam states.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import config as config_lib
from msg_stylegan import snapshot
from tests.helpers import SUBPROCESS_DEADLINE
from training import training_loop

ROOT = Path(__file__).resolve().parents[2]

# train.py with the named config replaced by a tiny one. PAUSE_AT=step:path
# makes this worker write `path` before that step and wait for a signal.
WORKER = r"""
import os
import sys
import time
import config as config_lib
import train
from dnnlib import interrupt
from dnnlib.util import run_cli
from tests.helpers import tiny_config
from training import training_loop

cfg = tiny_config(8, xla=False, kimg_per_tick=0.016, grid_size=2,
                  network_snapshot_ticks=1)
config_lib.get_config = lambda name: cfg
if os.environ.get("PAUSE_AT"):
    at, marker = os.environ["PAUSE_AT"].split(":", 1)
    run = training_loop.Schedule.run

    def paused(self, phase, step):
        if step == int(at):
            open(marker, "w").close()
            while not interrupt.requested():  # the test signals us
                time.sleep(0.05)
        return run(self, phase, step)

    training_loop.Schedule.run = paused
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


def _start_workers(tmp_path, args, pause=None):
    """Two train.py workers; `pause` (step, marker) for worker 1."""
    workers = [f"localhost:{p}" for p in _free_ports(2)]
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SLURM_") and k not in ("TF_CONFIG", "PAUSE_AT")
    }
    env.update(PYTHONPATH=str(ROOT), KERAS_BACKEND="tensorflow")
    procs = []
    for index in range(2):
        task = {"type": "worker", "index": index}
        tf_config = {"cluster": {"worker": workers}, "task": task}
        extra = {"TF_CONFIG": json.dumps(tf_config)}
        if pause and index == 1:
            extra["PAUSE_AT"] = f"{pause[0]}:{pause[1]}"
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", WORKER, *args],
                env=dict(env, **extra),
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    return procs


def _finish(procs):
    logs = []
    try:
        for proc in procs:
            logs.append(proc.communicate(timeout=SUBPROCESS_DEADLINE)[0])
    finally:
        for proc in procs:
            proc.kill()
    for proc, log in zip(procs, logs):
        assert proc.returncode == 0, log[-3000:]
    return logs


@pytest.mark.large
def test_two_workers_stop_together_resume_and_equal_two_replicas(
    synthetic8, tmp_path
):
    outdir = tmp_path / "runs"
    args = ["--config=test", f"--data={synthetic8}", f"--outdir={outdir}"]
    args += ["--kimg=0.032"]  # 4 steps of 8 images, a tick every 2

    # SIGTERM to worker 1 before step 2 (0-based): both finish step 2 and
    # stop at step 3, where only the chief writes the snapshot.
    marker = tmp_path / "worker1-at-step-2"
    procs = _start_workers(tmp_path, args, pause=(2, marker))
    deadline = time.monotonic() + SUBPROCESS_DEADLINE
    while not marker.exists():
        assert all(p.poll() is None for p in procs), _finish(procs)
        assert time.monotonic() < deadline, "worker 1 never reached step 2"
        time.sleep(0.1)
    procs[1].send_signal(signal.SIGTERM)
    logs = _finish(procs)
    assert "Worker 0 of 2 (chief, writes the run)" in logs[0]
    assert "Worker 1 of 2 (computes only)" in logs[1]
    assert "Stopped by SIGTERM (to worker 1) at kimg 0.0 (step 3)" in logs[0]
    assert "Stopped by SIGTERM at kimg 0.0 (step 3)" in logs[1]
    run = outdir / "00000-test-2cpu"  # named by both workers' replicas
    # The tick's snapshot (step 2) and the stop's (step 3, 24 images), which
    # must not overwrite it though both are in kimg 0.
    ticked = run / "network-snapshot-000000.pkl"
    stopped = run / "network-snapshot-000000-024.pkl"
    assert sorted(p.name for p in run.glob("*.pkl")) == [
        stopped.name,
        ticked.name,
    ]
    assert snapshot.load(str(ticked))["step"] == 2
    assert snapshot.load(str(stopped))["step"] == 3

    # Both resume the chief's snapshot; the chief writes a second run.
    logs = _finish(_start_workers(tmp_path, [*args, "--resume=latest"]))
    for log in logs:
        assert f"Resumed from '{stopped}'" in log, log[-3000:]
    assert sorted(os.listdir(outdir)) == ["00000-test-2cpu", "00001-test-2cpu"]
    run = outdir / "00001-test-2cpu"
    assert sorted(p.name for p in run.glob("*.pkl")) == ["network-final.pkl"]
    assert len((run / "stats.jsonl").read_text().splitlines()) == 1

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
