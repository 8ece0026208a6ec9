"""Streaming feature statistics (mean, covariance) with an on-disk cache.

The statistics FID needs (Heusel et al. 2017, arXiv 1706.08500) and the raw
features KID needs (Binkowski et al. 2018, arXiv 1801.01401), accumulated
batch by batch so 50k images never sit in memory as one array.
"""

import hashlib
import json
import os

import numpy as np

from dnnlib import interrupt
from dnnlib.util import Progress, UserError, atomic_write
from metrics.inception import cache_dir

STATS_VERSION = 1  # bump when the meaning of cached statistics changes


class FeatureStats:
    """Mean and covariance of feature vectors, added a batch at a time.

    Uses Chan et al.'s pairwise update in float64, which stays accurate
    where the textbook `E[xx^T] - mu mu^T` loses digits. The covariance is
    the unbiased one (`np.cov`, divided by n - 1), as TTUR and StyleGAN.

    Args:
        max_items: stop accepting features after this many (None: no limit).
        capture_all: also keep every feature vector (KID needs them).
    """

    def __init__(self, max_items=None, capture_all=False):
        self.max_items = max_items
        self.capture_all = capture_all
        self.num_items = 0
        self.dim = None
        self.mean = None
        self.m2 = None  # sum of outer products of deviations from the mean
        self.all = []

    def is_full(self):
        return self.max_items is not None and self.num_items >= self.max_items

    def append(self, x):
        """Add features [n, dim]; the part beyond max_items is dropped."""
        x = np.asarray(x, np.float64)
        if x.ndim != 2:
            raise ValueError(f"features must be [n, dim], got {x.shape}")
        if self.max_items is not None:
            x = x[: max(self.max_items - self.num_items, 0)]
        if len(x) == 0:
            return
        if self.dim is None:
            self.dim = x.shape[1]
            self.mean = np.zeros([self.dim], np.float64)
            self.m2 = np.zeros([self.dim, self.dim], np.float64)
        if x.shape[1] != self.dim:
            raise ValueError(f"feature dim {x.shape[1]} != {self.dim}")
        if self.capture_all:
            self.all.append(x.astype(np.float32))
        n_a, n_b = self.num_items, len(x)
        mean_b = x.mean(axis=0)
        d = x - mean_b
        delta = mean_b - self.mean
        n = n_a + n_b
        self.m2 += d.T @ d + np.outer(delta, delta) * (n_a * n_b / n)
        self.mean += delta * (n_b / n)
        self.num_items = n

    def mean_cov(self):
        """(mu [dim], sigma [dim, dim]) in float64."""
        if self.num_items < 2:
            raise UserError(
                f"need at least 2 images for statistics, got {self.num_items}"
            )
        return self.mean.copy(), self.m2 / (self.num_items - 1)

    def features(self):
        """All features [n, dim] float32 (only with capture_all)."""
        if not self.capture_all:
            raise ValueError("FeatureStats was made without capture_all")
        if not self.all:
            return np.zeros([0, self.dim or 0], np.float32)
        return np.concatenate(self.all)

    def save(self, path):
        """Write `mu`, `sigma`, `num_items` (and `features`) atomically."""
        mu, sigma = self.mean_cov()
        arrays = dict(mu=mu, sigma=sigma, num_items=np.int64(self.num_items))
        if self.capture_all:
            arrays["features"] = self.features()
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        with atomic_write(path) as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path):
        """Read what `save()` wrote."""
        with np.load(path, allow_pickle=False) as f:
            stats = cls(capture_all="features" in f.files)
            stats.num_items = int(f["num_items"])
            stats.mean = f["mu"].astype(np.float64)
            stats.m2 = f["sigma"].astype(np.float64) * (stats.num_items - 1)
            stats.dim = len(stats.mean)
            if stats.capture_all:
                stats.all = [f["features"]]
        stats.max_items = stats.num_items
        return stats


def load_mean_cov(path):
    """(mu, sigma) float64 from any FID statistics .npz with `mu`/`sigma`."""
    try:
        with np.load(path, allow_pickle=False) as f:
            if "mu" not in f.files or "sigma" not in f.files:
                raise UserError(
                    f"'{path}' has no 'mu' and 'sigma' arrays "
                    f"(it holds {', '.join(f.files) or 'nothing'})"
                )
            mu = f["mu"].astype(np.float64)
            sigma = f["sigma"].astype(np.float64)  # often stored as float32
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read statistics '{path}': {e}")
    if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)):
        raise UserError(
            f"'{path}': mu {mu.shape} and sigma {sigma.shape} do not match"
        )
    return mu, sigma


def dataset_cache_key(path, **options):
    """A dict naming a dataset file or folder by identity, for cache keys.

    Holds the absolute path, size and modification time (a rewritten
    dataset gets new statistics) plus the caller's options, such as the
    number of images and mirroring.
    """
    path = os.path.abspath(os.fspath(path))
    try:
        st = os.stat(path)
    except OSError as e:
        raise UserError(f"cannot read dataset '{path}': {e.strerror}")
    key = dict(path=path, size=st.st_size, mtime_ns=st.st_mtime_ns)
    key.update(options)
    return key


def stats_cache_path(cache_key, weights_id, max_items, capture_all):
    """The cache file for a key: `<cache>/fid-stats/<sha>.npz`."""
    blob = json.dumps(
        dict(
            key=cache_key,
            weights=weights_id,
            max_items=max_items,
            capture_all=bool(capture_all),
            version=STATS_VERSION,
        ),
        sort_keys=True,
        default=str,
    )
    digest = hashlib.sha256(blob.encode()).hexdigest()[:24]
    return os.path.join(cache_dir(), "fid-stats", f"{digest}.npz")


def compute_stats_for_images(
    batches,
    extractor,
    max_items=None,
    cache_key=None,
    capture_all=False,
    desc="features",
    progress=True,
):
    """Inception statistics of an iterable of uint8 [n, H, W, C] batches.

    Reads batches until `max_items` images (or the iterable ends). With a
    `cache_key` (any JSON-serialisable value, e.g. `dataset_cache_key()`),
    the result is stored under the cache folder and later calls with the
    same key, weights and options read it back without touching the data.

    Returns:
        FeatureStats (`mean_cov()`, and `features()` when capture_all).
    """
    path = None
    if cache_key is not None:
        path = stats_cache_path(
            cache_key, extractor.weights_id, max_items, capture_all
        )
        if os.path.isfile(path):
            return FeatureStats.load(path)
    stats = FeatureStats(max_items=max_items, capture_all=capture_all)
    bar = Progress(max_items, desc) if progress else None
    for images in batches:
        interrupt.check()  # a signal during training abandons the metric
        if stats.is_full():
            break
        if stats.max_items is not None:
            images = images[: stats.max_items - stats.num_items]
        feats = extractor(images)
        stats.append(feats)
        if bar:
            bar.update(len(feats))
    if bar:
        bar.close()
    if path is not None:
        stats.save(path)
    return stats
