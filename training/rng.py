"""Counter-based random numbers in `keras.ops`: the same on both backends.

A training step's latents, noise, crossovers and WGAN-GP epsilons come
from here (`step.StepRandom`), so a seed gives the same numbers on
TensorFlow and on JAX, and with the one data order (`datasets/stream.py`)
the same run: the backends' own stateless generators (TF's Philox, JAX's
threefry with its own bit layout and float conversion) disagree.

The generator is Threefry-2x32 with 20 rounds (Salmon et al., "Parallel
random numbers: as easy as 1, 2, 3", SC 2011): a keyed hash of a counter
using only 32-bit add, rotate and xor, which both backends compute exactly
(and XLA fuses into one kernel). A key is a pair of uint32 scalars; the
i-th number of a draw hashes counter (i, 0), so every element is a pure
function of (key, i), whatever the shape, device or batch split.
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


def key(seed, purpose):
    """The key of one purpose's stream in a run seeded `seed` (Python ints
    below 2**32)."""
    return fold_in((np.uint32(seed), np.uint32(0)), purpose)


def fold_in(key, n):
    """A new key from `key` and the integer `n` (a Python int or a scalar
    tensor, as a training step's index)."""
    n = ops.reshape(ops.convert_to_tensor(_u32(n)), ())
    x0, x1 = threefry2x32(key, n, ops.zeros((), "uint32"))
    return x0, x1


def _bits(key, shape):
    """Two uint32 words per element of `shape`: counters (0, 0), (1, 0)..."""
    size = math.prod(shape)
    counter = ops.cast(ops.arange(size, dtype="int32"), "uint32")
    x0, x1 = threefry2x32(key, counter, ops.zeros((size,), "uint32"))
    return ops.reshape(x0, shape), ops.reshape(x1, shape)


def _unit(word):
    """uint32 -> float32 in [0, 1) on a 2**-24 grid (exact on both)."""
    top = ops.cast(ops.right_shift(word, 8), "int32")
    return ops.cast(top, "float32") * (1.0 / 2**24)


def uniform(key, shape):
    """float32 uniform in [0, 1)."""
    return _unit(_bits(key, shape)[0])


def normal(key, shape):
    """float32 standard normal (Box-Muller of an element's two words).

    The backends' log, sqrt and cos may round differently in the last
    place, so normals agree to float32 rounding, uniforms exactly.
    """
    w0, w1 = _bits(key, shape)
    radius = ops.sqrt(-2.0 * ops.log(1.0 - _unit(w0)))  # 1 - u in (0, 1]
    return radius * ops.cos((2.0 * math.pi) * _unit(w1))
