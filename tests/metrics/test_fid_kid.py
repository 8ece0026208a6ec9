"""Tests for the FID and KID math against direct computations."""

import numpy as np
import pytest
import scipy.linalg

from metrics.fid import fid_from_stats, trace_sqrt_product
from metrics.kid import kid_from_features


def random_features(n, d, seed, shift=0.0):
    """Correlated Gaussian samples; one fixed covariance per dimension d."""
    mix = np.random.default_rng(d).normal(size=(d, d)) / np.sqrt(d)
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) @ mix + shift


def fid_reference(x, y):
    """FID straight from its definition, with scipy's general sqrtm."""
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean)


def stats(x):
    return x.mean(0), np.cov(x, rowvar=False)


@pytest.mark.parametrize("shift", [0.0, 0.3])
def test_fid_matches_sqrtm(shift):
    x = random_features(500, 64, seed=0)
    y = random_features(400, 64, seed=1, shift=shift)
    got = fid_from_stats(*stats(x), *stats(y))
    assert got == pytest.approx(fid_reference(x, y), rel=1e-8, abs=1e-9)


def test_fid_of_a_set_with_itself_is_zero():
    x = random_features(300, 64, seed=2)
    assert abs(fid_from_stats(*stats(x), *stats(x))) < 1e-8


def test_fid_with_rank_deficient_covariance():
    # Fewer samples than dimensions: singular covariances, tiny negative
    # eigenvalues from rounding must not give NaN.
    x = random_features(20, 64, seed=3)
    y = random_features(20, 64, seed=4)
    got = fid_from_stats(*stats(x), *stats(y))
    assert np.isfinite(got)
    assert got == pytest.approx(fid_reference(x, y), rel=1e-6)


def test_trace_sqrt_product_is_symmetric_in_its_arguments():
    s1 = np.cov(random_features(100, 16, seed=5), rowvar=False)
    s2 = np.cov(random_features(100, 16, seed=6), rowvar=False)
    assert trace_sqrt_product(s1, s2) == pytest.approx(
        trace_sqrt_product(s2, s1), rel=1e-10
    )


def test_fid_rejects_mismatched_stats():
    with pytest.raises(ValueError, match="do not match"):
        fid_from_stats(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def kid_reference(x, y):
    """Unbiased MMD^2 by double loops over all pairs, cubic kernel."""
    d = x.shape[1]

    def k(a, b):
        return (a @ b / d + 1) ** 3

    m = len(x)
    kxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    kyy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    kxy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return (kxx + kyy) / (m * (m - 1)) - 2 * kxy / (m * m)


def test_kid_matches_double_loop():
    real = random_features(12, 5, seed=7)
    fake = random_features(12, 5, seed=8, shift=0.5)
    # One subset holding every sample: the subset draw is a permutation.
    got = kid_from_features(real, fake, num_subsets=1, max_subset_size=12)
    assert got == pytest.approx(kid_reference(fake, real), rel=1e-10)


def test_kid_separates_distributions():
    real = random_features(300, 32, seed=9)
    same = random_features(300, 32, seed=10)
    other = random_features(300, 32, seed=10, shift=0.5)
    kw = dict(num_subsets=20, max_subset_size=100)
    near = kid_from_features(real, same, **kw)
    far = kid_from_features(real, other, **kw)
    assert abs(near) < far / 10
    # Seeded subsets: the same call gives the same value.
    assert kid_from_features(real, other, **kw) == far
