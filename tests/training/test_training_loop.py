"""Tests for the TF training step and loop: resume, replicas, progress."""

import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from datasets import pipeline
from msg_stylegan import networks, snapshot
from tests.helpers import tiny_config
from training import training_loop
from training.backends import tensorflow as backend


def _cfg(data, **changes):
    base = dict(
        batch=8,
        xla=False,
        data=data,
        kimg_per_tick=0.032,
        network_snapshot_ticks=100,
        grid_size=2,
    )
    return tiny_config(16, **{**base, **changes})


def _states(data):
    out = {k: data[k] for k in ("G", "D", "Gs", "G_opt", "D_opt")}
    return out


def _assert_same(a, b, exact=True):
    for net in a:
        assert sorted(a[net]) == sorted(b[net]), net
        for key in a[net]:
            if exact:
                np.testing.assert_array_equal(
                    a[net][key], b[net][key], err_msg=f"{net}/{key}"
                )
            else:
                np.testing.assert_allclose(
                    a[net][key],
                    b[net][key],
                    rtol=1e-4,
                    atol=1e-5,
                    err_msg=f"{net}/{key}",
                )


@pytest.mark.large
def test_resume_is_exact(synthetic16, tmp_path):
    # 8 steps straight, with a snapshot after tick 1 (step 4) that a
    # second run resumes for the other 4 steps.
    full = _cfg(synthetic16, total_kimg=0.064, network_snapshot_ticks=1)
    straight = training_loop.training_loop(full, str(tmp_path / "a"))
    first = str(tmp_path / "a" / "network-snapshot-000000.pkl")
    resumed = training_loop.training_loop(
        full, str(tmp_path / "c"), resume=first
    )
    a, c = snapshot.load(straight), snapshot.load(resumed)
    assert a["step"] == c["step"] == 8
    _assert_same(_states(a), _states(c))
    b = snapshot.load(first)
    assert b["step"] == 4
    assert not np.array_equal(
        a["G"]["synthesis/b16/torgb/kernel"],
        b["G"]["synthesis/b16/torgb/kernel"],
    )
    # The run directory holds grids per scale, reals and the log outputs.
    for res in (4, 8, 16):
        assert glob.glob(str(tmp_path / "a" / f"{res}x{res}" / "fakes*.png"))
    assert (tmp_path / "a" / "reals.png").exists()
    rows = (tmp_path / "a" / "stats.jsonl").read_text().splitlines()
    assert "Consistency/8x8" in rows[-1] and "Loss/D/reg" in rows[-1]
    # R1's squared gradient norm with respect to each of D's three inputs
    last = json.loads(rows[-1])
    assert all(last[f"Loss/D/r1/{r}x{r}"] > 0 for r in (4, 8, 16))


def _one_step(cfg, devices, weights, batch):
    strategy = backend.make_strategy(devices=devices)
    state = backend.build_state(cfg, strategy)
    for name in ("G", "D", "Gs"):
        networks.set_state(getattr(state, name), weights[name])
    step, _ = backend.make_train_step(state, cfg, strategy)
    ds = tf.data.Dataset.from_tensors(batch)
    reals = next(iter(strategy.experimental_distribute_dataset(ds)))
    stats = step(reals, 0)
    return {
        n: networks.get_state(getattr(state, n)) for n in ("G", "D", "Gs")
    } | {
        "G_opt": snapshot.optimizer_state(state.G_opt),
        "D_opt": snapshot.optimizer_state(state.D_opt),
    }, stats


