"""Tests for msg_stylegan.ops against NumPy references."""

import numpy as np
import pytest
from scipy import signal

from msg_stylegan import ops as msg_ops


def _np_mbstd(x, group_size=4):
    n, h, w, c = x.shape
    g = min(group_size, n)
    m = n // g
    out = np.zeros((n, h, w, c + 1), x.dtype)
    out[..., :c] = x
    for j in range(m):
        members = list(range(j * g, (j + 1) * g))  # contiguous groups
        std = np.sqrt(x[members].var(axis=0) + 1e-8).mean()
        out[members, :, :, c] = std
    return out


def test_minibatch_stddev_matches_numpy():
    rng = np.random.default_rng(0)
    for n, group in [(8, 4), (4, 4), (2, 4), (6, 2)]:
        x = rng.normal(size=(n, 4, 4, 5)).astype("float32")
        got = np.asarray(msg_ops.minibatch_stddev(x, group))
        np.testing.assert_allclose(got, _np_mbstd(x, group), rtol=1e-5)


def test_minibatch_stddev_rejects_indivisible_batch():
    x = np.zeros((6, 4, 4, 2), "float32")
    try:
        msg_ops.minibatch_stddev(x, 4)
    except ValueError as e:
        assert "not divisible" in str(e)
    else:
        raise AssertionError("expected a ValueError")


@pytest.mark.parametrize("f", [(1, 2, 1), (1, 4, 6, 4, 1), (1, 3, 1)])
def test_blur_matches_numpy(f):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 8, 8, 3)).astype("float32")
    k = np.outer(f, f) / np.sum(f) ** 2
    want = np.zeros_like(x)
    for n in range(2):
        for c in range(3):
            want[n, :, :, c] = signal.convolve2d(x[n, :, :, c], k, mode="same")
    got = np.asarray(msg_ops.blur2d(x, f))
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_blur_gradient_is_the_blur_of_the_cotangent():
    # A symmetric zero-padded filter is self-adjoint: d<blur(x), y>/dx =
    # blur(y). Checked through TF's tape on the shifted-add form.
    import tensorflow as tf

    rng = np.random.default_rng(2)
    x = tf.constant(rng.normal(size=(2, 8, 8, 3)).astype("float32"))
    y = rng.normal(size=(2, 8, 8, 3)).astype("float32")
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = tf.reduce_sum(msg_ops.blur2d(x) * y)
    grad = tape.gradient(total, x).numpy()
    np.testing.assert_allclose(grad, np.asarray(msg_ops.blur2d(y)), atol=1e-5)


def test_blur_refuses_even_kernels():
    with pytest.raises(ValueError, match="odd-length"):
        msg_ops.blur2d(np.zeros((1, 4, 4, 1), "float32"), (1, 1))


def test_up_and_down_sampling():
    x = np.arange(2 * 4 * 4 * 3, dtype="float32").reshape(2, 4, 4, 3)
    up = np.asarray(msg_ops.upsample2d(x))
    np.testing.assert_array_equal(up, x.repeat(2, 1).repeat(2, 2))
    down = np.asarray(msg_ops.downsample2d(x))
    want = x.reshape(2, 2, 2, 2, 2, 3).mean(axis=(2, 4))
    np.testing.assert_allclose(down, want)
    np.testing.assert_allclose(np.asarray(msg_ops.downsample2d(up)), x)


def test_image_pyramid_is_box_averaged_coarse_to_fine():
    x = np.random.default_rng(2).normal(size=(1, 16, 16, 3)).astype("float32")
    imgs = msg_ops.image_pyramid(x, 3)
    assert [i.shape[1] for i in imgs] == [4, 8, 16]
    want = x.reshape(1, 4, 4, 4, 4, 3).mean(axis=(2, 4))
    np.testing.assert_allclose(np.asarray(imgs[0]), want, atol=1e-6)


def test_pixel_and_instance_norm():
    x = np.random.default_rng(3).normal(size=(2, 4, 4, 6)).astype("float32")
    pn = np.asarray(msg_ops.pixel_norm(x))
    np.testing.assert_allclose((pn**2).mean(-1), 1.0, rtol=1e-4)
    inorm = np.asarray(msg_ops.instance_norm(x * 3 + 1))
    np.testing.assert_allclose(inorm.mean((1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose((inorm**2).mean((1, 2)), 1.0, rtol=1e-4)
