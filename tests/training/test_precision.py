"""fp16 with dynamic loss scaling on both backends (training/precision.py).

Each backend: normal steps apply and count towards growth; a scale so
large that the fp16 backward overflows skips both updates, leaves weights
and Adam untouched and halves the scale; the growth step doubles it; the
scale survives a snapshot round trip and an optimizer reset.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import config as config_lib
from msg_stylegan import networks, snapshot
from tests.helpers import SUBPROCESS_DEADLINE, tiny_config
from training import precision, schedule, training_loop
from training.backends import tensorflow as tf_backend

ROOT = Path(__file__).resolve().parents[2]

# Runs in a backend's process: prints one JSON line of what it saw.
SCRIPT = r"""
import json, sys
import numpy as np
from training import backends, precision, training_loop
from tests.helpers import tiny_config

backend = backends.get()
cfg = tiny_config(
    8, batch=8, mixed_precision="fp16", xla=True, data=sys.argv[1]
)
strategy = backend.make_strategy()
state = backend.build_state(cfg, strategy)
reals = training_loop.load_images(cfg.data, cfg.batch)
step, _ = backend.make_train_step(state, cfg, strategy)
out = {"dtype": str(state.D.compute_dtype)}

loss_scales = [precision.LossScale(o) for o in (state.G_opt, state.D_opt)]

def scales():
    return [ls.value() for ls in loss_scales]

def counters():
    return [ls.growth_count() for ls in loss_scales]

def kernel():
    return np.asarray(state.D.trainable_variables[0].value).copy()

# StyleGAN's G at initialisation overflows fp16 above a scale of about 1
# (the 4x4 constant has zero variance); the loop's default finds that.
for ls in loss_scales:
    ls.assign(1.0)
stats = [step(reals, i) for i in range(2)]
out["normal"] = dict(stats=stats[-1], scales=scales(), counters=counters())
for ls in loss_scales:
    ls.assign(2.0**100)
before, iters = kernel(), int(np.asarray(state.D_opt.iterations.value))
s = step(reals, 2)
out["overflow"] = dict(
    skipped=[s["Progress/skipped_G"], s["Progress/skipped_D"]],
    scales=scales(), counters=counters(),
    unchanged=bool(np.array_equal(before, kernel())),
    iterations=[iters, int(np.asarray(state.D_opt.iterations.value))],
)
for ls in loss_scales:
    ls.assign(1.0, growth_count=precision.GROWTH_STEPS - 1)