@pytest.mark.large
def test_two_replicas_equal_one_device(synthetic16):
    cfg = _cfg(synthetic16)
    G, D = networks.build_networks(cfg)
    Gs = networks.build_generator(cfg, name="Gs")
    networks.set_state(Gs, networks.get_state(G))
    # Give noise a part so the per-sample noise slicing is exercised.
    for v in G.trainable_variables:
        if "noise/strength" in v.path:
            v.assign(np.full(v.shape, 0.1, "float32"))
    weights = {
        "G": networks.get_state(G),
        "D": networks.get_state(D),
        "Gs": networks.get_state(G),
    }
    batch = pipeline.load_images(synthetic16, 8)
    one, stats1 = _one_step(cfg, ["/cpu:0"], weights, batch)
    two, stats2 = _one_step(cfg, ["/cpu:0", "/cpu:1"], weights, batch)
    for key in stats1:
        assert stats1[key] == pytest.approx(stats2[key], rel=1e-4, abs=1e-5)
    # With beta1 = 0, Adam's first moment after one step IS the gradient
    # summed over replicas: equal gradients means the global-batch scaling
    # is right. (Weights are compared loosely: Adam's first step is about
    # lr * sign(g), which amplifies rounding in near-zero gradients.)
    for opt in ("G_opt", "D_opt"):
        moments = [k for k in one[opt] if k.endswith("_momentum")]
        assert moments
        scale = max(np.abs(one[opt][k]).max() for k in moments)
        for key in moments:
            np.testing.assert_allclose(
                one[opt][key],
                two[opt][key],
                rtol=1e-3,
                atol=1e-5 * scale,
                err_msg=key,
            )
    for net in ("G", "D"):
        for key, a in one[net].items():
            np.testing.assert_allclose(
                a, two[net][key], atol=2 * cfg.lr, err_msg=key
            )
    # And the step did change the weights.
    assert not np.allclose(
        one["G"]["synthesis/b16/torgb/kernel"],
        weights["G"]["synthesis/b16/torgb/kernel"],
    )


@pytest.mark.large
@pytest.mark.parametrize("combine", ["cat_lin"])
def test_a_few_dozen_steps_train_every_scale(synthetic16, combine):
    cfg = _cfg(synthetic16, combine=combine)
    strategy = backend.make_strategy(devices=["/cpu:0"])
    state = backend.build_state(cfg, strategy)
    before = {n: networks.get_state(getattr(state, n)) for n in ("G", "D")}
    step, _ = backend.make_train_step(state, cfg, strategy)
    batches = iter(pipeline.make_dataset(synthetic16, 8, strategy=strategy))
    history = [step(next(batches), i) for i in range(30)]
    for stats in history:
        assert all(np.isfinite(v) for v in stats.values()), stats
        assert stats["Progress/skipped_D"] == stats["Progress/skipped_G"] == 0
    for key in (
        "Loss/D/loss",
        "Loss/G/loss",
        "Loss/scores/real",
        "Loss/scores/fake",
    ):
        values = [s[key] for s in history]
        assert np.std(values) > 1e-3, key
    after = {n: networks.get_state(getattr(state, n)) for n in ("G", "D")}
    changed = [
        key
        for key in before["G"]
        if "torgb" in key and not np.allclose(before["G"][key], after["G"][key])
    ]
    assert len(changed) == 2 * 3  # kernel and bias at 4, 8 and 16
    combine_keys = [k for k in before["D"] if "/combine/" in k]
    assert {k.split("/")[0] for k in combine_keys} == {"b4", "b8"}
    for key in combine_keys:
        assert not np.allclose(before["D"][key], after["D"][key]), key
    # w_avg moved towards the mapping outputs; Gs follows G.
    assert np.abs(after["G"]["mapping/w_avg"]).sum() > 0
    gs = networks.get_state(state.Gs)
    key = "synthesis/b16/torgb/kernel"
    assert not np.allclose(gs[key], after["G"][key])
    assert not np.allclose(gs[key], before["G"][key])


@pytest.mark.large
def test_non_finite_updates_are_skipped(synthetic16):
    cfg = _cfg(synthetic16)
    strategy = backend.make_strategy(devices=["/cpu:0"])
    state = backend.build_state(cfg, strategy)
    kernel = state.D.epilogue.out.kernel
    poisoned = kernel.numpy()
    poisoned[0, 0] = np.inf
    kernel.assign(poisoned)
    before = networks.get_state(state.D)
    g_before = networks.get_state(state.G)
    step, _ = backend.make_train_step(state, cfg, strategy)
    batches = iter(pipeline.make_dataset(synthetic16, 8, strategy=strategy))
    stats = step(next(batches), 0)
    assert stats["Progress/skipped_D"] == 1.0
    assert stats["Progress/skipped_G"] == 1.0
    after = networks.get_state(state.D)
    for key in before:
        np.testing.assert_array_equal(before[key], after[key])
    for key, value in networks.get_state(state.G).items():
        np.testing.assert_array_equal(g_before[key], value)
    assert int(state.D_opt.iterations.numpy()) == 0


