"""The JAX backend against the TensorFlow one: same step, shared snapshots.

The test process runs Keras on TensorFlow, so the JAX side runs in a
subprocess with KERAS_BACKEND=jax. One subprocess does all the JAX work
(start-up and compilation dominate on CPU); the tests then compare.
"""

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from msg_stylegan import inference, networks, snapshot
from tests.helpers import SUBPROCESS_DEADLINE, tiny_config
from training import training_loop
from training.backends import tensorflow as tf_backend

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.large

# The JAX half: restore the TF start snapshot, generate from it, take the
# step with the injected latents, take one more step (the same latents: one
# compilation; train.py's test covers JAX's own draws), write a snapshot and
# generate from it through inference.load_network.
JAX_SCRIPT = r"""
import pickle, sys
import keras, numpy as np
assert keras.backend.backend() == "jax"
import config as config_lib
from msg_stylegan import inference, snapshot
from training import backends, training_loop
from msg_stylegan import networks

work = sys.argv[1]
with open(f"{work}/inputs.pkl", "rb") as f:
    inputs = pickle.load(f)
backend = backends.get()
assert backend.NAME == "jax"
data = snapshot.load(f"{work}/tf_start.pkl")
cfg = config_lib.Config.from_json(data["config"])
strategy = backend.make_strategy()
state = backend.build_state(cfg, strategy)
training_loop.restore(state, data, "tf_start.pkl")
out = {}
Gs, _ = inference.load_network(f"{work}/tf_start.pkl")
out["from_tf"] = np.asarray(Gs(inputs["z"], noise_mode="const")[-1])
step, compiled = backend.make_train_step(state, cfg, strategy)
out["stats"] = step(inputs["reals"], 0, latents=inputs["latents"])
moved = [compiled.moved]
out["after"] = training_loop.snapshot_data(state, cfg, 8, 1)
models = (state.G, state.D, state.Gs, state.G_opt, state.D_opt)
held = [(v.path, v.value) for m in models for v in m.variables]
step(inputs["reals"], 1, latents=inputs["latents"])
moved.append(compiled.moved)
# The step donates the state it is given: the arrays the variables held
# (Gs's non-trainable state, a copy of G's, excepted).
out["kept"] = sorted(p for p, x in held if not x.is_deleted())
out["gs_ntv"] = sorted(v.path for v in state.Gs.non_trainable_variables)
del held
path = f"{work}/jax_snap.pkl"
snapshot.save(path, training_loop.snapshot_data(state, cfg, 16, 2))
Gs, _ = inference.load_network(path)
out["jax_imgs"] = np.asarray(Gs(inputs["z"], noise_mode="const")[-1])
# A value assigned between steps must reach the step, which otherwise
# reuses the arrays it left on the device.
var = state.D.trainable_variables[0]
marker = np.asarray(var.value) + 100.0
var.assign(marker)
step(inputs["reals"], 1, latents=inputs["latents"])
moved.append(compiled.moved)
out["moved"] = moved
out["total"] = sum(len(m.variables) for m in models)
out["marker_gap"] = float(np.abs(np.asarray(var.value) - marker).max())
with open(f"{work}/jax_out.pkl", "wb") as f:
    pickle.dump(out, f)
print("JAX-DONE")
"""


def _jax_env():
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=str(ROOT))
    env["JAX_PLATFORMS"] = "cpu"
    return env


def _latents(cfg, G, n, rng):
    noise = G.synthesis.noise_resolutions

    def normal(*shape):
        return rng.normal(size=shape).astype("float32")

    return {
        "z_d": normal(n, cfg.z_dim),
        "noise_d": [normal(n, r, r, 1) for r in noise],
        "z_g": normal(n, cfg.z_dim),
        "noise_g": [normal(n, r, r, 1) for r in noise],
        "eps": rng.uniform(size=n).astype("float32"),
    }


