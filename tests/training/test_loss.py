"""Tests for the losses: multi-scale R1 with the total derivative, others."""

import numpy as np
import pytest
import tensorflow as tf

from msg_stylegan.networks import build_networks
from tests.helpers import tiny_config
from training import loss as loss_lib
from training.backends.tensorflow import real_logits_and_gradients


def _partial_grads(D, imgs):
    """d sum(D) / d(each input), the inputs treated as independent."""
    imgs = [tf.constant(x) for x in imgs]
    with tf.GradientTape() as tape:
        for x in imgs:
            tape.watch(x)
        total = tf.reduce_sum(D(imgs))
    return [g.numpy() for g in tape.gradient(total, imgs)]


def test_multiscale_r1_is_the_total_derivative():
    cfg = tiny_config(16)
    _, D = build_networks(cfg)
    rng = np.random.default_rng(0)
    reals = rng.uniform(-1, 1, size=(4, 16, 16, 3)).astype("float32")
    imgs, logits, grads = real_logits_and_gradients(D, tf.constant(reals))
    assert len(grads) == 3
    # Direct computation: partial derivatives with independent inputs, then
    # the chain rule through 2x2 average pooling (its adjoint spreads each
    # gradient over the 2^k x 2^k block divided by 4^k).
    pyramid = [
        reals.reshape(4, 4, 4, 4, 4, 3).mean(axis=(2, 4)),
        reals.reshape(4, 8, 2, 8, 2, 3).mean(axis=(2, 4)),
        reals,
    ]
    for got, want in zip(imgs, pyramid):
        np.testing.assert_allclose(got.numpy(), want, atol=1e-6)
    partial = _partial_grads(D, pyramid)
    total_full = partial[2].copy()
    for level, factor in ((0, 4), (1, 2)):
        up = partial[level].repeat(factor, 1).repeat(factor, 2)
        total_full += up / factor**2
    np.testing.assert_allclose(
        grads[2].numpy(), total_full, rtol=1e-4, atol=1e-6
    )
    # The lower scales' gradients are totals through the coarser ones too.
    np.testing.assert_allclose(
        grads[0].numpy(), partial[0], rtol=1e-4, atol=1e-6
    )
    assert np.abs(grads[2].numpy() - partial[2]).max() > 1e-6
    # R1 = mean over scales and samples of the per-sample squared norms.
    r1 = loss_lib.r1_penalty([g.numpy() for g in grads]).numpy()
    want = np.mean(
        [(g.numpy() ** 2).sum(axis=(1, 2, 3)) for g in grads], axis=0
    )
    np.testing.assert_allclose(r1, want, rtol=1e-5)


def test_losses_against_formulas():
    r = np.array([[0.5], [-1.0], [2.0], [0.0]], "float32")
    f = np.array([[-0.3], [1.5], [0.2], [-2.0]], "float32")
    sp = lambda x: np.log1p(np.exp(x))  # noqa: E731
    rf, ff = r[:, 0], f[:, 0]
    want = {
        "logistic": (sp(ff) + sp(-rf), sp(-ff)),
        "wgan-gp": (ff - rf, -ff),
        "hinge": (np.maximum(0, 1 - rf) + np.maximum(0, 1 + ff), -ff),
        "lsgan": (0.5 * ((rf - 1) ** 2 + ff**2), 0.5 * (ff - 1) ** 2),
        "relativistic-hinge": (
            np.maximum(0, 1 - (rf - ff.mean()))
            + np.maximum(0, 1 + (ff - rf.mean())),
            np.maximum(0, 1 + (rf - ff.mean()))
            + np.maximum(0, 1 - (ff - rf.mean())),
        ),
    }
    assert sorted(want) == loss_lib.loss_names()
    for name, (d_want, g_want) in want.items():
        loss = loss_lib.get_loss(name)
        np.testing.assert_allclose(
            np.asarray(loss.d_loss(r, f)), d_want, rtol=1e-5, atol=1e-6
        )
        np.testing.assert_allclose(
            np.asarray(loss.g_loss(f, r)), g_want, rtol=1e-5, atol=1e-6
        )
    with pytest.raises(ValueError, match="valid losses"):
        loss_lib.get_loss("wgan")


def test_wgan_gp_shares_epsilon_across_scales():
    rng = np.random.default_rng(1)
    reals = [rng.normal(size=(3, s, s, 3)).astype("float32") for s in (4, 8)]
    fakes = [rng.normal(size=(3, s, s, 3)).astype("float32") for s in (4, 8)]
    eps = np.array([0.0, 0.5, 1.0], "float32")
    mix = [np.asarray(m) for m in loss_lib.interpolate(reals, fakes, eps)]
    for m, r, f in zip(mix, reals, fakes):
        np.testing.assert_allclose(m[0], f[0], atol=1e-6)
        np.testing.assert_allclose(m[1], 0.5 * (r[1] + f[1]), atol=1e-6)
        np.testing.assert_allclose(m[2], r[2], atol=1e-6)
    grads = [
        np.full((3, 4, 4, 3), 0.1, "float32"),
        np.zeros((3, 8, 8, 3), "float32"),
    ]
    gp = np.asarray(loss_lib.gradient_penalty(grads))
    norm = np.sqrt(48 * 0.01)
    want = ((norm - 1) ** 2 + (np.sqrt(1e-8) - 1) ** 2) / 2
    np.testing.assert_allclose(gp, want, rtol=1e-4)
