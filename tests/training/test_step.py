"""training/step.py: the meaning of a step, checked without a backend step.

The draws run on TensorFlow here (`training/rng.py`, the same numbers on
JAX); the objectives get a stand-in D whose logits and
input gradients are known in closed form.
"""

import keras
import numpy as np
import pytest
from keras import ops

from tests.helpers import tiny_config
from training import loss as loss_lib
from training import precision
from training import step as step_lib


def _rng(seed, step):
    return step_lib.StepRandom(seed, step)


def _np(tree):
    return [np.asarray(x) for x in keras.tree.flatten(tree)]


def test_penalty_weight_and_lazy_schedule():
    cfg = tiny_config(8, r1_gamma=10.0, r1_interval=4)
    # gamma / 2 per sample, times the interval the penalty is spread over.
    assert step_lib.r1_weight(cfg) == 10.0 * 0.5 * 4
    assert [step_lib.regularizes(cfg, i) for i in range(9)] == [
        True, False, False, False, True, False, False, False, True,
    ]  # fmt: skip
    every = tiny_config(8, r1_interval=1)
    assert all(step_lib.regularizes(every, i) for i in range(5))
    gp = tiny_config(8, wgan_lambda=10.0, wgan_epsilon=0.001)
    assert step_lib.gp_weights(gp) == (10.0, 0.001)


