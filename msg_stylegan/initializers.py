"""Random initial weights drawn with NumPy, so a seed builds the same
networks on TensorFlow and on JAX.

Keras' random initializers draw with the backend's generator (TF's Philox,
JAX's threefry), so one seed gives different weights on the two backends
and their runs could never be compared. `HostRandom` draws from NumPy's
global generator, which `keras.utils.set_random_seed` seeds (both
backends' `build_state` call it), in the order the weights are made: the
same Keras code on both backends, so the same order.
"""

import math

import keras
import numpy as np
from keras import ops

DISTRIBUTIONS = ("normal", "truncated_normal", "he_normal", "glorot_uniform")


def _fans(shape):
    """(fan_in, fan_out) of a kernel [..., in, out] (as Keras counts them)."""
    if len(shape) < 2:
        n = shape[0] if shape else 1
        return n, n
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


@keras.saving.register_keras_serializable(package="msg_stylegan")
class HostRandom(keras.initializers.Initializer):
    """Random weights from NumPy, the same numbers on every backend.

    Args:
        distribution: `normal` (N(0, stddev^2)); `truncated_normal` (values
            beyond 2 stddev redrawn, as Keras' TruncatedNormal);
            `he_normal` (N(0, gain^2 / fan_in), untruncated); or
            `glorot_uniform` (U(-l, l), l = sqrt(6 / (fan_in + fan_out))).
        stddev: for `normal` and `truncated_normal`.
        gain: for `he_normal`.
    """

    def __init__(self, distribution="normal", stddev=1.0, gain=1.0):
        if distribution not in DISTRIBUTIONS:
            raise ValueError(
                f"unknown distribution '{distribution}'; valid: "
                + ", ".join(DISTRIBUTIONS)
            )
        self.distribution = distribution
        self.stddev = float(stddev)
        self.gain = float(gain)

    def __call__(self, shape, dtype=None):
        shape = tuple(int(s) for s in shape)
        fan_in, fan_out = _fans(shape)
        if self.distribution == "glorot_uniform":
            limit = math.sqrt(6.0 / (fan_in + fan_out))
            x = np.random.uniform(-limit, limit, shape)
        elif self.distribution == "truncated_normal":
            x = np.random.normal(size=shape)
            bad = np.abs(x) > 2
            while bad.any():  # redraw the tails, as Keras' TruncatedNormal
                x[bad] = np.random.normal(size=int(bad.sum()))
                bad = np.abs(x) > 2
            x = x * self.stddev
        else:
            std = self.stddev
            if self.distribution == "he_normal":
                std = self.gain / math.sqrt(fan_in)
            x = np.random.normal(0.0, std, shape)
        return ops.cast(x.astype(np.float32), dtype or "float32")

    def get_config(self):
        return {
            "distribution": self.distribution,
            "stddev": self.stddev,
            "gain": self.gain,
        }
