"""Tests for the MSG-ProGAN / ProGAN generator and discriminator."""

import math
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from msg_stylegan.networks import count_params
from msg_stylegan.progan import ProGANDiscriminator, ProGANGenerator
from msg_stylegan.progressive import blend_all_levels
from msg_stylegan.spectral_norm import SpectralNorm
from tests.helpers import SUBPROCESS_DEADLINE

ROOT = Path(__file__).resolve().parents[2]
Z = 16
SMALL = dict(channel_base=128, channel_max=16)


def make_g(res=32, **kwargs):
    G = ProGANGenerator(res, z_dim=Z, **{**SMALL, **kwargs})
    G.build((None, Z))
    return G


def make_d(res=32, **kwargs):
    D = ProGANDiscriminator(res, **{**SMALL, **kwargs})
    D.build([(None, r, r, 3) for r in D.resolutions[-D.num_inputs :]])
    return D


def latents(n=4, seed=0):
    return np.random.default_rng(seed).normal(size=(n, Z)).astype("float32")


def lrelu(x):
    return np.where(x >= 0, x, 0.2 * x)


def pixel_norm(x):
    return x / np.sqrt(np.mean(x**2, axis=-1, keepdims=True) + 1e-8)


def conv3x3(x, kernel, bias):
    """NumPy 'same' 3x3 convolution, NHWC."""
    n, h, w, _ = x.shape
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    out = np.zeros((n, h, w, kernel.shape[-1]))
    for i in range(3):
        for j in range(3):
            out += xp[:, i : i + h, j : j + w] @ kernel[i, j]
    return out + bias


def scaled(layer):
    """An equalized layer's kernel at run time."""
    return np.asarray(layer.kernel) * layer.weight_scale


def relpath(v):
    """A variable's path below the model name (`b8/conv0/kernel`)."""
    return v.path.split("/", 1)[1]


def rms(x):
    """Root mean square over channels, per pixel."""
    return np.sqrt(np.mean(np.asarray(x) ** 2, axis=-1))


def up(x, f=2):
    return x.repeat(f, axis=1).repeat(f, axis=2)


