"""Frechet Inception Distance (Heusel et al. 2017, arXiv 1706.08500).

FID = |mu_r - mu_f|^2 + Tr(S_r + S_f - 2 sqrtm(S_r S_f)), in float64.
"""

import numpy as np


def _sqrt_psd(s):
    """Symmetric square root of a PSD matrix via eigh (negatives clamped)."""
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product(sigma1, sigma2):
    """Tr(sqrtm(sigma1 @ sigma2)) for covariance matrices.

    sigma1 sigma2 is similar to A = sqrt(sigma1) sigma2 sqrt(sigma1), which is
    symmetric PSD, so the trace is the sum of the square roots of A's
    eigenvalues: two `eigh` calls instead of scipy's slow, general sqrtm.
    """
    root = _sqrt_psd(sigma1)
    a = root @ sigma2 @ root
    w = np.linalg.eigvalsh((a + a.T) / 2)  # symmetrise rounding error
    return float(np.sqrt(np.clip(w, 0.0, None)).sum())


def fid_from_stats(mu1, sigma1, mu2, sigma2):
    """FID between two Gaussians given by mean [d] and covariance [d, d]."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1 = np.asarray(sigma1, np.float64)
    sigma2 = np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(
            f"statistics do not match: mu {mu1.shape} vs {mu2.shape}, "
            f"sigma {sigma1.shape} vs {sigma2.shape}"
        )
    diff = mu1 - mu2
    tr_covmean = trace_sqrt_product(sigma1, sigma2)
    fid = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean
    return float(fid)