@pytest.fixture(scope="module")
def both(tmp_path_factory, synthetic16):
    """The TF step and start snapshot here, the JAX side in a subprocess."""
    work = tmp_path_factory.mktemp("jax")
    cfg = tiny_config(16, batch=8, xla=False, data=synthetic16)
    strategy = tf_backend.make_strategy(devices=["/cpu:0"])
    state = tf_backend.build_state(cfg, strategy)
    # Non-zero noise strengths, so the injected noise matters.
    for net in (state.G, state.Gs):
        for v in net.trainable_variables:
            if "noise/strength" in v.path:
                v.assign(np.full(v.shape, 0.1, "float32"))
    start = training_loop.snapshot_data(state, cfg, 0, 0)
    snapshot.save(work / "tf_start.pkl", start)
    rng = np.random.default_rng(1)
    inputs = {
        "reals": training_loop.load_images(cfg.data, cfg.batch),
        "latents": _latents(cfg, state.G, cfg.batch, rng),
        "z": rng.normal(size=(4, cfg.z_dim)).astype("float32"),
    }
    with open(work / "inputs.pkl", "wb") as f:
        pickle.dump(inputs, f)
    proc = subprocess.Popen(
        [sys.executable, "-c", JAX_SCRIPT, str(work)],
        cwd=ROOT,
        env=_jax_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # The TF step runs while the subprocess starts up and compiles.
    step, _ = tf_backend.make_train_step(state, cfg, strategy)
    stats = step(inputs["reals"], 0, latents=inputs["latents"])
    after = training_loop.snapshot_data(state, cfg, 8, 1)
    stdout, stderr = proc.communicate(timeout=SUBPROCESS_DEADLINE)
    assert proc.returncode == 0 and "JAX-DONE" in stdout, stderr[-3000:]
    with open(work / "jax_out.pkl", "rb") as f:
        jax_out = pickle.load(f)
    tf_out = {"stats": stats, "after": after, "start": start}
    return cfg, work, inputs, tf_out, jax_out


def test_one_step_matches_tensorflow(both):
    cfg, _, _, tf_out, jax_out = both
    for key, value in tf_out["stats"].items():
        assert jax_out["stats"][key] == pytest.approx(
            value, rel=1e-4, abs=1e-5
        ), key
    assert tf_out["stats"]["Loss/D/reg"] > 0  # R1 was part of the step
    # beta1 = 0: Adam's first moment after one step IS the gradient (R1's
    # second order included), so equal moments mean equal gradients.
    for opt in ("G_opt", "D_opt"):
        ours, theirs = tf_out["after"][opt], jax_out["after"][opt]
        assert sorted(ours) == sorted(theirs)
        moments = [k for k in ours if k.endswith("_momentum")]
        assert moments
        scale = max(np.abs(ours[k]).max() for k in moments)
        for key in moments:
            np.testing.assert_allclose(
                theirs[key],
                ours[key],
                rtol=1e-3,
                atol=1e-5 * scale,
                err_msg=key,
            )
    # Weights loosely: Adam's first step is about lr * sign(g).
    for net in ("G", "D", "Gs"):
        for key, a in tf_out["after"][net].items():
            if not a.dtype.kind == "f":
                continue
            np.testing.assert_allclose(
                jax_out["after"][net][key], a, atol=2 * cfg.lr, err_msg=key
            )
    key = "mapping/w_avg"
    assert not np.allclose(tf_out["after"]["G"][key], tf_out["start"]["G"][key])
    np.testing.assert_allclose(
        jax_out["after"]["G"][key], tf_out["after"]["G"][key], atol=1e-5
    )


def test_jax_step_moves_only_what_changed(both):
    # The first step places every variable on the device; later ones reuse
    # the arrays they returned, and move a variable assigned in between.
    cfg, _, _, _, jax_out = both
    assert jax_out["moved"] == [jax_out["total"], 0, 1]
    # That variable's Adam step started from the assigned value (about lr
    # away from it), not from the stale array 100 away.
    assert jax_out["marker_gap"] < 10 * cfg.lr
    # Each step writes the new state into the buffers of the old (donated:
    # no second copy of the weights and Adam moments is allocated).
    assert jax_out["kept"] == jax_out["gs_ntv"]


def test_tensorflow_snapshot_generates_the_same_on_jax(both):
    _, work, inputs, _, jax_out = both
    Gs, _ = inference.load_network(work / "tf_start.pkl")
    ours = np.asarray(Gs(inputs["z"], noise_mode="const")[-1])
    np.testing.assert_allclose(jax_out["from_tf"], ours, atol=1e-4)


def test_jax_snapshot_loads_and_resumes_on_tensorflow(both):
    cfg, work, inputs, _, jax_out = both
    path = work / "jax_snap.pkl"
    Gs, _ = inference.load_network(path)
    ours = np.asarray(Gs(inputs["z"], noise_mode="const")[-1])
    np.testing.assert_allclose(jax_out["jax_imgs"], ours, atol=1e-4)
    # The whole training state, optimizers included, restores on TF.
    strategy = tf_backend.make_strategy(devices=["/cpu:0"])
    state = tf_backend.build_state(cfg, strategy)
    data = snapshot.load(path)
    training_loop.restore(state, data, path)
    assert int(state.G_opt.iterations.numpy()) == 2
    np.testing.assert_array_equal(
        networks.get_state(state.D)["b16/fromrgb/kernel"],
        data["D"]["b16/fromrgb/kernel"],
    )


def test_train_py_with_jax_backend(tmp_path):
    from datasets import dataset_tool

    data = tmp_path / "syn16"
    dataset_tool.main(
        [
            "create_synthetic",
            str(data),
            "--resolution",
            "16",
            "--num-images",
            "40",
        ]
    )
    out = tmp_path / "runs"
    env = _jax_env()
    env.pop("KERAS_BACKEND")  # the flag alone must pick the backend
    proc = subprocess.run(
        [
            sys.executable,
            "train.py",
            "--backend=jax",
            "--config=msg-stylegan-demo",
            f"--data={data}",
            f"--outdir={out}",
            "--batch=8",
            "--kimg=0.016",
            "--tick=0.008",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_DEADLINE,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = list(out.iterdir())
    log = (run / "log.txt").read_text()
    assert "backend jax" in log and "tick 2" in log, log
    assert (run / "network-final.pkl").is_file()
    assert (run / "16x16" / "fakes000000.png").is_file()
    assert (run / "stats.jsonl").read_text().count("\n") == 2