s = step(reals, 3)
out["growth"] = dict(
    skipped=[s["Progress/skipped_G"], s["Progress/skipped_D"]],
    scales=scales(), counters=counters(),
)
print("RESULT " + json.dumps(out))
"""


def _run(backend_name, data):
    env = dict(os.environ, KERAS_BACKEND=backend_name, PYTHONPATH=str(ROOT))
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, data],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_DEADLINE,
    )
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT ") :])


@pytest.mark.large
@pytest.mark.parametrize("backend_name", ["tensorflow", "jax"])
def test_fp16_loss_scaling(backend_name, synthetic8):
    out = _run(backend_name, synthetic8)
    assert out["dtype"] == "float16"
    normal = out["normal"]
    assert all(np.isfinite(v) for v in normal["stats"].values())
    assert normal["stats"]["Progress/skipped_D"] == 0
    assert normal["stats"]["Progress/skipped_G"] == 0
    assert normal["scales"] == [1.0, 1.0]
    assert normal["counters"] == [2, 2]
    overflow = out["overflow"]
    assert overflow["skipped"] == [1.0, 1.0]
    assert overflow["scales"] == [2.0**99, 2.0**99]
    assert overflow["counters"] == [0, 0]
    assert overflow["unchanged"]
    assert overflow["iterations"][0] == overflow["iterations"][1]
    growth = out["growth"]
    assert growth["skipped"] == [0.0, 0.0]
    assert growth["scales"] == [2.0, 2.0]
    assert growth["counters"] == [0, 0]


def test_fp16_scale_is_in_snapshots_and_survives_a_reset(synthetic8):
    cfg = tiny_config(8, batch=8, mixed_precision="fp16", data=synthetic8)
    strategy = tf_backend.make_strategy(devices=["/cpu:0"])
    state = tf_backend.build_state(cfg, strategy)
    assert precision.is_scaled(state.D_opt)
    precision.LossScale(state.D_opt).assign(2.0**9)
    data = training_loop.snapshot_data(state, cfg, 0, 0)
    assert data["D_opt"]["D_opt_loss_scale/dynamic_scale"] == 2.0**9
    # Adam's own paths do not change with the precision.
    plain = tf_backend.build_state(
        config_lib.override(cfg, mixed_precision="off"), strategy
    )
    adam_paths = set(snapshot.optimizer_state(plain.D_opt))
    assert adam_paths < set(data["D_opt"])
    other = tf_backend.build_state(cfg, strategy)
    snapshot.set_optimizer_state(other.D_opt, data["D_opt"], "D_opt")
    assert precision.LossScale(other.D_opt).value() == 2.0**9
    # Resuming at another precision: fp16 -> fp32 drops the scale, fp32 ->
    # fp16 starts it afresh; Adam's state moves either way.
    snapshot.set_optimizer_state(plain.D_opt, data["D_opt"], "D_opt")
    fresh = tf_backend.build_state(cfg, strategy)
    snapshot.set_optimizer_state(
        fresh.D_opt, snapshot.optimizer_state(plain.D_opt), "D_opt"
    )
    assert precision.LossScale(fresh.D_opt).value() == precision.INITIAL_SCALE
    # A progressive reset zeroes Adam, not the loss scale.
    precision.inner(state.D_opt).iterations.assign(5)
    schedule.reset_optimizer(state.D_opt)
    assert int(state.D_opt.iterations.numpy()) == 0
    assert precision.LossScale(state.D_opt).value() == 2.0**9
    assert networks.count_params(state.D) == networks.count_params(plain.D)


def test_fp16_is_a_valid_setting_and_fp8_is_not():
    from dnnlib.util import UserError

    cfg = config_lib.get_config("msg-stylegan-demo")
    assert config_lib.override(cfg, mixed_precision="fp16")
    with pytest.raises(UserError, match="valid: off, bf16, fp16"):
        config_lib.override(cfg, mixed_precision="fp8")


def test_fp16_policy_builds_float16_networks():
    cfg = tiny_config(8, mixed_precision="fp16")
    assert precision.dtype_policy(cfg) == "mixed_float16"
    strategy = tf_backend.make_strategy(devices=["/cpu:0"])
    state = tf_backend.build_state(cfg, strategy)
    assert state.G.compute_dtype == "float16"
    assert state.G.trainable_variables[0].dtype == "float32"


@pytest.mark.large
def test_fp16_run_finds_its_scale_without_calling_it_divergence(
    synthetic8, tmp_path, capsys
):
    # From 2**15 the scale halves on every overflow until G fits (about 1
    # at initialisation): more skips in a row than max_skipped_steps, yet
    # not divergence.
    cfg = tiny_config(
        8,
        batch=8,
        xla=False,
        data=synthetic8,
        kimg_per_tick=0.064,
        network_snapshot_ticks=100,
        grid_size=2,
        mixed_precision="fp16",
        total_kimg=0.24,
        max_skipped_steps=3,
    )
    training_loop.training_loop(cfg, str(tmp_path))
    assert capsys.readouterr().out.count("fp16 overflow") > 3
    final = snapshot.load(tmp_path / "network-final.pkl")
    scale = final["G_opt"]["G_opt_loss_scale/dynamic_scale"]
    assert 0 < scale < precision.INITIAL_SCALE
    assert final["G_opt"]["G_opt/iteration"] > 0  # updates were applied
