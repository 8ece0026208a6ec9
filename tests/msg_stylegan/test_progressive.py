"""Progressive growing in the networks: fades, blends and style mixing
against NumPy (SPEC section 10)."""

import keras
import numpy as np
import pytest

from msg_stylegan import networks
from msg_stylegan import progressive as prog
from tests.helpers import tiny_config


def _up(x, f=2):
    return x.repeat(f, axis=1).repeat(f, axis=2)


def _down(x, f=2):
    n, h, w, c = x.shape
    return x.reshape(n, h // f, f, w // f, f, c).mean(axis=(2, 4))


@pytest.fixture(scope="module")
def nets():
    cfg = tiny_config(32, architecture="stylegan", progressive=True)
    G, D = networks.build_networks(cfg)
    return cfg, G, D


def _z(n=4, dim=16, seed=0):
    return np.random.RandomState(seed).randn(n, dim).astype("float32")


def _levels(G, z):
    ws = G.mapping(z)
    return [np.asarray(x) for x in G.synthesis(ws, noise_mode="const")]


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_generator_fade_is_the_blend_of_two_rgb_heads(nets, alpha):
    _, G, _ = nets
    z = _z()
    levels = _levels(G, z)  # 4, 8, 16, 32
    out = G(z, noise_mode="const", resolution=16, alpha=alpha)
    assert len(out) == 1 and tuple(out[0].shape) == (4, 32, 32, 3)
    rgb16, rgb8 = levels[2], levels[1]
    expected = _up(rgb16 + (_up(rgb8) - rgb16) * alpha)
    np.testing.assert_allclose(np.asarray(out[0]), expected, atol=1e-5)


@pytest.mark.parametrize("lod", [0.0, 0.4, 1.0, 1.5, 2.0, 2.75, 3.0])
def test_stored_lod_gives_the_training_time_output(nets, lod):
    _, G, _ = nets
    z = _z(seed=1)
    res, alpha = prog.resolution_and_alpha(lod, 32)
    static = G(z, noise_mode="const", resolution=res, alpha=alpha)[0]
    G.lod.assign(lod)
    try:
        runtime = G(z, noise_mode="const")[0]
    finally:
        G.lod.assign(0.0)
    np.testing.assert_allclose(
        np.asarray(runtime), np.asarray(static), atol=1e-5
    )


def test_discriminator_fade_enters_two_blocks(nets):
    _, _, D = nets
    img = np.random.RandomState(2).randn(4, 32, 32, 3).astype("float32")
    alpha = 0.25
    got = np.asarray(D([img], resolution=16, alpha=alpha))
    # By hand: b16 from its fromRGB on the 16x16 image, blended with b8's
    # fromRGB on the 8x8 image, then b8 and the 4x4 epilogue.
    b16, b8, b4 = D.blocks[-2], D.blocks[-1], D.epilogue
    assert (b16.res, b8.res) == (16, 8)
    x16 = _down(img, 2)
    x = np.asarray(b16(x16, from_rgb=True))
    y = np.asarray(b8.fromrgb_layer(_down(x16)))
    x = x + (y - x) * alpha
    x = b8(x, from_rgb=False)
    expected = np.asarray(b4(x, from_rgb=False))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    # At 4x4 D enters the epilogue through its own fromRGB.
    assert tuple(D([img], resolution=4).shape) == (4, 1)


def test_discriminator_full_resolution_matches_the_plain_path(nets):
    _, _, D = nets
    img = np.random.RandomState(3).randn(4, 32, 32, 3).astype("float32")
    x = img
    for block in D.blocks:
        x = block(x, from_rgb=block is D.blocks[0])
    expected = np.asarray(D.epilogue(x, from_rgb=False))
    np.testing.assert_allclose(
        np.asarray(D([img])), expected, rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("res, alpha", [(8, 0.0), (16, 0.4), (32, 1.0)])
def test_reals_crossfade(res, alpha):
    x = np.random.RandomState(4).randn(2, 32, 32, 3).astype("float32")
    got = np.asarray(prog.process_reals(x, res, alpha))
    cur = _down(x, 32 // res)
    blend = cur + (_up(_down(cur)) - cur) * alpha
    np.testing.assert_allclose(got, _up(blend, 32 // res), atol=1e-6)


def test_style_mixing_switches_at_the_crossover(nets):
    _, G, _ = nets
    z1, z2 = _z(seed=5), _z(seed=6)
    ws1 = np.asarray(G.mapping(z1))
    ws2 = np.asarray(G.mapping(z2))
    for cutoff in (1, 3, 6):
        mixed = np.asarray(prog.mix_styles(ws1, ws2, cutoff))
        np.testing.assert_array_equal(mixed[:, :cutoff], ws1[:, :cutoff])
        np.testing.assert_array_equal(mixed[:, cutoff:], ws2[:, cutoff:])
        # G applies it: the same images as synthesis on the mixed ws.
        mixing = (keras.ops.convert_to_tensor(z2), keras.ops.array(cutoff))
        out = G(z1, noise_mode="const", mixing=mixing, resolution=32)[0]
        ref = G.synthesis(mixed, noise_mode="const")[-1]
        np.testing.assert_allclose(np.asarray(out), np.asarray(ref), atol=1e-5)


def test_mixing_crossover_draws():
    # Probability 1: a layer in [1, layers); probability 0: no mixing.
    for u in np.linspace(0, 0.999, 7):
        c = int(prog.mixing_cutoff(0.5, u, 1.0, 6))
        assert 1 <= c < 6
        assert int(prog.mixing_cutoff(0.5, u, 0.0, 6)) == 6
    drawn = {
        int(prog.mixing_cutoff(0.1, u, 0.9, 6))
        for u in np.linspace(0, 1, 50, endpoint=False)
    }
    assert drawn == {1, 2, 3, 4, 5}


def test_progressive_d_parameter_count_is_nvlabs():
    # NVlabs' StyleGAN D at 1024 with a fromRGB per resolution: 23,087,249
    # (its printout); the fixed-resolution D lacks the lower fromRGBs'
    # 10,112 parameters.
    import config as config_lib

    cfg = config_lib.get_config("stylegan-ffhq")
    with keras.device("cpu"):
        _, D = networks.build_networks(cfg)
    assert networks.count_params(D) == 23_087_249


def test_progressive_needs_the_stylegan_architecture():
    cfg = tiny_config(16, architecture="msg", progressive=True)
    with pytest.raises(ValueError, match="progressive growing needs"):
        networks.build_networks(cfg)
