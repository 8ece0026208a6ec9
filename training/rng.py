"""Counter-based random numbers in `keras.ops`: the same on both backends.

A training step's latents, noise, crossovers and WGAN-GP epsilons come
from here (`step.StepRandom`), so a seed gives the same numbers on
TensorFlow and on JAX, and with the one data order (`datasets/stream.py`)
the same run: the backends' own stateless generators (TF's Philox, JAX's
threefry with its own bit layout and float conversion) disagree.

The generator is Threefry-2x32 with 20 rounds (Salmon et al., "Parallel
random numbers: as easy as 1, 2, 3", SC 2011): a keyed hash of a counter
using only 32-bit add, rotate and xor, which both backends compute exactly
(XLA fuses it into the draw's users). Used as Random123 intends: the key is
(seed, step) and elements 2j and 2j + 1 of a draw come from the two output
words of counter (j, stream), the stream naming the draw (purpose and
index). So every element is a pure function of (seed, step, stream, i),
whatever the shape, device or batch split, and a draw costs one hash per
two elements and nothing per key: no key is derived by hashing, and
Box-Muller uses both of its outputs (a hash per element, a uniform's second
word unused, made TensorFlow's demo step ~4% slower; JAX's within noise).
Derived keys (three scalar hashes per draw) made TensorFlow graph mode
build and run thousands of scalar ops a step (a tiny two-replica run
without XLA took 205 s instead of 60 s).
"""

import math

import numpy as np
from keras import ops

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = 0x1BD11BDA  # the key schedule's constant


def _u32(x):
    return ops.cast(x, "uint32") if hasattr(x, "dtype") else np.uint32(x)


def _rotl(x, r):
    return ops.bitwise_or(ops.left_shift(x, r), ops.right_shift(x, 32 - r))


def threefry2x32(key, x0, x1):
    """Threefry-2x32-20 of counters (x0, x1) under key (k0, k1), all uint32
    (x0 and x1 of one shape); returns the two uint32 output words."""
    k0, k1 = (ops.convert_to_tensor(_u32(k)) for k in key)
    ks = (k0, k1, ops.bitwise_xor(ops.bitwise_xor(k0, k1), np.uint32(_PARITY)))
    x0, x1 = ops.add(x0, ks[0]), ops.add(x1, ks[1])
    for i in range(5):
        # Four rounds of mix, then inject the key schedule's next words.
        for r in _ROTATIONS[i % 2]:
            x0 = ops.add(x0, x1)
            x1 = ops.bitwise_xor(_rotl(x1, r), x0)
        x0 = ops.add(x0, ks[(i + 1) % 3])
        x1 = ops.add(ops.add(x1, ks[(i + 2) % 3]), np.uint32(i + 1))
    return x0, x1


def key(seed, step):
    """The key of step `step` (a Python int or a scalar integer tensor: TF's
    step index is int64, JAX's int32) of a run seeded `seed` (a Python int
    below 2**32)."""
    step = ops.reshape(_u32(ops.convert_to_tensor(step)), ())
    return np.uint32(seed), step


def stream(purpose, index=0):
    """The counter word naming one draw: its purpose and, for a list of
    draws (the noise layers), its index; both below 2**16."""
    if not (0 <= purpose < 2**16 and 0 <= index < 2**16):
        raise ValueError(f"purpose {purpose} or index {index} not below 2**16")
    return (purpose << 16) | index


def _unit(word):
    """uint32 -> float32 in [0, 1) on a 2**-24 grid (exact on both)."""
    top = ops.cast(ops.right_shift(word, 8), "int32")
    return ops.cast(top, "float32") * (1.0 / 2**24)


def _pairs(key, shape, stream, transform):
    """A draw of `shape` whose elements 2j and 2j + 1 are the two values
    `transform` makes of counter (j, stream)'s two words."""
    n = math.prod(shape)
    half = (n + 1) // 2
    counter = ops.cast(ops.arange(half, dtype="int32"), "uint32")
    words = threefry2x32(key, counter, ops.full((half,), stream, "uint32"))
    both = ops.reshape(ops.stack(transform(*words), axis=-1), (2 * half,))
    return ops.reshape(both[:n], shape)


def uniform(key, shape, stream=0):
    """float32 uniform in [0, 1)."""
    return _pairs(key, shape, stream, lambda w0, w1: (_unit(w0), _unit(w1)))


def _box_muller(w0, w1):
    radius = ops.sqrt(-2.0 * ops.log(1.0 - _unit(w0)))  # 1 - u in (0, 1]
    angle = (2.0 * math.pi) * _unit(w1)
    return radius * ops.cos(angle), radius * ops.sin(angle)


def normal(key, shape, stream=0):
    """float32 standard normal (Box-Muller of a counter's two words: its
    cosine and sine are two elements).

    The backends' log, sqrt, cos and sin may round differently in the last
    place, so normals agree to float32 rounding, uniforms exactly.
    """
    return _pairs(key, shape, stream, _box_muller)
