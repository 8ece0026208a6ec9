"""Streaming feature statistics (mean, covariance) with an on-disk cache.

The statistics FID needs (Heusel et al. 2017, arXiv 1706.08500) and the raw
features KID needs (Binkowski et al. 2018, arXiv 1801.01401), accumulated
batch by batch so 50k images never sit in memory as one array. Statistics
record how they were made (the resize mode and the feature network), and
statistics made differently are never combined.
"""

import hashlib
import json
import os
import sys
from dataclasses import dataclass

import numpy as np

from dnnlib import interrupt
from dnnlib.util import Progress, UserError, atomic_write
from metrics.inception import DEFAULT_RESIZE, cache_dir, check_resize

STATS_VERSION = 2  # bump when the meaning of cached statistics changes

# The network every FID statistics file from elsewhere is assumed to use.
STANDARD_NETWORK = "inception-2015-12-05"
# `weights_id` of the inception-2015-12-05 weights (pytorch-fid's .pth and
# ../shared/data/fid-inception-2015-12-05 hold the same values).
SHARED_NETWORK = "inception-2015-12-05-faa37c74cec4860f"

# Plain mu/sigma files whose making is documented elsewhere, by sha256:
# the statistics in ../shared/data (see their READMEs) were computed in
# half-pixel mode with the shared weights.
KNOWN_STATS = {
    "fe101227aa4c378e284b520ad6461aa62dfb0c25e78d7156b08781a2bc433f9a": (
        "half-pixel",
        SHARED_NETWORK,
    ),  # cifar10-jpeg/fid_stats_cifar10jpeg_train50k.npz
    "d8645894da2a05f518528193e032a37fae608c2cf11fee8411e6d878a4c777ab": (
        "half-pixel",
        SHARED_NETWORK,
    ),  # flowers5-128/fid_stats_flowers5_128_all.npz
}


@dataclass(frozen=True)
class Origin:
    """How statistics were made.

    Args:
        resize: the resize mode to 299x299 (`--fid-resize`).
        network: the feature network's `weights_id`, or the standard
            network's name where a file does not record its weights.
    """

    resize: str
    network: str

    def same_network(self, other):
        """Equal ids, or one of them only names the standard network."""
        if self.network == other.network:
            return True
        names = (self.network, other.network)
        return STANDARD_NETWORK in names and all(
            n.startswith(STANDARD_NETWORK) for n in names
        )


def check_same_origin(a, b, label_a="A", label_b="B"):
    """Raise a one-line UserError if two statistics were made differently."""
    if a.resize != b.resize:
        raise UserError(
            f"{label_a} was made with --fid-resize={a.resize} but {label_b} "
            f"with --fid-resize={b.resize}; statistics made differently "
            "cannot be compared"
        )
    if not a.same_network(b):
        raise UserError(
            f"{label_a} comes from the feature network {a.network} but "
            f"{label_b} from {b.network}; statistics made differently "
            "cannot be compared"
        )