def down(x, f=2):
    n, h, w, c = x.shape
    return x.reshape(n, h // f, f, w // f, f, c).mean(axis=(2, 4))


@pytest.mark.parametrize("res", [32, 64])
def test_shapes_of_generator_and_both_discriminators(res):
    G = make_g(res)
    imgs = G(latents())
    # log2(R) - 1 images, 4x4 first.
    sizes = [tuple(img.shape) for img in imgs]
    assert sizes == [(4, 4 * 2**i, 4 * 2**i, 3) for i in range(len(imgs))]
    assert len(imgs) == int(math.log2(res)) - 1
    for arch in ("msg", "progan"):
        D = make_d(res, architecture=arch)
        assert D.num_inputs == (len(imgs) if arch == "msg" else 1)
        logits = D(imgs[-D.num_inputs :])
        assert tuple(logits.shape) == (4, 1)
        assert np.isfinite(np.asarray(logits)).all()


def test_parameter_counts_match_arithmetic():
    G = make_g(16, channel_base=64, channel_max=8)
    # C(4) = C(8) = min(64 / res, 8) = 8; C(16) = 4; z_dim 16.
    conv = lambda cin, c: 9 * cin * c + c  # noqa: E731
    torgb = lambda c: 3 * c + 3  # noqa: E731
    g = (
        (Z * 16 * 8 + 8) + conv(8, 8) + torgb(8)  # b4: dense, channel bias
        + conv(8, 8) + conv(8, 8) + torgb(8)  # b8
        + conv(8, 4) + conv(4, 4) + torgb(4)  # b16
    )  # fmt: skip
    assert count_params(G) == g == 4_317
    # MSG-GAN v1's generator: the same weights, plain and unnormalised.
    V = make_g(
        16, channel_base=64, channel_max=8, pixel_norm=False,
        equalized_lr=False,
    )  # fmt: skip
    assert count_params(V) == g
    assert [relpath(v) for v in V.trainable_variables] == [
        relpath(v) for v in G.trainable_variables
    ]
    assert [v.shape for v in V.trainable_variables] == [
        v.shape for v in G.trainable_variables
    ]
    fromrgb = lambda c: 3 * c + c  # noqa: E731
    # 4x4: [+3 combine] +1 mbstd -> 3x3 conv, 4x4 valid conv, dense to 1.
    end = lambda extra: conv(8 + extra + 1, 8) + (16 * 8 * 8 + 8) + 9  # noqa: E731
    progan = (
        fromrgb(4) + conv(4, 4) + conv(4, 8)  # b16
        + conv(8, 8) + conv(8, 8)  # b8
        + end(0)
    )  # fmt: skip
    D = make_d(16, channel_base=64, channel_max=8, architecture="progan")
    assert count_params(D) == progan == 3_325
    # Progressive: a fromRGB in every block, 4x4 included.
    D = make_d(
        16, channel_base=64, channel_max=8, architecture="progan",
        progressive=True,
    )  # fmt: skip
    assert count_params(D) == progan + fromrgb(8) * 2 == 3_389
    # MSG, simple: the lower blocks' first conv reads 3 more channels.
    msg = progan + 9 * 3 * 8 + 9 * 3 * 8
    D = make_d(16, channel_base=64, channel_max=8, combine="simple")
    assert count_params(D) == msg == 3_757
    # lin_cat adds a fromRGB to C/2 = 4 channels at 8 and 4 and its width.
    lin_cat = progan + 2 * (fromrgb(4) + 9 * 4 * 8)
    D = make_d(16, channel_base=64, channel_max=8, combine="lin_cat")
    assert count_params(D) == lin_cat == 3_933
    # Spectral norm: plain convs with the same weights and biases.
    D = make_d(16, channel_base=64, channel_max=8, spectral_norm=True)
    assert count_params(D) == msg


def test_published_progan_parameter_counts_at_1024():
    # ProGAN (fmap_base 8192 = channel_base 16384 per res, max 512).
    # G: 4x4 dense 512*16*512 + 512 and conv 9*512*512 + 512; two convs
    # per block 8..1024 (C = 512 up to 32, then 256, 128, 64, 32, 16);
    # a toRGB 3C + 3 at each of the 9 levels: 23,079,115 as NVIDIA's.
    G = ProGANGenerator(1024)
    G.build((None, 512))
    assert count_params(G) == 23_079_115
    # D: the same convs mirrored, 3x3 conv on 513 channels and 4x4 valid
    # conv at 4x4, dense to 1, a fromRGB 3C + C per level: 23,087,249.
    D = ProGANDiscriminator(1024, architecture="progan", progressive=True)
    D.build((None, 1024, 1024, 3))
    assert count_params(D) == 23_087_249


def _grad_norms(G, D, seed=1):
    z = tf.random.normal((4, Z), seed=seed)
    with tf.GradientTape() as tape:
        imgs = G(z)
        logits = D(imgs[-D.num_inputs :], training=True)
        loss = tf.reduce_mean(tf.nn.softplus(-logits))
    variables = G.trainable_variables + D.trainable_variables
    grads = tape.gradient(loss, variables)
    return {
        v.path: 0.0 if g is None else float(tf.norm(g))
        for v, g in zip(variables, grads)
    }


@pytest.mark.parametrize(
    "combine,spectral_norm",
    [("simple", False), ("lin_cat", False), ("cat_lin", True)],
)
def test_msg_property_every_torgb_and_combine_gets_gradient(
    combine, spectral_norm
):
    G = make_g(16)
    D = make_d(16, combine=combine, spectral_norm=spectral_norm)
    norms = _grad_norms(G, D)
    torgb = [k for k in norms if "/torgb/" in k]
    heads = [k for k in norms if "/combine/" in k or "/fromrgb/" in k]
    assert len(torgb) == 2 * 3  # kernel and bias at b4, b8, b16
    if combine != "simple":
        assert {k.split("/")[1] for k in heads} == {"b4", "b8", "b16"}
    for key in torgb + heads:
        assert norms[key] > 0, f"no gradient reaches {key}"


def test_progan_mode_only_last_torgb_gets_gradient():
    G, D = make_g(16), make_d(16, architecture="progan")
    norms = _grad_norms(G, D)
    for key, value in norms.items():
        if "/torgb/" in key:
            assert (value > 0) == ("/b16/" in key), key


def test_hypersphere_and_4x4_block_against_numpy():
    G = make_g(16)
    b4 = G.blocks[0]
    rng = np.random.default_rng(3)
    b4.bias.assign(rng.normal(size=16).astype("float32"))
    z = latents(2, seed=4) * np.float32([[0.1], [7.0]])
    got = np.asarray(G.features(z, 4)[0])
    # z on the sphere of radius sqrt(z_dim), whatever its length.
    zn = z / np.linalg.norm(z, axis=1, keepdims=True) * np.sqrt(Z)
    w = np.asarray(b4.dense.kernel) * math.sqrt(2) / 4 / math.sqrt(Z)
    x = (zn @ w).reshape(2, 4, 4, 16) + np.asarray(b4.bias)
    x = pixel_norm(lrelu(x))
    x = conv3x3(x, scaled(b4.conv1), np.asarray(b4.conv1.bias))
    want = pixel_norm(lrelu(x))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_pixel_norm_switch_against_numpy():
    keras.utils.set_random_seed(2)
    G = make_g(16)
    V = make_g(16, pixel_norm=False)
    for src, dst in zip(G.trainable_variables, V.trainable_variables):
        dst.assign(src)
    x = np.random.default_rng(8).normal(size=(2, 4, 4, 16))
    x = 3 * x.astype("float32")
    # With pixel norm every feature vector of b8 has unit RMS.
    np.testing.assert_allclose(rms(G.blocks[1](x)), 1.0, rtol=1e-4)
    # Without: (upsample, 3x3 conv, lrelu) twice, nothing rescaled.
    b8 = V.blocks[1]
    y = lrelu(conv3x3(up(x), scaled(b8.conv0), np.asarray(b8.conv0.bias)))
    want = lrelu(conv3x3(y, scaled(b8.conv1), np.asarray(b8.conv1.bias)))
    got = np.asarray(b8(x))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert np.abs(rms(got) - 1).max() > 0.1
    # z: on the hypersphere the length of z is lost; v1 keeps it (with
    # zero biases its 4x4 block is positively homogeneous of degree 1).
    z = latents(2)
    a, b = (np.asarray(G.features(s * z, 4)[0]) for s in (1, 7))
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    a, b = (np.asarray(V.features(s * z, 4)[0]) for s in (1, 7))
    np.testing.assert_allclose(b, 7 * a, rtol=1e-4, atol=1e-5)


def test_equalized_lr_switch_init_and_scale_against_numpy():
    keras.utils.set_random_seed(3)
    G = make_g(16)
    P = make_g(16, equalized_lr=False)
    eq, plain = G.blocks[0].conv1, P.blocks[0].conv1  # 3x3, 16 -> 16
    assert isinstance(plain, keras.layers.Conv2D)
    assert not hasattr(plain, "weight_scale")
    # Stored kernels: N(0, 1) scaled at run time by sqrt(2 / fan_in),
    # against N(0, 2 / fan_in) used as stored (2,304 samples each).
    fan_in = 3 * 3 * 16
    he = math.sqrt(2 / fan_in)
    assert eq.weight_scale == pytest.approx(he)
    assert np.std(np.asarray(eq.kernel)) == pytest.approx(1.0, rel=0.1)
    assert np.std(np.asarray(plain.kernel)) == pytest.approx(he, rel=0.1)
    # The 4x4 dense (fan-in z_dim, gain sqrt(2) / 4, 4,096 samples).
    std = np.std(np.asarray(P.blocks[0].dense.kernel))
    assert std == pytest.approx(math.sqrt(2) / 4 / math.sqrt(Z), rel=0.1)
    # The same stored kernel: the plain layer convolves with it as is,
    # so its output is the equalized one over the He scale (lrelu is
    # positively homogeneous; biases zero).
    plain.kernel.assign(eq.kernel)
    x = np.random.default_rng(9).normal(size=(2, 4, 4, 16))
    x = x.astype("float32")
    want = lrelu(conv3x3(x, np.asarray(eq.kernel), np.zeros(16)))
    np.testing.assert_allclose(plain(x), want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        plain(x), np.asarray(eq(x)) / he, rtol=1e-4, atol=1e-4
    )


def test_msg_gan_v1_generator_forward_and_gradient_are_finite():
    G = make_g(16, pixel_norm=False, equalized_lr=False)
    D = make_d(16, spectral_norm=True)
    imgs = G(latents())
    for img in imgs:
        assert np.isfinite(np.asarray(img)).all()
    norms = _grad_norms(G, D)
    for v in G.trainable_variables:
        assert np.isfinite(norms[v.path]) and norms[v.path] > 0, v.path


def test_final_discriminator_block_against_numpy():
    D = make_d(8, architecture="progan", mbstd_group_size=2)
    e = D.epilogue
    rng = np.random.default_rng(5)
    for v in e.trainable_variables:
        v.assign(rng.normal(size=v.shape).astype("float32"))
    x = rng.normal(size=(4, 4, 4, 16)).astype("float32")
    got = np.asarray(e(x, from_rgb=False))
    # Minibatch stddev over groups of 2 consecutive samples, 1 feature.
    g = x.reshape(2, 2, 4, 4, 16)
    s = np.sqrt(g.var(axis=1) + 1e-8).mean(axis=(1, 2, 3))  # [groups]
    s = np.broadcast_to(s.repeat(2)[:, None, None, None], (4, 4, 4, 1))
    y = np.concatenate([x, s], axis=-1)  # [N, 4, 4, C + 1]
    y = lrelu(conv3x3(y, scaled(e.conv), np.asarray(e.conv.bias)))
    y = lrelu(y.reshape(4, -1) @ scaled(e.fc) + np.asarray(e.fc.bias))
    want = y @ scaled(e.out) + np.asarray(e.out.bias)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_progressive_generator_matches_numpy_blend():
    G = make_g(32)
    P = make_g(32, progressive=True)
    for src, dst in zip(G.trainable_variables, P.trainable_variables):
        dst.assign(src)
    z = latents(2)
    imgs = [np.asarray(img) for img in G(z)]  # 4, 8, 16, 32
    alpha = 0.3
    got = np.asarray(P(z, resolution=16, alpha=alpha)[0])
    want = up(imgs[2] + (up(imgs[1]) - imgs[2]) * alpha, 2)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # At 4x4 there is nothing coarser to fade from.
    got4 = np.asarray(P(z, resolution=4, alpha=alpha)[0])
    np.testing.assert_allclose(got4, up(imgs[0], 8), rtol=1e-5, atol=1e-6)
    # The stored lod 1.3 (16x16, alpha 0.3) blends every level the same.
    P.lod.assign(1.3)
    blended = np.asarray(P(z)[0])
    np.testing.assert_allclose(blended, want, rtol=1e-5, atol=1e-5)
    static = np.asarray(blend_all_levels(imgs, 1.3))
    np.testing.assert_allclose(blended, static, rtol=1e-5, atol=1e-6)
    P.lod.assign(0.0)
    np.testing.assert_allclose(np.asarray(P(z)[0]), imgs[-1], atol=1e-6)
    assert [v.path for v in P.non_trainable_variables] == [f"{P.name}/lod"]


def test_progressive_discriminator_matches_hand_computation():
    D = make_d(32, architecture="progan", progressive=True)
    img = np.random.default_rng(6).normal(size=(4, 32, 32, 3))
    img = img.astype("float32")
    b32, b16, b8 = D.blocks
    alpha = 0.4
    got = np.asarray(D(img, resolution=16, alpha=alpha))
    img16 = down(img)
    x = np.asarray(b16(img16, from_rgb=True))
    y = np.asarray(b8.fromrgb_layer(down(img16)))
    x = b8(x + (y - x) * alpha, from_rgb=False)
    want = np.asarray(D.epilogue(x, from_rgb=False))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # Full resolution: the fromRGB at 32 and every block below.
    x = b8(b16(b32(img, from_rgb=True), from_rgb=False), from_rgb=False)
    want = np.asarray(D.epilogue(x, from_rgb=False))
    np.testing.assert_allclose(np.asarray(D(img)), want, rtol=1e-5, atol=1e-5)
    # 4x4 enters the final block through its own fromRGB.
    want = np.asarray(D.epilogue(down(img, 8), from_rgb=True))
    got = np.asarray(D(img, resolution=4, alpha=alpha))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_spectral_norm_kernels_have_unit_norm_and_gradient_through_sigma():
    keras.utils.set_random_seed(1)  # power iteration speed varies with W
    G = make_g(16)
    D = make_d(16, combine="cat_lin", spectral_norm=True)
    sn = [x for x in D._flatten_layers() if isinstance(x, SpectralNorm)]
    # fromRGB, conv0, conv1 at 16; combine, conv0, conv1 at 8; combine,
    # conv, fc, out at 4.
    assert len(sn) == 10
    kernels = [np.asarray(layer.layer.kernel) for layer in sn]
    imgs = G(latents())
    for _ in range(30):  # one power iteration per training call
        D(imgs, training=True)
    for layer, kernel in zip(sn, kernels):
        # The stored kernel is never overwritten.
        np.testing.assert_array_equal(np.asarray(layer.layer.kernel), kernel)
        w, _ = layer.normalized_kernel()
        w = np.asarray(w).reshape(-1, kernel.shape[-1])
        top = np.linalg.svd(w, compute_uv=False)[0]
        assert abs(top - 1) < 0.05, (layer.path, top)
    # W / sigma(W) is scale free, so a gradient through sigma is orthogonal
    # to W (Euler); Keras' assign-the-kernel version would not be.
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(D(imgs, training=True))
    kernel_vars = [layer.layer.kernel for layer in sn]
    grads = tape.gradient(loss, kernel_vars)
    for var, grad in zip(kernel_vars, grads):
        g, w = np.asarray(grad), np.asarray(var)
        assert np.isfinite(g).all() and np.abs(g).max() > 0, var.path
        cos = np.sum(g * w) / (np.linalg.norm(g) * np.linalg.norm(w))
        assert abs(cos) < 1e-3, (var.path, cos)
    # Inference calls leave the power-iteration state alone.
    u = [np.asarray(layer.vector_u) for layer in sn]
    D(imgs)
    for layer, before in zip(sn, u):
        np.testing.assert_array_equal(np.asarray(layer.vector_u), before)


def test_spectral_norm_step_under_mirrored_strategy():
    # vector_u is "only_first_replica": every replica computes the same u
    # from the same W, and assigning it in replica context is allowed.
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        D = make_d(8, architecture="progan", spectral_norm=True)
    u = np.asarray(D.epilogue.conv.vector_u)
    imgs = np.random.default_rng(7).normal(size=(4, 8, 8, 3))

    @tf.function
    def step(x):
        def replica_step(x):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(D(x, training=True))
            return tape.gradient(loss, D.trainable_variables)

        return strategy.run(replica_step, (x,))

    ds = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices(imgs.astype("float32")).batch(4)
    )
    grads = step(next(iter(ds)))
    for g in strategy.experimental_local_results(grads)[0]:
        assert np.isfinite(np.asarray(g)).all()
    assert not np.allclose(np.asarray(D.epilogue.conv.vector_u), u)