@pytest.mark.large
def test_diverging_run_stops_with_a_clear_error(synthetic16, tmp_path):
    from dnnlib.util import UserError

    cfg = _cfg(synthetic16, lr=1e30, max_skipped_steps=2, total_kimg=0.4)
    with pytest.raises(UserError, match="training diverged"):
        training_loop.training_loop(cfg, str(tmp_path))
    assert not os.path.exists(tmp_path / "network-final.pkl")


@pytest.mark.large
def test_xla_and_bf16_steps_run(synthetic8):
    data = synthetic8
    cfg = tiny_config(8, batch=8, xla=True, mixed_precision="bf16", data=data)
    strategy = backend.make_strategy(devices=["/cpu:0"])
    state = backend.build_state(cfg, strategy)
    assert state.G.synthesis.compute_dtype == "bfloat16"
    assert state.G.trainable_variables[0].dtype == "float32"
    step, _ = backend.make_train_step(state, cfg, strategy)
    batches = iter(pipeline.make_dataset(str(data), 8, strategy=strategy))
    before = networks.get_state(state.D)["b8/conv0/kernel"]
    for i in range(3):
        stats = step(next(batches), i)
        assert all(np.isfinite(v) for v in stats.values()), stats
        assert stats["Progress/skipped_D"] == 0
    after = networks.get_state(state.D)["b8/conv0/kernel"]
    assert not np.allclose(before, after)


def _two_steps(cfg, data):
    """Two steps of `cfg` from its seed's weights: the end state, both
    steps' statistics, and the weights before them."""
    strategy = backend.make_strategy(devices=["/cpu:0"])
    state = backend.build_state(cfg, strategy)
    first = {n: networks.get_state(getattr(state, n)) for n in ("G", "D")}
    step, _ = backend.make_train_step(state, cfg, strategy)
    batches = iter(pipeline.make_dataset(str(data), 8, strategy=strategy))
    stats = [step(next(batches), i) for i in range(2)]
    last = {n: networks.get_state(getattr(state, n)) for n in ("G", "D")}
    return last, stats, first


@pytest.mark.large
def test_elementwise_xla_step_equals_the_op_by_op_step(synthetic8):
    """--xla=elementwise (XLA clusters of elementwise ops, TensorFlow's
    kernels for the convolutions) computes the step --xla=off computes:
    from the same weights and batches, two fp32 steps give the same
    losses and scores and the same weights, to float32 rounding (the fused
    clusters reassociate sums). One weight is left out: the bias of G's
    first layer, which instance norm over the constant 4x4 input cancels,
    so its gradient is rounding noise that Adam's first steps turn into
    moves of +-lr either way. In bf16 the step runs and trains."""
    cfg = tiny_config(8, batch=8, xla="off", data=synthetic8)
    assert cfg.xla == "off" and tiny_config(8, xla=True).xla == "on"
    ref, ref_stats, first = _two_steps(cfg, synthetic8)
    cfg = tiny_config(8, batch=8, xla="elementwise", data=synthetic8)
    got, stats, _ = _two_steps(cfg, synthetic8)
    assert tf.config.optimizer.get_jit() == "autoclustering"
    for a, b in zip(ref_stats, stats):
        assert sorted(a) == sorted(b)
        for key in a:
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-6), key
    for states in (ref, got):
        del states["G"]["synthesis/b4/conv0/bias"]
    _assert_same(got, ref, exact=False)
    cfg = tiny_config(
        8, batch=8, xla="elementwise", mixed_precision="bf16", data=synthetic8
    )
    got, stats, first = _two_steps(cfg, synthetic8)
    assert all(np.isfinite(v) for s in stats for v in s.values()), stats
    assert stats[-1]["Progress/skipped_D"] == 0
    assert not np.allclose(
        got["D"]["b8/conv0/kernel"], first["D"]["b8/conv0/kernel"]
    )


def test_scale_consistency_is_zero_for_a_box_pyramid():
    from msg_stylegan.ops import image_pyramid

    top = np.random.default_rng(0).uniform(-1, 1, (2, 16, 16, 3))
    scales = [np.asarray(x) for x in image_pyramid(top.astype("float32"), 3)]
    stats = training_loop.scale_consistency(scales)
    assert sorted(stats) == ["Consistency/4x4", "Consistency/8x8"]
    assert max(stats.values()) < 1e-6
    scales[0] = scales[0] + 0.5
    assert training_loop.scale_consistency(scales)["Consistency/4x4"] == (
        pytest.approx(0.5, abs=1e-6)
    )
