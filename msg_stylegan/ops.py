"""Pure tensor functions on NHWC images, written with keras.ops only."""

import numpy as np
from keras import ops


def lrelu(x, alpha=0.2):
    return ops.leaky_relu(x, negative_slope=alpha)


def pixel_norm(x, axis=-1, epsilon=1e-8):
    """Normalise each feature vector to unit RMS (the mapping input).

    In float32 whatever x's dtype: fp16 has no 1e-8 (and squares overflow).
    """
    dtype, x = x.dtype, ops.cast(x, "float32")
    x = x * ops.rsqrt(
        ops.mean(ops.square(x), axis=axis, keepdims=True) + epsilon
    )
    return ops.cast(x, dtype)


def instance_norm(x, epsilon=1e-8):
    """Zero mean, unit RMS per sample and channel over H, W (AdaIN).

    In float32 whatever x's dtype, as pixel_norm (the 4x4 constant has zero
    variance: rsqrt(0 + 1e-8) is inf in fp16).
    """
    dtype, x = x.dtype, ops.cast(x, "float32")
    x = x - ops.mean(x, axis=(1, 2), keepdims=True)
    x = x * ops.rsqrt(
        ops.mean(ops.square(x), axis=(1, 2), keepdims=True) + epsilon
    )
    return ops.cast(x, dtype)


def blur2d(x, f=(1, 2, 1)):
    """Low-pass filter each channel with the normalised separable kernel f.

    Zero padding ('same'), as a depthwise convolution with outer(f, f) /
    sum would give, but written as shifted adds: under XLA a depthwise conv
    is one of the slowest ops, while the adds fuse into one memory-bound
    pass. Whole training step, CPU, demo size: JAX 1.6x and TF with XLA
    2.2x faster, now as fast as the depthwise form without XLA or a little
    faster. Without XLA the adds are slower (keep XLA on).
    """
    f = np.asarray(f, dtype=np.float64)
    if f.ndim != 1 or len(f) % 2 == 0:
        raise ValueError(f"blur2d needs an odd-length 1-D kernel, got {f}")
    f = f / f.sum()
    r = len(f) // 2
    for axis in (2, 1):  # W, then H
        pad = [(0, 0)] * 4
        pad[axis] = (r, r)
        padded = ops.pad(x, pad)
        size = x.shape[axis]
        out = None
        for i, weight in enumerate(f):
            index = [slice(None)] * 4
            index[axis] = slice(i, i + size)
            term = padded[tuple(index)] * ops.cast(weight, x.dtype)
            out = term if out is None else out + term
        x = out
    return x


def upsample2d(x, factor=2):
    """Nearest-neighbour upsampling by an integer factor."""
    if factor == 1:
        return x
    x = ops.repeat(x, factor, axis=1)
    return ops.repeat(x, factor, axis=2)


def downsample2d(x, factor=2):
    """Box (average) downsampling by an integer factor."""
    if factor == 1:
        return x
    _, h, w, c = x.shape
    x = ops.reshape(x, (-1, h // factor, factor, w // factor, factor, c))
    return ops.mean(x, axis=(2, 4))  # [NHWC] mean over each factor^2 box


def image_pyramid(img, num_levels):
    """The list of box-downsampled copies of `img`, coarse to fine.

    Built from the full-resolution tensor, so gradients taken with respect
    to it are total derivatives through every lower level (multi-scale R1).
    """
    imgs = [img]
    for _ in range(num_levels - 1):
        imgs.insert(0, downsample2d(imgs[0]))
    return imgs


def minibatch_stddev(x, group_size=4, num_new_features=1):
    """Append the mean per-group feature stddev as new feature maps.

    As StyleGAN, with groups of `group_size` (or the whole batch when
    smaller), except that groups are contiguous runs of the batch (StyleGAN
    strides them): a replica's slice of a global batch then holds whole
    groups, so one device and several compute the same step.
    """
    n, h, w, c = x.shape
    if n is None:
        raise ValueError("minibatch_stddev needs a static batch size")
    g = min(group_size, n)
    if n % g:
        raise ValueError(
            f"minibatch_stddev: batch {n} is not divisible by the group "
            f"size {g}"
        )
    f = num_new_features
    dtype = x.dtype
    y = ops.cast(x, "float32")
    y = ops.reshape(y, (-1, g, h, w, f, c // f))  # [MGHWFc] split into groups
    y = y - ops.mean(y, axis=1, keepdims=True)  # [MGHWFc] subtract group mean
    y = ops.mean(ops.square(y), axis=1)  # [MHWFc] variance over the group
    y = ops.sqrt(y + 1e-8)  # [MHWFc] stddev
    y = ops.mean(y, axis=(1, 2, 4))  # [MF] average over pixels and channels
    y = ops.reshape(y, (-1, 1, 1, 1, f))  # [M111F]
    y = ops.tile(y, (1, g, h, w, 1))  # [MGHWF] replicate over group, pixels
    y = ops.reshape(y, (n, h, w, f))  # [NHWF]
    return ops.concatenate([x, ops.cast(y, dtype)], axis=-1)
