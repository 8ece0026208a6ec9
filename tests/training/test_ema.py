"""Tests for the Gs half-life and the w_avg update."""

import math

import numpy as np

from training.ema import ema_beta, w_avg_update


def test_half_life_is_ema_kimg():
    beta = ema_beta(32, 10.0)
    assert math.isclose(beta, 0.5 ** (32 / 10000))
    steps = 10000 / 32  # 10k images
    assert math.isclose(beta**steps, 0.5, rel_tol=1e-9)
    assert ema_beta(32, 0) == 0.0


def test_w_avg_update_is_a_lerp():
    got = w_avg_update(np.ones(3), np.zeros(3), 0.995)
    np.testing.assert_allclose(got, 0.995)
