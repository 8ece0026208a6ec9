"""Two JAX processes (jax.distributed, gloo) against one with two devices.

The two processes run train.py --backend=jax --coordinator=... on
localhost, one CPU device each, on a tiny config; a third process trains
the same config on two host devices (--xla_force_host_platform_device_count)
through the loop. All three start at once. Process 1 gets a SIGTERM after
its third step, and both stop there. Same G, D, Gs and Adam states as the
third process after three steps, and only process 0 wrote a run directory.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from datasets import tfrecords
from msg_stylegan import snapshot
from tests.helpers import SUBPROCESS_DEADLINE

ROOT = Path(__file__).resolve().parents[2]

# train.py with the named config replaced by a tiny one. "reference" runs
# the config train.py resolves from the same flags on two local devices;
# "signalled" sends itself a SIGTERM after its third step (and waits until
# it is caught, so the next agreement sees it).
# adam_epsilon: see test_jax_multidevice.py (Adam's first step is about
# lr * sign(g) with the default epsilon, which turns rounding into lr).
SCRIPT = r"""
import os, signal, sys, time
import config as config_lib
import train
from dnnlib import interrupt
from dnnlib.util import run_cli
from tests.helpers import tiny_config

cfg = tiny_config(8, kimg_per_tick=0.016, grid_size=2,
                  network_snapshot_ticks=1, adam_epsilon=1e-2)
config_lib.get_config = lambda name: cfg
mode, argv = sys.argv[1], sys.argv[2:]
if mode == "reference":
    from training import training_loop
    args = train.build_parser().parse_args(argv[1:])
    training_loop.training_loop(
        train.resolve_config(args), argv[0], devices=[0, 1]
    )
    sys.exit(0)
if mode == "signalled":
    from training import backends

    backend = backends.get()
    make = backend.make_train_step

    def make_train_step(*args, **kwargs):
        step, compiled = make(*args, **kwargs)

        def wrapped(reals, index, **k):
            out = step(reals, index, **k)
            if index == 2:
                os.kill(os.getpid(), signal.SIGTERM)
                while not interrupt.requested():
                    time.sleep(0.01)
            return out

        return wrapped, compiled

    backend.make_train_step = make_train_step
run_cli(train.main, argv)
"""


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _env(devices):
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLURM_", "JAX_")) and k != "TF_CONFIG"
    }
    flags = [
        f
        for f in env.get("XLA_FLAGS", "").split()
        if not f.startswith("--xla_force_host_platform_device_count")
    ]
    flags.append(f"--xla_force_host_platform_device_count={devices}")
    env.update(
        PYTHONPATH=str(ROOT),
        KERAS_BACKEND="jax",
        JAX_PLATFORMS="cpu",
        XLA_FLAGS=" ".join(flags),
    )
    return env


@pytest.mark.large
def test_two_processes_equal_two_devices_stop_together_and_one_writes(
    synthetic8, tmp_path
):
    jax = pytest.importorskip("jax")
    if "jax_cpu_collectives_implementation" not in jax.config.values:
        pytest.skip(f"JAX {jax.__version__} has no CPU collectives (gloo)")
    outdir = tmp_path / "runs"
    # Batches of 8 images, a tick (and a snapshot) after 2 steps; the two
    # processes would take 4 steps but stop after 3, the reference takes 3.
    flags = ["--config=test", "--backend=jax", f"--data={synthetic8}"]
    flags += [f"--outdir={outdir}"]
    coordinator = f"localhost:{_free_port()}"
    commands = [
        (
            [sys.executable, "-c", SCRIPT, mode, *flags, "--kimg=0.032"]
            + [f"--coordinator={coordinator}", "--num-processes=2"]
            + [f"--process-id={index}"],
            _env(1),
        )
        for index, mode in enumerate(["plain", "signalled"])
    ]
    ref_dir = tmp_path / "ref"
    ref = [sys.executable, "-c", SCRIPT, "reference", str(ref_dir), *flags]
    commands.append((ref + ["--kimg=0.024"], _env(2)))
    procs = [
        subprocess.Popen(
            argv,
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for argv, env in commands
    ]
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
    assert "2 replica(s), backend jax" in logs[0]
    # Only process 1 was signalled; both stopped after the same step.
    assert "Stopped by SIGTERM (to process 1) at kimg 0.0 (step 3)" in logs[0]
    assert "Stopped by SIGTERM at kimg 0.0 (step 3)" in logs[1]

    # One run directory, named by both processes' devices: the tick's
    # snapshot (step 2) and the stop's (step 3), which keeps it though
    # both are in kimg 0; no final.
    runs = os.listdir(outdir)
    assert runs == ["00000-test-2cpu"], runs
    run = outdir / runs[0]
    assert sorted(p.name for p in run.glob("*.pkl")) == [
        "network-snapshot-000000-024.pkl",
        "network-snapshot-000000.pkl",
    ]
    assert len((run / "stats.jsonl").read_text().splitlines()) == 1

    assert snapshot.load(str(run / "network-snapshot-000000.pkl"))["step"] == 2
    a = snapshot.load(str(run / "network-snapshot-000000-024.pkl"))
    b = snapshot.load(str(ref_dir / "network-final.pkl"))
    assert a["step"] == b["step"] == 3
    config_a, config_b = (json.loads(x["config"]) for x in (a, b))
    assert config_a.pop("total_kimg") == 0.032
    assert config_b.pop("total_kimg") == 0.024
    assert config_a == config_b
    # Seen: bit-equal. Both runs execute the same partitioned program, and
    # the only reduction across devices adds two partial sums, which is
    # exact in either order (gloo between processes, XLA's own within one).
    # The tolerance admits float32 rounding-order differences only, should a
    # collective ever split its sums differently; a wrong split of the data
    # moves weights by about lr = 3e-3 per step.
    for key in ("G", "D", "Gs", "G_opt", "D_opt"):
        assert sorted(a[key]) == sorted(b[key]), key
        for name in a[key]:
            np.testing.assert_allclose(
                a[key][name],
                b[key][name],
                rtol=1e-5,
                atol=1e-6,
                err_msg=f"{key}/{name}",
            )


def test_each_process_reads_its_rows_of_the_global_batch(synthetic8):
    from training.backends.jax import BatchStream

    info = tfrecords.find_dataset(synthetic8)
    # 16 images, batches of 6: batch 2 crosses into the second epoch.
    streams = [
        BatchStream(info, 6, mirror=True, seed=3, rows=rows)
        for rows in (None, (0, 2), (2, 6))
    ]
    try:
        for b in range(4):
            whole, *parts = (s.make(b) for s in streams)
            np.testing.assert_array_equal(np.concatenate(parts), whole)
    finally:
        for s in streams:
            s.close()
