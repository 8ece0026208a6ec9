"""The same networks run forward and backward on Keras' JAX backend."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import SUBPROCESS_DEADLINE

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import jax, jax.numpy as jnp, keras, numpy as np
assert keras.backend.backend() == "jax"
from tests.helpers import tiny_config
from msg_stylegan.networks import build_networks
cfg = tiny_config(16)
G, D = build_networks(cfg)
z = np.random.default_rng(0).normal(size=(4, 16)).astype("float32")

tv = [v.value for v in G.trainable_variables]
ntv = [v.value for v in G.non_trainable_variables]
dtv = [v.value for v in D.trainable_variables]
dntv = [v.value for v in D.non_trainable_variables]

def loss_fn(tv):
    imgs, _ = G.stateless_call(tv, ntv, z, noise_mode="const")
    logits, _ = D.stateless_call(dtv, dntv, imgs)
    return jnp.mean(jax.nn.softplus(-logits))

imgs, _ = jax.jit(
    lambda tv: G.stateless_call(tv, ntv, z, noise_mode="const")
)(tv)
assert [i.shape[1] for i in imgs] == [4, 8, 16]
logits, _ = D.stateless_call(dtv, dntv, imgs)
assert logits.shape == (4, 1)
grads = jax.jit(jax.grad(loss_fn))(tv)
names = [v.path for v in G.trainable_variables]
norms = {n: float(jnp.linalg.norm(g)) for n, g in zip(names, grads)}
torgb = [n for n in names if "/torgb/kernel" in n]
assert len(torgb) == 3 and all(norms[n] > 0 for n in torgb), norms
print("JAX-OK", len(names))
"""


@pytest.mark.large
def test_forward_and_gradient_on_jax_backend():
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=str(ROOT))
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_DEADLINE,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "JAX-OK" in proc.stdout