def test_get_config_round_trip():
    models = [
        make_g(16, progressive=True),
        make_g(16, pixel_norm=False, equalized_lr=False),
        make_d(16, combine="lin_cat", spectral_norm=True),
        make_d(16, architecture="progan", progressive=True),
    ]
    for model in models:
        clone = type(model).from_config(model.get_config())
        assert clone.get_config() == model.get_config()
    v1 = ProGANGenerator.from_config(models[1].get_config())
    assert (v1.pixel_norm, v1.equalized_lr) == (False, False)
    assert all(not b.pixel_norm and b.convolution == "plain" for b in v1.blocks)
    block = type(v1.blocks[1]).from_config(v1.blocks[1].get_config())
    assert block.get_config() == v1.blocks[1].get_config()
    v1.build((None, Z))
    assert [relpath(v) for v in v1.trainable_variables] == [
        relpath(v) for v in models[1].trainable_variables
    ]
    layer = SpectralNorm(keras.layers.Dense(3), power_iterations=2)
    layer.build((None, 5))
    clone = SpectralNorm.from_config(layer.get_config())
    assert clone.power_iterations == 2 and clone.layer.units == 3


def test_generator_interface():
    G = make_g(16)
    imgs, ws = G(latents(2), truncation_psi=0.7, noise_mode="const",
                 return_ws=True)  # fmt: skip
    assert ws is None and len(imgs) == 3
    assert G.num_ws == 0 and G.noise_resolutions == [] and G.w_avg is None
    assert G.truncation_cutoff is None and G.non_trainable_variables == []
    P = make_g(16, progressive=True)
    out = P(latents(2), resolution=8, alpha=0.5)
    assert len(out) == 1 and tuple(out[0].shape) == (2, 16, 16, 3)


