"""Tests for the multi-scale and single-input discriminators."""

import numpy as np
import pytest
import tensorflow as tf

from msg_stylegan.discriminator import (
    Discriminator,
    DiscriminatorBlock,
    DiscriminatorEpilogue,
    make_combine,
)
from msg_stylegan.networks import build_networks
from tests.helpers import check_layer, tiny_config


@pytest.mark.parametrize("res", [32, 64])
@pytest.mark.parametrize("combine", ["cat_lin", "lin_cat", "simple"])
def test_discriminator_scores_each_sample(res, combine):
    G, D = build_networks(tiny_config(res, combine=combine))
    z = np.random.default_rng(0).normal(size=(4, 16)).astype("float32")
    logits = D(G(z))
    assert tuple(logits.shape) == (4, 1)
    assert np.isfinite(np.asarray(logits)).all()


def _grad_norms(G, D, cfg):
    z = tf.random.normal((4, cfg.z_dim), seed=1)
    with tf.GradientTape() as tape:
        imgs = G(z)
        logits = D(imgs[-D.num_inputs :])
        loss = tf.reduce_mean(tf.nn.softplus(-logits))
    variables = G.trainable_variables + D.trainable_variables
    grads = tape.gradient(loss, variables)
    return {
        v.path: 0.0 if g is None else float(tf.norm(g))
        for v, g in zip(variables, grads)
    }


@pytest.mark.parametrize("combine", ["cat_lin", "lin_cat"])
def test_msg_property_every_torgb_and_combine_gets_gradient(combine):
    cfg = tiny_config(32, combine=combine)
    G, D = build_networks(cfg)
    norms = _grad_norms(G, D, cfg)
    torgb = [k for k in norms if "/torgb/" in k]
    combines = [k for k in norms if "/combine/" in k]
    assert len(torgb) == 2 * 4  # kernel and bias at b4..b32
    blocks = {k.split("/")[1] for k in combines}
    assert blocks == {"b4", "b8", "b16"}  # every scale below the top
    for key in torgb + combines:
        assert norms[key] > 0, f"no gradient reaches {key}"


def test_stylegan_mode_only_last_torgb_gets_gradient():
    cfg = tiny_config(32, architecture="stylegan")
    G, D = build_networks(cfg)
    assert D.num_inputs == 1
    norms = _grad_norms(G, D, cfg)
    for key, value in norms.items():
        if "/torgb/" in key:
            if "/b32/" in key:
                assert value > 0, key
            else:
                assert value == 0, key
    assert not [k for k in norms if "/combine/" in k]


def test_mbstd_in_every_msg_block_and_only_4x4_in_stylegan():
    _, D = build_networks(tiny_config(32))
    assert all(b.mbstd for b in D.blocks)
    _, D = build_networks(tiny_config(32, architecture="stylegan"))
    assert not any(b.mbstd for b in D.blocks)
    assert D.epilogue.mbstd


@pytest.mark.parametrize(
    "architecture, mbstd, in_blocks",
    [
        ("msg", "4x4", False),
        ("stylegan", "every", True),
        ("msg", "auto", True),
        ("msg-progan", "every", True),
    ],
)
def test_mbstd_placement_is_an_ablation_switch(architecture, mbstd, in_blocks):
    cfg = tiny_config(32, architecture=architecture, mbstd=mbstd)
    G, D = build_networks(cfg)
    assert [b.mbstd for b in D.blocks] == [in_blocks] * 3
    assert D.epilogue.mbstd
    # The feature map it adds widens each block's first conv by one input.
    conv = D.blocks[0].conv0.kernel.shape[2]
    assert conv == D.blocks[0].channels + int(in_blocks)
    assert D.get_config()["mbstd"] == mbstd
    logits = D(G(np.zeros((4, 16), "float32"))[-D.num_inputs :])
    assert tuple(logits.shape) == (4, 1)
    with pytest.raises(ValueError, match="mbstd must be one of"):
        Discriminator(32, mbstd="first")


def test_bad_inputs_are_clear_errors():
    G, D = build_networks(tiny_config(32))
    z = np.zeros((4, 16), "float32")
    imgs = G(z)
    with pytest.raises(ValueError, match="expects 4 images"):
        D(imgs[1:])
    with pytest.raises(ValueError, match="image shapes"):
        D(list(reversed(imgs)))
    with pytest.raises(ValueError, match="unknown combine 'sum'.*cat_lin"):
        Discriminator(img_resolution=32, combine="sum")
    with pytest.raises(ValueError, match="power of two"):
        Discriminator(img_resolution=100)


def _sublayers(layer):
    return [
        (x.name, type(x).__name__)
        for x in layer._flatten_layers(include_self=False, recursive=False)
    ]


@pytest.mark.parametrize("convolution", ["equalized", "spectral"])
@pytest.mark.parametrize("combine", ["cat_lin", "lin_cat", "simple"])
def test_combine_takes_its_convolution(combine, convolution):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 8, 8, 8)).astype("float32")
    img = rng.normal(size=(2, 8, 8, 3)).astype("float32")
    layer = make_combine(combine, 8, 3, convolution, None)
    # cat_lin: 1x1 conv (8 + 3) -> 8, no bias, 88; lin_cat: fromRGB
    # 3 -> 4 with bias, 16; simple: no weights. The same for either kind.
    width, params = {"cat_lin": (8, 88), "lin_cat": (12, 16)}.get(
        combine, (11, 0)
    )
    check_layer(layer, (x, img), (2, 8, 8, width), expected_trainable=params)
    kinds = {kind for _, kind in _sublayers(layer)}
    if combine == "simple":
        assert not kinds
    elif convolution == "spectral":
        assert kinds == {"SpectralNorm"}
    else:
        assert kinds == {"EqualizedConv2D"}


def test_epilogue_builds_only_the_layers_it_uses():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 4, 4, 16)).astype("float32")
    img = rng.normal(size=(4, 4, 4, 3)).astype("float32")
    e = DiscriminatorEpilogue(16, 32, combine="cat_lin", name="b4")
    # combine 19 * 16 = 304; conv (16 + 1 mbstd) * 9 * 16 + 16 = 2,464;
    # fc 256 * 32 + 32 = 8,224; out 32 + 1 = 33.
    check_layer(e, (x, img), (4, 1), expected_trainable=11_025)
    assert [name for name, _ in _sublayers(e)] == [
        "combine",
        "conv",
        "fc",
        "out",
    ]
    block = DiscriminatorBlock(8, 16, 32, pool=True, mbstd=False, name="b8")
    assert [name for name, _ in _sublayers(block)] == ["conv0", "conv1"]


def test_unknown_or_unfit_convolution_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown convolution 'sn'"):
        DiscriminatorBlock(8, 16, 16, convolution="sn")
    # StyleGAN's fused downsampling conv exists only with equalized lr.
    with pytest.raises(ValueError, match="down=True needs an equalized"):
        DiscriminatorBlock(8, 16, 16, convolution="spectral")
