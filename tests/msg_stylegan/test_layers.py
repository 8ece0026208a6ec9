"""Tests for the equalized-lr layers, noise, style modulation and RGB heads."""

import math

import keras
import numpy as np

from msg_stylegan.layers import (
    EqualizedConv2D,
    EqualizedDense,
    FromRGB,
    NoiseInput,
    StyleModulation,
    ToRGB,
    make_conv,
    make_dense,
)
from msg_stylegan.spectral_norm import SpectralNorm
from tests.helpers import check_layer


def test_equalized_dense_runtime_scale_and_init():
    layer = EqualizedDense(512, gain=math.sqrt(2))
    x = np.random.default_rng(0).normal(size=(4, 512)).astype("float32")
    # 512 * 512 weights + 512 biases = 262,656 (one mapping layer).
    check_layer(layer, x, (4, 512), expected_trainable=262_656)
    assert math.isclose(layer.weight_scale, math.sqrt(2) / math.sqrt(512))
    w = layer.kernel.numpy()
    assert abs(w.mean()) < 0.01 and abs(w.std() - 1.0) < 0.01
    want = x @ (w * layer.weight_scale) + layer.bias.numpy()
    np.testing.assert_allclose(np.asarray(layer(x)), want, rtol=1e-4, atol=1e-5)


def test_lr_multiplier_scales_init_and_runtime():
    layer = EqualizedDense(256, gain=1.0, lr_multiplier=0.01, bias_init=1.0)
    layer.build((None, 256))
    assert abs(layer.kernel.numpy().std() - 100.0) < 2.0  # N(0, 1/lrmul)
    assert math.isclose(layer.weight_scale, 0.01 / 16.0)
    np.testing.assert_allclose(layer.bias.numpy() * 0.01, 1.0)


def test_equalized_conv_scale_and_resampling():
    x = np.random.default_rng(1).normal(size=(2, 8, 8, 16)).astype("float32")
    conv = EqualizedConv2D(32, 3, gain=math.sqrt(2))
    # 3*3*16*32 weights + 32 biases = 4,640.
    check_layer(conv, x, (2, 8, 8, 32), expected_trainable=4_640)
    assert math.isclose(conv.weight_scale, math.sqrt(2) / math.sqrt(9 * 16))
    w = conv.kernel.numpy()
    assert abs(w.std() - 1.0) < 0.05
    check_layer(EqualizedConv2D(8, 3, up=True), x, (2, 16, 16, 8))
    check_layer(EqualizedConv2D(8, 3, down=True), x, (2, 4, 4, 8))


def test_heads_and_noise_and_style():
    x = np.random.default_rng(2).normal(size=(2, 8, 8, 16)).astype("float32")
    # ToRGB: 16*3 + 3 = 51; FromRGB on 3 channels to 16: 3*16 + 16 = 64.
    check_layer(ToRGB(3), x, (2, 8, 8, 3), expected_trainable=51)
    img = x[..., :3]
    check_layer(FromRGB(16), img, (2, 8, 8, 16), expected_trainable=64)
    noise = NoiseInput(8)
    out = check_layer(noise, x, (2, 8, 8, 16), expected_trainable=16)
    np.testing.assert_array_equal(np.asarray(out), x)  # strength starts at 0
    noise.strength.assign(np.ones(16, "float32"))
    const1 = np.asarray(noise(x, noise_mode="const"))
    const2 = np.asarray(noise(x, noise_mode="const"))
    np.testing.assert_array_equal(const1, const2)
    np.testing.assert_array_equal(np.asarray(noise(x, noise_mode="none")), x)
    given = np.full((2, 8, 8, 1), 0.5, "float32")
    np.testing.assert_allclose(
        np.asarray(noise(x, noise_mode="random", noise=given)), x + 0.5
    )
    style = StyleModulation(16)
    w = np.random.default_rng(3).normal(size=(2, 32)).astype("float32")
    # affine: 32*32 + 32 = 1,056.
    check_layer(style, (x, w), (2, 8, 8, 16), expected_trainable=1_056)
    s = np.asarray(style.affine(w))
    want = x * (1 + s[:, None, None, :16]) + s[:, None, None, 16:]
    np.testing.assert_allclose(
        np.asarray(style(x, w)), want, rtol=1e-4, atol=1e-5
    )


def test_convolution_kinds_keep_their_variable_names():
    x = np.ones((2, 4, 4, 8), "float32")
    names = {}
    for kind in ("equalized", "plain", "spectral"):
        conv = make_conv(kind, 16, 3, "conv0", None)
        dense = make_dense(kind, 4, "fc", None)
        conv(x), dense(x.reshape(2, -1))
        names[kind] = sorted(v.path for v in conv.weights + dense.weights)
    assert (
        names["equalized"]
        == names["plain"]
        == [
            "conv0/bias",
            "conv0/kernel",
            "fc/bias",
            "fc/kernel",
        ]
    )
    # Spectral norm wraps a Keras layer and adds its power-iteration vector.
    assert names["spectral"] == [
        "conv0/conv/bias",
        "conv0/conv/kernel",
        "conv0/vector_u",
        "fc/dense/bias",
        "fc/dense/kernel",
        "fc/vector_u",
    ]
    assert isinstance(
        make_conv("plain", 4, 1, "torgb", None), keras.layers.Conv2D
    )
    assert isinstance(make_dense("spectral", 4, "out", None), SpectralNorm)