def test_bad_inputs_are_clear_errors():
    G = make_g(32)
    imgs = G(latents())
    D = make_d(32)
    with pytest.raises(ValueError, match="expects 4 images"):
        D(imgs[1:])
    with pytest.raises(ValueError, match="image shapes"):
        D(list(reversed(imgs)))
    with pytest.raises(ValueError, match="progressive.*'progan', got 'msg'"):
        ProGANDiscriminator(32, architecture="msg", progressive=True)
    with pytest.raises(ValueError, match="architecture must be"):
        ProGANDiscriminator(32, architecture="stylegan")
    with pytest.raises(ValueError, match="unknown combine 'sum'.*simple"):
        ProGANDiscriminator(32, architecture="progan", combine="sum")
    with pytest.raises(ValueError, match="no styles to mix"):
        G(latents(), mixing=(latents(), np.int32(2)))
    with pytest.raises(ValueError, match="resolution must be one of"):
        make_g(32, progressive=True)(latents(), resolution=12, alpha=0.5)
    with pytest.raises(ValueError, match="power of two"):
        ProGANGenerator(100)


JAX_SCRIPT = r"""
import jax, jax.numpy as jnp, keras, numpy as np
assert keras.backend.backend() == "jax"
from msg_stylegan.progan import ProGANDiscriminator, ProGANGenerator
small = dict(channel_base=64, channel_max=8)
G = ProGANGenerator(16, z_dim=8, **small)
G.build((None, 8))
D = ProGANDiscriminator(16, combine="cat_lin", spectral_norm=True, **small)
D.build([(None, r, r, 3) for r in D.resolutions])
P = ProGANGenerator(16, z_dim=8, progressive=True, **small)
P.build((None, 8))
z = np.random.default_rng(0).normal(size=(4, 8)).astype("float32")

tv = [v.value for v in G.trainable_variables]
dtv = [v.value for v in D.trainable_variables]
dntv = [v.value for v in D.non_trainable_variables]

def loss_fn(tv, dtv):
    imgs, _ = G.stateless_call(tv, [], z)
    logits, dntv2 = D.stateless_call(dtv, dntv, imgs, training=True)
    return jnp.mean(jax.nn.softplus(-logits)), dntv2

step = jax.jit(jax.value_and_grad(loss_fn, argnums=(0, 1), has_aux=True))
(loss, dntv2), (gg, dg) = step(tv, dtv)
assert np.isfinite(float(loss))
for g in list(gg) + list(dg):
    assert np.isfinite(np.asarray(g)).all()
names = [v.path for v in G.trainable_variables]
torgb = [float(jnp.linalg.norm(g)) for n, g in zip(names, gg) if "torgb/k" in n]
assert len(torgb) == 3 and min(torgb) > 0, torgb
# Only the power-iteration vectors change, and they do.
assert all(v.path.endswith("vector_u") for v in D.non_trainable_variables)
assert all(not np.allclose(a, b) for a, b in zip(dntv, dntv2))
pv = [v.value for v in P.trainable_variables]
pntv = [v.value for v in P.non_trainable_variables]
out, _ = jax.jit(
    lambda pv, a: P.stateless_call(pv, pntv, z, resolution=8, alpha=a)
)(pv, 0.25)
assert out[0].shape == (4, 16, 16, 3)
# MSG-GAN v1's generator: plain Keras layers, no normalisation.
V = ProGANGenerator(16, z_dim=8, pixel_norm=False, equalized_lr=False, **small)
V.build((None, 8))
vv = [v.value for v in V.trainable_variables]
vloss = lambda vv: jnp.mean(jnp.square(V.stateless_call(vv, [], z)[0][-1]))
vl, vg = jax.jit(jax.value_and_grad(vloss))(vv)
assert np.isfinite(float(vl)) and all(np.isfinite(g).all() for g in vg)
print("JAX-OK")
"""


