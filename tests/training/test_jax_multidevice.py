"""The JAX step on two devices against one: the same numbers, truly sharded.

The test process runs Keras on TensorFlow, so the JAX side runs in one
subprocess with KERAS_BACKEND=jax and two host devices
(--xla_force_host_platform_device_count=2). It builds the state on one
device and on two from the same seed, takes two steps with the same reals
and latents on each, and returns statistics, whole training states and what
the two-device step's arrays and compiled program say about sharding.

Not covered here: train.py on two host devices. On a machine without GPUs
`make_strategy` gives one CPU device whatever --gpus says, and the loop
through `training_loop(..., devices=[0, 1])` takes ~2.5 min on two cores.
"""

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import SUBPROCESS_DEADLINE

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.large

# The JAX half. jax.jit is wrapped while make_train_step runs so that the
# step's jitted function and its latest arguments can be looked at: the
# compiled per-device program shows the shape each device really sees.
JAX_SCRIPT = r"""
import pickle, re, sys
import jax, keras, numpy as np
assert keras.backend.backend() == "jax" and len(jax.devices()) == 2
from tests.helpers import tiny_config
from training import backends, training_loop

work = sys.argv[1]
backend = backends.get()
# adam_epsilon: see the test module (Adam's first step is lr * sign(g)).
cfg = tiny_config(16, batch=8, adam_epsilon=1e-2)
reals = np.random.default_rng(0).integers(0, 256, (8, 16, 16, 3), np.uint8)
real_jit = jax.jit


def recording_jit(fn, **kwargs):
    jitted = real_jit(fn, **kwargs)
    record = {"jitted": jitted}
    jits.append(record)

    def call(*args):
        record["args"] = args
        return jitted(*args)

    return call


out = {}
for n in (1, 2):
    strategy = backend.make_strategy(devices=list(range(n)))
    state = backend.build_state(cfg, strategy)
    # Non-zero noise strengths, so the sharded noise inputs matter.
    for net in (state.G, state.Gs):
        for v in net.trainable_variables:
            if "noise/strength" in v.path:
                v.assign(np.full(v.shape, 0.1, "float32"))
    start = training_loop.snapshot_data(state, cfg, 0, 0)
    jits = []
    jax.jit = recording_jit
    try:
        step, _ = backend.make_train_step(state, cfg, strategy)
    finally:
        jax.jit = real_jit
    noise_res = state.G.synthesis.noise_resolutions
    stats = [
        step(reals, i, latents=backend.draw_latents(cfg, noise_res, 8, i))
        for i in range(2)
    ]
    (record,) = jits
    args = record["args"]
    hlo = record["jitted"].lower(*args).compile().as_text()
    (reals_in,) = [a for a in args if getattr(a, "dtype", None) == np.uint8]
    weight = state.G.trainable_variables[0].value
    out[n] = {
        "start": start,
        "stats": stats,
        "after": training_loop.snapshot_data(state, cfg, 16, 2),
        "reals_devices": len(reals_in.sharding.device_set),
        "reals_shards": [s.data.shape for s in reals_in.addressable_shards],
        "weight_devices": len(weight.sharding.device_set),
        "hlo_u8_shapes": sorted(set(re.findall(r"u8\[[0-9,]*\]", hlo))),
    }
with open(f"{work}/multidevice.pkl", "wb") as f:
    pickle.dump(out, f)
print("JAX-DONE")
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    work = tmp_path_factory.mktemp("jax_multidevice")
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=str(ROOT))
    env["JAX_PLATFORMS"] = "cpu"
    flags = env.get("XLA_FLAGS", "")
    env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count=2"
    proc = subprocess.run(
        [sys.executable, "-c", JAX_SCRIPT, str(work)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_DEADLINE,
    )
    assert proc.returncode == 0 and "JAX-DONE" in proc.stdout, proc.stderr[
        -3000:
    ]
    with open(work / "multidevice.pkl", "rb") as f:
        return pickle.load(f)


def test_two_device_step_is_sharded(runs):
    one, two = runs[1], runs[2]
    # The global batch of 8 is split 4 + 4 over the two devices, and the
    # compiled program each device runs takes a batch of 4 reals (one
    # device: the whole 8).
    assert two["reals_devices"] == 2
    assert two["reals_shards"] == [(4, 16, 16, 3)] * 2
    assert two["hlo_u8_shapes"] == ["u8[4,16,16,3]"]
    assert one["reals_devices"] == 1
    assert one["hlo_u8_shapes"] == ["u8[8,16,16,3]"]
    # The updated weights come back replicated on both devices.
    assert two["weight_devices"] == 2


def test_two_devices_match_one(runs):
    one, two = runs[1], runs[2]
    # Same seed, same initial weights: otherwise nothing below means much.
    for net in ("G", "D", "Gs"):
        for key, value in one["start"][net].items():
            np.testing.assert_array_equal(two["start"][net][key], value)

    # The partitioned program sums the batch in two halves and adds them,
    # so results differ from one device's only by float32 rounding order
    # (seen: ~1e-7 relative on the losses).
    for i in range(2):
        for key, value in one["stats"][i].items():
            assert two["stats"][i][key] == pytest.approx(
                value, rel=1e-4, abs=1e-6
            ), f"step {i}: {key}"
    assert one["stats"][0]["Loss/D/reg"] > 0  # R1 was part of the step

    # Weights after two steps. With Adam's default epsilon (1e-8) the first
    # step is lr * g / (|g| + 1e-8), about lr * sign(g): an input gradient
    # that is zero in exact arithmetic (synthesis/b4/conv0/bias is
    # followed by an instance norm) and 1e-7 of rounding noise in float32
    # moves the weight by +-lr, differently on one and two devices. The
    # config's adam_epsilon=1e-2 bounds the update's sensitivity to the
    # gradient by lr / epsilon = 0.3, so rounding-level gradient
    # differences stay rounding-level in the weights (seen: 2.4e-7);
    # 1e-5 leaves 40x of margin and still catches any real difference
    # (one step moves a weight by up to lr = 3e-3).
    after1, after2 = one["after"], two["after"]
    for net in ("G", "D", "Gs"):
        assert sorted(after1[net]) == sorted(after2[net]), net
        for key, value in after1[net].items():
            np.testing.assert_allclose(
                after2[net][key],
                value,
                rtol=0,
                atol=1e-5,
                err_msg=f"{net}/{key}",
            )
    # Adam's moments are the gradients (beta1 = 0) and their squares: equal
    # up to rounding relative to each kind's largest entry (seen: 3e-7).
    for opt in ("G_opt", "D_opt"):
        assert sorted(after1[opt]) == sorted(after2[opt]), opt
        for kind in ("_momentum", "_velocity"):
            keys = [k for k in after1[opt] if k.endswith(kind)]
            assert keys, (opt, kind)
            scale = max(np.abs(after1[opt][k]).max() for k in keys)
            for key in keys:
                np.testing.assert_allclose(
                    after2[opt][key],
                    after1[opt][key],
                    rtol=1e-4,
                    atol=1e-5 * scale,
                    err_msg=key,
                )
        # The rest (iteration count, learning rate) exactly.
        for key, value in after1[opt].items():
            if not key.endswith(("_momentum", "_velocity")):
                np.testing.assert_array_equal(after2[opt][key], value, key)