def test_draws_are_a_function_of_seed_and_step_only():
    cfg = tiny_config(16, style_mixing_prob=0.9)
    noise_res = [4, 4, 8, 8, 16, 16]

    def draws(seed, step):
        rng = _rng(seed, step)
        # Mixing drawn first in one call and last in the other: a draw
        # never depends on what was drawn before it.
        mix = step_lib.draw_mixing(cfg, rng, step_lib.MIX_D, 8, 6)
        lat = step_lib.draw_latents(cfg, rng, noise_res, 8)
        return lat, mix

    lat, mix = draws(3, 5)
    again_mix = step_lib.draw_mixing(cfg, _rng(3, 5), step_lib.MIX_D, 8, 6)
    again = step_lib.draw_latents(cfg, _rng(3, 5), noise_res, 8)
    for a, b in zip(_np(lat), _np(again)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(_np(mix), _np(again_mix)):
        np.testing.assert_array_equal(a, b)
    # Shapes: the global batch.
    assert np.asarray(lat["z_d"]).shape == (8, cfg.z_dim)
    assert [np.asarray(x).shape for x in lat["noise_g"]] == [
        (8, r, r, 1) for r in noise_res
    ]
    assert np.asarray(lat["eps"]).shape == (8,)
    eps = np.asarray(lat["eps"])
    assert ((eps >= 0) & (eps < 1)).all()
    # Another step or seed draws other numbers; so does every purpose and
    # every noise layer.
    for other in (draws(3, 6)[0], draws(4, 5)[0]):
        assert not np.array_equal(lat["z_d"], other["z_d"])
    assert not np.array_equal(lat["z_d"], lat["z_g"])
    first, second = (np.asarray(x) for x in lat["noise_d"][:2])
    assert not np.array_equal(first, second)
    z2, cutoff = (np.asarray(x) for x in mix)
    assert z2.shape == (8, cfg.z_dim)
    assert 1 <= int(cutoff) <= 6


def test_mixing_off_draws_nothing():
    cfg = tiny_config(16, style_mixing_prob=0.0)
    assert step_lib.draw_mixing(cfg, _rng(0, 0), step_lib.MIX_G, 8, 6) is None


class _LinearD:
    """D(imgs) = sum over scales of the per-sample pixel sum times `w`.

    So d sum(D) / d img = w everywhere, at every scale."""

    def __init__(self, w=0.5):
        self.w, self.calls = w, []

    def logits(self, imgs):
        self.calls.append("logits")
        return self.w * sum(ops.sum(x, axis=(1, 2, 3)) for x in imgs)[:, None]

    def input_grads(self, imgs):
        self.calls.append("input_grads")
        return [ops.full(x.shape, self.w) for x in imgs]

    def real_logits_and_grads(self, reals):
        self.calls.append("reals")
        from msg_stylegan.ops import image_pyramid

        imgs = image_pyramid(reals, 2)
        return imgs, self.logits(imgs), self.input_grads(imgs)


def _images(n, seed):
    rng = np.random.default_rng(seed)
    reals = rng.uniform(-1, 1, (n, 8, 8, 3)).astype("float32")
    fakes = [rng.uniform(-1, 1, (n, r, r, 3)).astype("float32") for r in (4, 8)]
    return ops.convert_to_tensor(reals), [
        ops.convert_to_tensor(f) for f in fakes
    ]


def test_d_objective_r1_weight_and_global_batch():
    cfg = tiny_config(8, r1_gamma=2.0, r1_interval=4)
    loss = loss_lib.get_loss("logistic")
    reals, fakes = _images(4, 0)
    eps = ops.zeros([4])
    d = _LinearD(0.5)
    total, stats = step_lib.d_objective(
        loss, cfg, 16, d, reals, fakes, eps, True
    )
    # Real logits, R1 from the real pyramid, then fakes.
    assert d.calls == ["reals", "logits", "input_grads", "logits"]
    # R1 per sample: the mean over the two scales of sum(0.5^2) over pixels.
    r1 = (4 * 4 * 3 + 8 * 8 * 3) * 0.25 / 2
    weight = 2.0 * 0.5 * 4
    # Sums over this replica's 4 samples, divided by the global batch 16.
    assert float(stats["Loss/D/reg"]) == pytest.approx(4 * r1 * weight / 16)
    plain_total, plain = step_lib.d_objective(
        loss, cfg, 16, _LinearD(0.5), reals, fakes, eps, False
    )
    assert float(plain["Loss/D/reg"]) == 0.0
    assert float(total) == pytest.approx(
        float(plain_total) + float(stats["Loss/D/reg"]), rel=1e-6
    )
    for key in ("Loss/scores/real", "Loss/scores/fake", "Loss/D/loss"):
        assert key in stats
    # Per scale, R1's squared gradient norm (sum of 0.5^2 over the pixels),
    # summed over the replica's samples / global batch; none without R1.
    for res in (4, 8):
        got = float(stats[f"Loss/D/r1/{res}x{res}"])
        assert got == pytest.approx(4 * res * res * 3 * 0.25 / 16)
    assert not [key for key in plain if key.startswith("Loss/D/r1/")]


def test_d_objective_replica_shares_sum_to_the_global_loss():
    # Two replicas' shares (each / the global batch) add up to one device's.
    cfg = tiny_config(8, wgan_lambda=10.0, wgan_epsilon=0.001)
    loss = loss_lib.get_loss("wgan-gp")
    reals, fakes = _images(8, 1)
    eps = ops.convert_to_tensor(np.linspace(0, 1, 8).astype("float32"))

    def run(rows):
        return step_lib.d_objective(
            loss,
            cfg,
            8,
            _LinearD(0.3),
            reals[rows],
            [f[rows] for f in fakes],
            eps[rows],
            True,
        )

    whole = run(slice(0, 8))
    halves = [run(slice(0, 4)), run(slice(4, 8))]
    assert float(whole[1]["Loss/D/reg"]) > 0  # the gradient penalty ran
    for key, value in whole[1].items():
        got = sum(float(h[1][key]) for h in halves)
        assert got == pytest.approx(float(value), rel=1e-5, abs=1e-6), key


def test_g_objective_and_w_mean():
    loss = loss_lib.get_loss("logistic")
    _, fakes = _images(4, 2)
    ws = ops.convert_to_tensor(
        np.arange(4 * 3 * 2, dtype="float32").reshape(4, 3, 2)
    )
    d = _LinearD(0.1)
    total, stats, w_mean = step_lib.g_objective(
        loss, 8, fakes, ws, d.logits, None, 2, True
    )
    logits = np.asarray(d.logits(fakes))[:, 0]
    expected = np.sum(np.log1p(np.exp(-logits))) / 8
    assert float(total) == pytest.approx(expected, rel=1e-5)
    assert float(stats["Loss/G/loss"]) == float(total)
    # The replica's share of the batch mean of the first w: sum / 8.
    np.testing.assert_allclose(w_mean, np.asarray(ws)[:, 0].sum(0) / 8)
    _, _, none = step_lib.g_objective(
        loss, 8, fakes, ws, d.logits, None, 2, False
    )
    assert float(none) == 0.0


def test_skip_rule_and_updates_after_g():
    good = [np.ones(3, "float32"), np.zeros((2, 2), "float32")]
    assert bool(step_lib.finite(good))
    for bad in (np.nan, np.inf, -np.inf):
        worse = [good[0], np.array([[0, bad], [0, 0]], "float32")]
        assert not bool(step_lib.finite(worse))
    stats = step_lib.skip_stats(
        ops.convert_to_tensor(True), ops.convert_to_tensor(False)
    )
    assert float(stats["Progress/skipped_D"]) == 0.0
    assert float(stats["Progress/skipped_G"]) == 1.0
    # w_avg moves only after an applied G update, even past a NaN mean.
    w_avg, w_mean = np.ones(2, "float32"), np.array([0.0, np.nan], "float32")
    kept = step_lib.updated_w_avg(w_avg, w_mean, 0.9, False)
    np.testing.assert_array_equal(kept, w_avg)
    moved = step_lib.updated_w_avg(w_avg, np.zeros(2, "float32"), 0.9, True)
    np.testing.assert_allclose(moved, [0.9, 0.9])
    gs = step_lib.updated_gs([np.zeros(2)], [np.ones(2)], 0.75)
    np.testing.assert_allclose(gs[0], [0.75, 0.75])


def test_follow_g_returns_new_values_and_passes_the_rest_through():
    state = step_lib.new_state(tiny_config(8))
    G, Gs = state.G, state.Gs
    for v in Gs.trainable_variables:
        v.assign(v + 1.0)
    follow = step_lib.FollowG(G, 0.75)
    g_ntv, gs_ntv = G.non_trainable_variables, Gs.non_trainable_variables
    g_tv, gs_tv = G.trainable_variables, Gs.trainable_variables
    w_mean = ops.ones_like(G.w_avg)
    new_g_ntv, new_gs_ntv, new_gs_tv = follow(
        g_tv, g_ntv, gs_tv, gs_ntv, w_mean, ops.convert_to_tensor(True)
    )
    w_at = follow.w_at
    assert g_ntv[w_at] is G.w_avg
    moved = (1 - G.w_avg_beta) * 1.0
    np.testing.assert_allclose(new_g_ntv[w_at], moved, rtol=1e-6)
    # Only w_avg is new among G's; Gs copies G's floating state (w_avg,
    # noise buffers) and keeps its own integer counters.
    assert [i for i, v in enumerate(new_g_ntv) if v is not g_ntv[i]] == [w_at]
    assert len(follow.copied) >= 2 and w_at in follow.copied
    for i, v in enumerate(new_gs_ntv):
        assert v is (new_g_ntv[i] if i in follow.copied else gs_ntv[i])
    for g, gs, new in zip(g_tv, gs_tv, new_gs_tv):
        want = np.asarray(g) + (np.asarray(gs) - np.asarray(g)) * 0.75
        np.testing.assert_allclose(new, want, rtol=1e-6, atol=1e-7)
    # A skipped G update leaves w_avg where it was.
    kept = follow(
        g_tv, g_ntv, gs_tv, gs_ntv, w_mean, ops.convert_to_tensor(False)
    )
    np.testing.assert_array_equal(kept[0][w_at], np.asarray(G.w_avg))


def test_follow_g_without_w_avg():
    """ProGAN generators have no w_avg: Gs still follows G."""
    state = step_lib.new_state(tiny_config(8, architecture="progan"))
    G, Gs = state.G, state.Gs
    assert G.w_avg is None
    follow = step_lib.FollowG(G, 0.5)
    assert follow.w_at is None
    g_ntv, gs_ntv, gs_tv = follow(
        G.trainable_variables,
        G.non_trainable_variables,
        Gs.trainable_variables,
        Gs.non_trainable_variables,
        None,
        ops.convert_to_tensor(True),
    )
    assert all(a is b for a, b in zip(g_ntv, G.non_trainable_variables))
    assert len(gs_tv) == len(Gs.trainable_variables)


def test_loss_scale_interface_and_rule():
    plain = precision.LossScale(keras.optimizers.Adam())
    assert not plain.active and plain.read([]) is None
    assert plain.value() is None
    assert precision.scaled(2.0, None) == 2.0
    cfg = tiny_config(8, mixed_precision="fp16")
    opt = precision.make_adam(cfg, "opt")
    opt.build([keras.Variable(np.zeros(2, "float32"))])
    ls = precision.LossScale(opt)
    assert ls.active and ls.value() == precision.INITIAL_SCALE
    assert float(ls.read(opt.variables)) == precision.INITIAL_SCALE
    grads = precision.unscaled([ops.ones(2) * 8.0, None], 4.0)
    np.testing.assert_array_equal(grads[0], [2.0, 2.0])
    assert grads[1] is None
    # Applied steps count; the GROWTH_STEPS-th doubles and restarts the
    # count; an overflow halves and restarts it.
    ls.advance(ops.convert_to_tensor(True))
    assert ls.growth_count() == 1
    assert ls.value() == precision.INITIAL_SCALE
    ls.assign(ls.value(), growth_count=precision.GROWTH_STEPS - 1)
    ls.advance(ops.convert_to_tensor(True))
    assert ls.value() == 2 * precision.INITIAL_SCALE
    assert ls.growth_count() == 0
    ls.assign(ls.value(), growth_count=5)
    ls.advance(ops.convert_to_tensor(False))
    assert ls.value() == precision.INITIAL_SCALE
    assert ls.growth_count() == 0
    assert plain.growth_count() is None
    with pytest.raises(ValueError, match="only an fp16 optimizer"):
        plain.assign(1.0)