@pytest.mark.large
def test_forward_and_gradient_on_jax_backend():
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=str(ROOT))
    env["JAX_PLATFORMS"] = "cpu"
    # Tiny networks: XLA's CPU optimisation passes cost more than they save
    # (every initializer shape compiles once), 30 s down to 10 s.
    fast = "--xla_backend_optimization_level=0"
    fast += " --xla_llvm_disable_expensive_passes=true"
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + fast).strip()
    proc = subprocess.run(
        [sys.executable, "-c", JAX_SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_DEADLINE,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "JAX-OK" in proc.stdout


def test_bmsg_discriminator_parameter_counts_at_1024_and_256():
    # BMSG-GAN's code (sourcecode/MSG_GAN/GAN.py, Discriminator, with
    # feature_size 512; CustomLayers.py), every layer with a bias:
    # conv(k, cin, cout) = k*k*cin*cout + cout.
    #   top fromRGB 3 -> C(R):            3*C + C
    #   block at r: fromRGB 3 -> C(r)/2 (not at the top), conv 3x3
    #     C(r) -> C(r), conv 3x3 C(r) -> C(r/2)/2:
    #     r = 8, 16, 32: 3*256+256, 9*512*512+512, 9*512*256+256
    #     r = 64: 3*128+128, 9*256*256+256 twice; 128: 3*64+64,
    #     9*128*128+128 twice; 256: 3*32+32, 9*64*64+64 twice;
    #     512: 3*16+16, 9*32*32+32 twice; 1024: 9*16*16+16 twice
    #   final: fromRGB 3 -> 256, conv 3x3 513 -> 512, conv 4x4 512 -> 512,
    #     conv 1x1 512 -> 1.
    def conv(k, cin, cout):
        return k * k * cin * cout + cout

    low = 3 * (conv(1, 3, 256) + conv(3, 512, 512) + conv(3, 512, 256))
    final = conv(1, 3, 256) + conv(3, 513, 512) + conv(4, 512, 512)
    final += conv(1, 512, 1)
    b64 = conv(1, 3, 128) + 2 * conv(3, 256, 256)
    b128 = conv(1, 3, 64) + 2 * conv(3, 128, 128)
    d256 = conv(1, 3, 64) + 2 * conv(3, 64, 64) + b128 + b64 + low + final
    b256 = conv(1, 3, 32) + 2 * conv(3, 64, 64)
    b512 = conv(1, 3, 16) + 2 * conv(3, 32, 32)
    d1024 = conv(1, 3, 16) + 2 * conv(3, 16, 16) + b512 + b256
    d1024 += b128 + b64 + low + final
    assert (d1024, d256) == (18_756_321, 18_733_185)
    for res, want in ((1024, d1024), (256, d256)):
        D = ProGANDiscriminator(res, architecture="bmsg")
        D.build([(None, r, r, 3) for r in D.resolutions])
        assert count_params(D) == want
    # Its generator has ProGAN's weights (only scales and a norm differ).
    G = ProGANGenerator(1024, bmsg=True)
    G.build((None, 512))
    assert count_params(G) == 23_079_115


def test_bmsg_discriminator_against_numpy():
    D = make_d(8, architecture="bmsg", channel_base=64, channel_max=8)
    b8, end = D.blocks[0], D.epilogue
    assert (b8.fromrgb_layer.filters, end.fromrgb_layer.filters) == (8, 4)
    assert b8.out_channels == 4  # C(4) / 2: image + features = C(4)
    rng = np.random.default_rng(3)
    imgs = [rng.normal(size=(5, r, r, 3)).astype("float32") for r in (4, 8)]
    got = np.asarray(D(imgs))
    # Top: linear fromRGB (gain sqrt 2) -> two lrelu 3x3 convs -> pool.
    rgb = imgs[1] @ scaled(b8.fromrgb_layer)[0, 0] + b8.fromrgb_layer.bias
    x = lrelu(conv3x3(rgb, scaled(b8.conv0), b8.conv0.bias))
    x = down(lrelu(conv3x3(x, scaled(b8.conv1), b8.conv1.bias)))
    # 4x4: [fromRGB(image), features], stddev over the WHOLE batch.
    y = imgs[0] @ scaled(end.fromrgb_layer)[0, 0] + end.fromrgb_layer.bias
    x = np.concatenate([y, x], -1)
    sd = np.sqrt(((x - x.mean(0)) ** 2).mean(0) + 1e-8).mean()
    x = np.concatenate([x, np.full(x.shape[:3] + (1,), sd)], -1)
    x = lrelu(conv3x3(x, scaled(end.conv), end.conv.bias)).reshape(5, -1)
    x = lrelu(x @ scaled(end.fc) + end.fc.bias)
    want = x @ scaled(end.out) + end.out.bias
    assert end.out.weight_scale == pytest.approx(math.sqrt(2) / math.sqrt(8))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_bmsg_generator_4x4_block_and_gains():
    G = make_g(8, bmsg=True)
    P = make_g(8)
    b4 = G.blocks[0]
    # The deconv's scale sqrt(2) / sqrt(z_dim) (ProGAN: a quarter of it).
    assert b4.dense.weight_scale == pytest.approx(math.sqrt(2 / Z))
    assert P.blocks[0].dense.weight_scale * 4 == pytest.approx(
        b4.dense.weight_scale
    )
    assert b4.torgb.weight_scale == pytest.approx(math.sqrt(2 / b4.channels))
    z = latents(3)
    zn = pixel_norm(z)
    x = (zn @ scaled(b4.dense)).reshape(3, 4, 4, -1)
    x = lrelu(x + np.asarray(b4.bias))  # no pixel norm here (BMSG-GAN)
    x = pixel_norm(lrelu(conv3x3(x, scaled(b4.conv1), b4.conv1.bias)))
    want = x @ scaled(b4.torgb)[0, 0] + b4.torgb.bias
    np.testing.assert_allclose(np.asarray(G(z)[0]), want, rtol=1e-4, atol=1e-4)
    for model in (G, make_d(8, architecture="bmsg")):
        clone = type(model).from_config(model.get_config())
        assert clone.get_config() == model.get_config()
