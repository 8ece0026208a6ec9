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


@pytest.mark.parametrize(
    "kimg, res, alpha, batch, lr, tick",
    [
        # ProGAN's preset-v2-8gpus from 4x4: log2(1024) - log2(4) = 8.
        (0, 4, 0.0, 512, 0.001, 160),
        (599.9, 4, 0.0, 512, 0.001, 160),
        (900, 8, 0.5, 256, 0.001, 140),
        (1200, 8, 0.0, 256, 0.001, 140),
        (3600, 32, 0.0, 64, 0.001, 100),
        (4800, 64, 0.0, 32, 0.001, 80),
        (6000, 128, 0.0, 32, 0.0015, 60),
        (7200, 256, 0.0, 32, 0.002, 40),
        (8400, 512, 0.0, 32, 0.003, 20),
        (9600, 1024, 0.0, 32, 0.003, 10),
        (11999, 1024, 0.0, 32, 0.003, 10),
    ],
)
def test_progan_starts_at_4x4_with_its_schedules(
    kimg, res, alpha, batch, lr, tick
):
    cfg = config_lib.get_config("progan-ffhq")
    phase = schedule.phase_at(cfg, int(kimg * 1000))
    assert (phase.resolution, phase.alpha, phase.batch) == (res, alpha, batch)
    assert (phase.lr, phase.tick_kimg) == (lr, tick)
    assert schedule.compute_lod(cfg, 0) == 8.0


def test_progan_optimizer_resets_at_every_new_resolution():
    # ProGAN's reset_opt_for_new_lod: at the start and end of each fade.
    cfg = config_lib.get_config("progan-ffhq")
    kimgs = np.arange(0, 12000, 0.5)
    lods = [schedule.compute_lod(cfg, k) for k in kimgs]
    resets = [
        float(k)
        for k, prev, lod in zip(kimgs[1:], lods, lods[1:])
        if schedule.resets_optimizer(prev, lod)
    ]
    # 8 fades (4 -> 1024), each reset once when it starts and once at its end.
    assert len(resets) == 16
    assert resets[:2] == [600.5, 1200.0]
