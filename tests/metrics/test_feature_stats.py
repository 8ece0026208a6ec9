"""Tests for streaming feature statistics and their on-disk cache."""

import os

import numpy as np
import pytest

from dnnlib.util import UserError
from metrics.feature_stats import (
    SHARED_NETWORK,
    STANDARD_NETWORK,
    FeatureStats,
    Origin,
    check_same_origin,
    compute_stats_for_images,
    dataset_cache_key,
    load_fid_stats,
)
from tests.helpers import shared_data


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


def test_save_load_round_trip(tmp_path, capsys):
    x = np.random.default_rng(1).normal(size=(30, 8))
    origin = Origin("half-pixel", "net-1")
    stats = FeatureStats(capture_all=True, origin=origin)
    stats.append(x)
    path = tmp_path / "sub" / "stats.npz"
    stats.save(path)
    back = FeatureStats.load(path)
    for a, b in zip(back.mean_cov(), stats.mean_cov()):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    np.testing.assert_allclose(back.features(), x.astype(np.float32))
    assert back.origin == origin
    # The same file is valid FID statistics for other tools, and says how
    # it was made.
    mu, sigma, got = load_fid_stats(path)
    assert sigma.dtype == np.float64 and mu.shape == (8,)
    assert got == origin and capsys.readouterr().err == ""


def test_load_fid_stats_errors(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, mean=np.zeros(3))
    with pytest.raises(UserError, match="no 'mu' and 'sigma'"):
        load_fid_stats(bad)
    with pytest.raises(UserError, match="cannot read"):
        load_fid_stats(tmp_path / "missing.npz")


def test_ttur_style_file_loads_as_tf1_with_a_warning(tmp_path, capsys):
    """Plain mu/sigma (TTUR's precomputed statistics) assume TF1's resize."""
    path = tmp_path / "fid_stats_cifar10_train.npz"
    np.savez(path, mu=np.zeros(4), sigma=np.eye(4, dtype=np.float32))
    mu, sigma, origin = load_fid_stats(path)
    assert origin == Origin("tf1", STANDARD_NETWORK)
    assert sigma.dtype == np.float64 and mu.shape == (4,)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "assuming --fid-resize=tf1" in err[0]
    assert "--stats-resize" in err[0]
    # Stated by the user (e.g. a pytorch-fid file): no warning.
    _, _, origin = load_fid_stats(path, assume_resize="half-pixel")
    assert origin.resize == "half-pixel"
    assert capsys.readouterr().err == ""
    # The standard network's name matches any of its weights' ids.
    check_same_origin(origin, Origin("half-pixel", SHARED_NETWORK))


def test_shared_statistics_are_half_pixel(capsys):
    """../shared/data's files record nothing; their READMEs say half-pixel."""
    path = shared_data("flowers5-128", "fid_stats_flowers5_128_all.npz")
    _, _, origin = load_fid_stats(path)
    assert origin == Origin("half-pixel", SHARED_NETWORK)
    assert capsys.readouterr().err == ""
    with pytest.raises(UserError, match="made with --fid-resize=half-pixel"):
        load_fid_stats(path, assume_resize="tf1")


def test_mixed_statistics_are_refused(tmp_path):
    a = Origin("tf1", SHARED_NETWORK)
    check_same_origin(a, Origin("tf1", SHARED_NETWORK))
    with pytest.raises(UserError) as e:
        check_same_origin(a, Origin("half-pixel", SHARED_NETWORK))
    msg = str(e.value)
    assert "\n" not in msg
    assert "A was made with --fid-resize=tf1" in msg
    assert "B with --fid-resize=half-pixel" in msg
    with pytest.raises(UserError, match="A comes from the feature network "):
        check_same_origin(a, Origin("tf1", "inception-2015-12-05-0123abcd"))
    with pytest.raises(UserError, match="network pixel-means but B from"):
        check_same_origin(Origin("tf1", "pixel-means"), a)


class PixelMeans:
    """A stand-in feature extractor: per-image channel means and stds."""

    weights_id = "pixel-means"

    def __init__(self, resize="tf1"):
        self.resize = resize

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
    assert again.origin == stats.origin == Origin("tf1", "pixel-means")
    # The other resize mode is another cache file.
    other = compute_stats_for_images(
        image_batches(100),
        PixelMeans("half-pixel"),
        max_items=10,
        cache_key=key,
    )
    assert other.origin.resize == "half-pixel"
    assert len(list((tmp_path / "cache" / "fid-stats").glob("*.npz"))) == 2
    # A rewritten dataset file is a new key.
    data.write_bytes(b"xy")
    os.utime(data, ns=(0, 0))
    new_key = dataset_cache_key(data, num_images=10, mirror=False)
    assert new_key != key


def test_cache_key_of_missing_dataset(tmp_path):
    with pytest.raises(UserError, match="cannot read dataset"):
        dataset_cache_key(tmp_path / "nope")
