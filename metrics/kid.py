"""Kernel Inception Distance (Binkowski et al. 2018, arXiv 1801.01401).

Unbiased MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3,
averaged over random subsets, as NVIDIA's StyleGAN2-ADA reports it.
"""

import numpy as np


def kid_from_features(
    real_features,
    fake_features,
    num_subsets=100,
    max_subset_size=1000,
    seed=0,
):
    """KID between two feature sets [n, d] (float64 math, seeded subsets)."""
    real = np.asarray(real_features, np.float64)
    fake = np.asarray(fake_features, np.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"feature sets do not match: {real.shape} vs {fake.shape}"
        )
    d = real.shape[1]
    m = min(len(real), len(fake), max_subset_size)
    if m < 2:
        raise ValueError(f"KID needs at least 2 features per set, got {m}")
    rng = np.random.default_rng(seed)
    t = 0.0
    for _ in range(num_subsets):
        x = fake[rng.choice(len(fake), m, replace=False)]
        y = real[rng.choice(len(real), m, replace=False)]
        a = (x @ x.T / d + 1) ** 3 + (y @ y.T / d + 1) ** 3
        b = (x @ y.T / d + 1) ** 3
        # Unbiased: the diagonal (each sample with itself) is left out.
        t += (a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m
    return float(t / num_subsets / m)