class FeatureStats:
    """Mean and covariance of feature vectors, added a batch at a time.

    Uses Chan et al.'s pairwise update in float64, which stays accurate
    where the textbook `E[xx^T] - mu mu^T` loses digits. The covariance is
    the unbiased one (`np.cov`, divided by n - 1), as TTUR and StyleGAN.

    Args:
        max_items: stop accepting features after this many (None: no limit).
        capture_all: also keep every feature vector (KID needs them).
        origin: how the features were made (`Origin`), or None.
    """

    def __init__(self, max_items=None, capture_all=False, origin=None):
        self.max_items = max_items
        self.capture_all = capture_all
        self.origin = origin
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
        """Write `mu`, `sigma`, `num_items`, the origin (`resize`, `network`
        strings) and, with capture_all, `features`, atomically."""
        mu, sigma = self.mean_cov()
        arrays = dict(mu=mu, sigma=sigma, num_items=np.int64(self.num_items))
        if self.origin is not None:
            arrays["resize"] = np.array(self.origin.resize)
            arrays["network"] = np.array(self.origin.network)
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
            if "resize" in f.files and "network" in f.files:
                stats.origin = Origin(str(f["resize"]), str(f["network"]))
            stats.num_items = int(f["num_items"])
            stats.mean = f["mu"].astype(np.float64)
            stats.m2 = f["sigma"].astype(np.float64) * (stats.num_items - 1)
            stats.dim = len(stats.mean)
            if stats.capture_all:
                stats.all = [f["features"]]
        stats.max_items = stats.num_items
        return stats


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_fid_stats(path, assume_resize=None):
    """(mu, sigma, Origin) from any FID statistics .npz with `mu`/`sigma`.

    The origin comes from the file (this project's files record `resize`
    and `network`), else from `KNOWN_STATS` (files documented elsewhere,
    such as ../shared/data's), else from `assume_resize` (the user says how
    a plain file was made), else it is assumed: TF1's resize and the
    standard network, as TTUR's precomputed statistics, with a warning.
    A stated mode that contradicts a recorded one is an error.
    """
    try:
        with np.load(path, allow_pickle=False) as f:
            if "mu" not in f.files or "sigma" not in f.files:
                raise UserError(
                    f"'{path}' has no 'mu' and 'sigma' arrays "
                    f"(it holds {', '.join(f.files) or 'nothing'})"
                )
            mu = f["mu"].astype(np.float64)
            sigma = f["sigma"].astype(np.float64)  # often stored as float32
            recorded = None
            if "resize" in f.files and "network" in f.files:
                recorded = Origin(str(f["resize"]), str(f["network"]))
        if recorded is None:
            known = KNOWN_STATS.get(_sha256(path))
            recorded = Origin(*known) if known else None
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read statistics '{path}': {e}")
    if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)):
        raise UserError(
            f"'{path}': mu {mu.shape} and sigma {sigma.shape} do not match"
        )
    if recorded is not None:
        check_resize(recorded.resize)
        if assume_resize is not None and assume_resize != recorded.resize:
            raise UserError(
                f"'{path}' was made with --fid-resize={recorded.resize}, "
                f"not the --stats-resize={assume_resize} given"
            )
        return mu, sigma, recorded
    if assume_resize is not None:
        return mu, sigma, Origin(check_resize(assume_resize), STANDARD_NETWORK)
    print(
        f"warning: '{path}' does not record how it was made; assuming "
        f"--fid-resize={DEFAULT_RESIZE} and {STANDARD_NETWORK} (as TTUR's "
        "statistics); pass --stats-resize=MODE to state it",
        file=sys.stderr,
    )
    return mu, sigma, Origin(DEFAULT_RESIZE, STANDARD_NETWORK)


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


def stats_cache_path(cache_key, origin, max_items, capture_all):
    """The cache file for a key: `<cache>/fid-stats/<sha>.npz`."""
    blob = json.dumps(
        dict(
            key=cache_key,
            weights=origin.network,
            resize=origin.resize,
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
    same key, weights, resize mode and options read it back without touching
    the data.

    Returns:
        FeatureStats (`mean_cov()`, `origin`, and `features()` when
        capture_all).
    """

    def features():
        done = 0
        for images in batches:
            if max_items is not None:
                if done >= max_items:
                    return
                images = images[: max_items - done]
            done += len(images)
            yield extractor(images)

    return compute_stats(
        features(),
        Origin(extractor.resize, extractor.weights_id),
        max_items=max_items,
        cache_key=cache_key,
        capture_all=capture_all,
        desc=desc,
        progress=progress,
    )


def compute_stats(
    features,
    origin,
    max_items=None,
    cache_key=None,
    capture_all=False,
    desc="features",
    progress=True,
):
    """Statistics of an iterable of feature batches [n, dim] (`origin`: how
    they are made); the cache as in `compute_stats_for_images`, which is
    checked before `features` is iterated."""
    path = None
    if cache_key is not None:
        path = stats_cache_path(cache_key, origin, max_items, capture_all)
        if os.path.isfile(path):
            stats = FeatureStats.load(path)
            if stats.origin != origin:  # a hash collision or a stray file
                raise UserError(f"cache file '{path}' was made differently")
            return stats
    stats = FeatureStats(
        max_items=max_items, capture_all=capture_all, origin=origin
    )
    bar = Progress(max_items, desc) if progress else None
    for feats in features:
        interrupt.check()  # a signal during training abandons the metric
        n = stats.num_items
        stats.append(feats)
        if bar:
            bar.update(stats.num_items - n)
        if stats.is_full():
            break
    if bar:
        bar.close()
    if path is not None:
        stats.save(path)
    return stats
