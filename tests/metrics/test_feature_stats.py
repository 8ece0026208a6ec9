"""Tests for streaming feature statistics and their on-disk cache."""

import os

import numpy as np
import pytest

from dnnlib.util import UserError
from metrics.feature_stats import (
    FeatureStats,
    compute_stats_for_images,
    dataset_cache_key,
    load_mean_cov,
)


def test_streaming_mean_cov_matches_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(257, 16)) * 3 + 100  # a large mean tests stability
    stats = FeatureStats()
    for lo, hi in [(0, 1), (1, 50), (50, 51), (51, 200), (200, 257)]:
        stats.append(x[lo:hi])
    mu, sigma = stats.mean_cov()
    np.testing.assert_allclose(mu, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(x, rowvar=False), atol=1e-10)


def test_max_items_and_capture_all():
    x = np.arange(40, dtype=np.float32).reshape(10, 4)
    stats = FeatureStats(max_items=7, capture_all=True)
    stats.append(x[:5])
    assert not stats.is_full()
    stats.append(x[5:])
    assert stats.is_full() and stats.num_items == 7
    np.testing.assert_array_equal(stats.features(), x[:7])
    np.testing.assert_allclose(stats.mean_cov()[0], x[:7].mean(0))


def test_too_few_items_is_a_user_error():
    stats = FeatureStats()
    stats.append(np.zeros([1, 3]))
    with pytest.raises(UserError, match="at least 2"):
        stats.mean_cov()


def test_save_load_round_trip(tmp_path):
    x = np.random.default_rng(1).normal(size=(30, 8))
    stats = FeatureStats(capture_all=True)
    stats.append(x)
    path = tmp_path / "sub" / "stats.npz"
    stats.save(path)
    back = FeatureStats.load(path)
    for a, b in zip(back.mean_cov(), stats.mean_cov()):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    np.testing.assert_allclose(back.features(), x.astype(np.float32))
    # The same file is valid FID statistics for other tools.
    mu, sigma = load_mean_cov(path)
    assert sigma.dtype == np.float64 and mu.shape == (8,)


def test_load_mean_cov_errors(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, mean=np.zeros(3))
    with pytest.raises(UserError, match="no 'mu' and 'sigma'"):
        load_mean_cov(bad)
    with pytest.raises(UserError, match="cannot read"):
        load_mean_cov(tmp_path / "missing.npz")


class PixelMeans:
    """A stand-in feature extractor: per-image channel means and stds."""

    weights_id = "pixel-means"

    def __call__(self, images):
        x = images.astype(np.float32)
        return np.concatenate([x.mean((1, 2)), x.std((1, 2))], axis=1)


def image_batches(n, batch=4, seed=0):
    rng = np.random.default_rng(seed)
    for lo in range(0, n, batch):
        yield rng.integers(0, 256, (min(batch, n - lo), 8, 8, 3), np.uint8)


def test_compute_stats_stops_at_max_items_and_caches(tmp_path):
    data = tmp_path / "data.zip"
    data.write_bytes(b"x")
    key = dataset_cache_key(data, num_images=10, mirror=False)
    stats = compute_stats_for_images(
        image_batches(100), PixelMeans(), max_items=10, cache_key=key
    )
    assert stats.num_items == 10
    cached = list((tmp_path / "cache" / "fid-stats").glob("*.npz"))
    assert len(cached) == 1

    def untouched():
        raise AssertionError("the cache should have been used")
        yield

    again = compute_stats_for_images(
        untouched(), PixelMeans(), max_items=10, cache_key=key
    )
    np.testing.assert_array_equal(again.mean_cov()[1], stats.mean_cov()[1])
    # A rewritten dataset file is a new key.
    data.write_bytes(b"xy")
    os.utime(data, ns=(0, 0))
    new_key = dataset_cache_key(data, num_images=10, mirror=False)
    assert new_key != key


def test_cache_key_of_missing_dataset(tmp_path):
    with pytest.raises(UserError, match="cannot read dataset"):
        dataset_cache_key(tmp_path / "nope")
