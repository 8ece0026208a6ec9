"""Tests for the MSG-StyleGAN generator: shapes, truncation, determinism."""

import numpy as np
import pytest

from msg_stylegan.generator import Generator, num_ws_for
from msg_stylegan.networks import build_generator, count_params
from tests.helpers import tiny_config


@pytest.mark.parametrize("res", [32, 64])
def test_generator_returns_every_scale(res):
    G = build_generator(tiny_config(res))
    z = np.random.default_rng(0).normal(size=(2, 16)).astype("float32")
    imgs = G(z)
    # log2(R) - 1 images, 4x4 first, 3 channels.
    assert len(imgs) == int(np.log2(res)) - 1
    sizes = [tuple(img.shape) for img in imgs]
    assert sizes == [(2, 4 * 2**i, 4 * 2**i, 3) for i in range(len(imgs))]
    assert G.num_ws == num_ws_for(res) == 2 * int(np.log2(res)) - 2


def test_generator_parameter_count_matches_arithmetic():
    cfg = tiny_config(16, z_dim=8, w_dim=8, channel_base=64, channel_max=8)
    G = build_generator(cfg)
    w, c = 8, 8  # C(4) = C(8) = min(64 / res, 8) = 8; C(16) = 4
    mapping = 2 * (w * w + w)
    style = lambda ch: w * 2 * ch + 2 * ch  # noqa: E731
    layer = lambda cin, ch, conv: (  # noqa: E731
        (9 * cin * ch if conv else 0) + ch + ch + style(ch)
    )
    torgb = lambda ch: ch * 3 + 3  # noqa: E731
    c16 = 4
    synthesis = (
        16 * c  # const
        + layer(c, c, False)
        + layer(c, c, True)
        + torgb(c)  # b4
        + layer(c, c, True)
        + layer(c, c, True)
        + torgb(c)  # b8
        + layer(c, c16, True)
        + layer(c16, c16, True)
        + torgb(c16)  # b16
    )
    assert count_params(G) == mapping + synthesis


def test_truncation_identity_and_cutoff():
    G = build_generator(tiny_config(32, truncation_cutoff=3))
    G.mapping.w_avg.assign(np.full(16, 0.25, "float32"))
    z = np.random.default_rng(1).normal(size=(3, 16)).astype("float32")
    ws = np.asarray(G.mapping(z))
    ws1 = np.asarray(G.mapping(z, truncation_psi=1.0, truncation_cutoff=3))
    np.testing.assert_array_equal(ws, ws1)
    ws0 = np.asarray(G.mapping(z, truncation_psi=0.0, truncation_cutoff=3))
    np.testing.assert_allclose(ws0[:, :3], 0.25)
    np.testing.assert_array_equal(ws0[:, 3:], ws[:, 3:])
    half = np.asarray(G.mapping(z, truncation_psi=0.5, truncation_cutoff=3))
    np.testing.assert_allclose(
        half[:, :3], 0.25 + 0.5 * (ws[:, :3] - 0.25), rtol=1e-5, atol=1e-6
    )


def test_same_seed_and_const_noise_give_identical_images():
    G = build_generator(tiny_config(32))
    z = np.random.default_rng(7).normal(size=(2, 16)).astype("float32")
    # Give the noise a visible effect so the modes differ.
    for v in G.trainable_variables:
        if v.path.endswith("noise/strength"):
            v.assign(np.ones(v.shape, "float32"))
    a = G(z, noise_mode="const")
    b = G(z, noise_mode="const")
    for x, y in zip(a, b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    r1 = np.asarray(G(z, noise_mode="random")[-1])
    r2 = np.asarray(G(z, noise_mode="random")[-1])
    assert np.abs(r1 - r2).max() > 1e-4
    n1 = np.asarray(G(z, noise_mode="none")[-1])
    n2 = np.asarray(G(z, noise_mode="none")[-1])
    np.testing.assert_array_equal(n1, n2)


def test_bad_resolution_is_a_clear_error():
    for res in (48, 4, 2048):
        with pytest.raises(ValueError, match="power of two in 8..1024"):
            Generator(img_resolution=res)
