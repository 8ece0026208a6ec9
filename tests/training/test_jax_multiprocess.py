"""Two JAX processes (jax.distributed, gloo) against one with two devices.

The two processes run train.py --backend=jax --coordinator=... on
localhost, one CPU device each, on a tiny config; a third process trains
the same config on two host devices (--xla_force_host_platform_device_count)
through the loop. All three start at once. Same G, D, Gs and Adam states,
and only process 0 wrote a run directory.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from datasets import tfrecords
from tests.helpers import SUBPROCESS_DEADLINE
from training import snapshot

ROOT = Path(__file__).resolve().parents[2]

# train.py with the named config replaced by a tiny one; "reference" runs
# the config train.py resolves from the same flags on two local devices.
# adam_epsilon: see test_jax_multidevice.py (Adam's first step is about
# lr * sign(g) with the default epsilon, which turns rounding into lr).
SCRIPT = r"""
import sys
import config as config_lib
import train
from dnnlib.util import run_cli
from tests.helpers import tiny_config

cfg = tiny_config(8, kimg_per_tick=0.016, grid_size=2,
                  network_snapshot_ticks=1, adam_epsilon=1e-2)
config_lib.get_config = lambda name: cfg
if sys.argv[1] == "reference":
    from training import training_loop
    args = train.build_parser().parse_args(sys.argv[3:])
    training_loop.training_loop(
        train.resolve_config(args), sys.argv[2], devices=[0, 1]
    )
else:
    run_cli(train.main, sys.argv[1:])
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
def test_two_processes_equal_two_devices_and_only_process_0_writes(
    synthetic8, tmp_path
):
    jax = pytest.importorskip("jax")
    if "jax_cpu_collectives_implementation" not in jax.config.values:
        pytest.skip(f"JAX {jax.__version__} has no CPU collectives (gloo)")
    outdir = tmp_path / "runs"
    # 3 steps of 8 images; a tick (and a snapshot) after 2.
    flags = ["--config=test", "--backend=jax", f"--data={synthetic8}"]
    flags += [f"--outdir={outdir}", "--kimg=0.024"]
    coordinator = f"localhost:{_free_port()}"
    commands = [
        (
            [sys.executable, "-c", SCRIPT, *flags]
            + [f"--coordinator={coordinator}", "--num-processes=2"]
            + [f"--process-id={index}"],
            _env(1),
        )
        for index in range(2)
    ]
    ref_dir = tmp_path / "ref"
    commands.append(
        (
            [sys.executable, "-c", SCRIPT, "reference", str(ref_dir), *flags],
            _env(2),
        )
    )
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

    # One run directory, named by both processes' devices, one series.
    runs = os.listdir(outdir)
    assert runs == ["00000-test-2cpu"], runs
    run = outdir / runs[0]
    pkls = sorted(p.name for p in run.glob("*.pkl"))
    assert pkls == ["network-final.pkl", "network-snapshot-000000.pkl"]
    assert len((run / "stats.jsonl").read_text().splitlines()) == 2

    a = snapshot.load(str(run / "network-final.pkl"))
    b = snapshot.load(str(ref_dir / "network-final.pkl"))
    assert a["step"] == b["step"] == 3
    assert a["config"] == b["config"]
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


# Two processes agree on a stop that only process 1 was asked for.
AGREE = r"""
import sys
from dnnlib import hardware
from training.backends import jax as jax_backend

index = int(sys.argv[2])
jax_backend.connect(hardware.Cluster(sys.argv[1], 2, index))
strategy = jax_backend.make_strategy()
assert strategy.num_replicas_in_sync == 2
print("none:", jax_backend.agree_stop(strategy, None))
print("stop:", jax_backend.agree_stop(strategy, "SIGTERM" if index else None))
"""


@pytest.mark.large
def test_a_signal_to_one_process_stops_both():
    coordinator = f"localhost:{_free_port()}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", AGREE, coordinator, str(index)],
            env=_env(1),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for index in range(2)
    ]
    try:
        logs = [p.communicate(timeout=SUBPROCESS_DEADLINE)[0] for p in procs]
    finally:
        for proc in procs:
            proc.kill()
    for proc, log in zip(procs, logs):
        assert proc.returncode == 0, log[-3000:]
        assert "none: None" in log
    assert "stop: SIGTERM (to process 1)" in logs[0]
    assert "stop: SIGTERM\n" in logs[1]


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
