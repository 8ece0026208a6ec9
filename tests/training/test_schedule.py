"""The progressive-growing schedule against SPEC section 10's formula."""

import math

import keras
import numpy as np
import pytest

import config as config_lib
from training import schedule


@pytest.fixture
def ffhq():
    return config_lib.get_config("stylegan-ffhq")


@pytest.mark.parametrize(
    "kimg, lod",
    [
        # log2(1024) - log2(8) = 7 at the start; phases of 600 + 600 kimg.
        (0, 7.0),
        (599.9, 7.0),  # stable at 8x8
        (600, 7.0),  # the fade-in starts
        (900, 6.5),  # mid fade-in of 16x16
        (1200, 6.0),  # end of the fade-in = next phase
        (1800, 6.0),
        (2100, 5.5),
        (8400, 0.0),  # 7 phases: full resolution reached ...
        (20000, 0.0),  # ... and clipped at 0
    ],
)
def test_lod_formula(ffhq, kimg, lod):
    phase_kimg = 1200
    index = math.floor(kimg / phase_kimg)
    t = kimg - phase_kimg * index
    expected = max(10 - 3 - index - max(t - 600, 0) / 600, 0)
    assert schedule.compute_lod(ffhq, kimg) == pytest.approx(expected)
    assert schedule.compute_lod(ffhq, kimg) == pytest.approx(lod)


def test_phase_values_follow_the_per_resolution_schedules(ffhq):
    start = schedule.phase_at(ffhq, 0)
    assert (start.resolution, start.alpha, start.batch) == (8, 0.0, 256)
    assert (start.lr, start.tick_kimg) == (0.001, 140)
    fade = schedule.phase_at(ffhq, 900_000)
    assert (fade.resolution, fade.alpha, fade.batch) == (16, 0.5, 128)
    late = schedule.phase_at(ffhq, 8_400_000)
    assert (late.resolution, late.alpha, late.batch) == (1024, 0.0, 32)
    assert (late.lr, late.tick_kimg) == (0.003, 20)
    mid = schedule.phase_at(ffhq, 6_000_000)  # lod 2: 256x256
    assert (mid.resolution, mid.batch, mid.lr, mid.tick_kimg) == (
        256,
        32,
        0.002,
        40,
    )


def test_non_progressive_configs_have_one_phase():
    cfg = config_lib.get_config("msg-stylegan-ffhq")
    for nimg in (0, 10**6, 10**8):
        phase = schedule.phase_at(cfg, nimg)
        assert (phase.lod, phase.resolution, phase.alpha) == (0.0, 1024, 0.0)
        assert (phase.batch, phase.lr) == (cfg.batch, cfg.lr)


@pytest.mark.parametrize(
    "prev, lod, reset",
    [
        (7.0, 6.999, True),  # a new resolution starts fading in
        (6.5, 6.49, False),  # inside a fade-in
        (6.001, 6.0, True),  # the fade-in ends
        (6.0, 6.0, False),  # stable phase
    ],
)
def test_optimizer_reset_points(prev, lod, reset):
    assert schedule.resets_optimizer(prev, lod) == reset


def test_reset_optimizer_zeroes_moments_and_keeps_the_rate():
    opt = keras.optimizers.Adam(0.003)
    v = keras.Variable(np.ones(3, "float32"))
    opt.build([v])
    opt.apply([np.ones(3, "float32")], [v])
    assert int(opt.iterations.numpy()) == 1
    schedule.reset_optimizer(opt)
    schedule.set_learning_rate(opt, 0.0015)
    for var in opt.variables:
        if var.path == opt.learning_rate.path:
            assert float(var.numpy()) == pytest.approx(0.0015)
        else:
            assert not np.any(var.numpy())
