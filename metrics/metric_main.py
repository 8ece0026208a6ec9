"""Metric registry and reporting: FID (Heusel et al. 2017) and KID (2018).

FID as in StyleGAN (Karras et al. 2019, arXiv 1812.04948): Inception
"inception-2015-12-05" pool_3 features of generated images (Gs, no
truncation, random noise, full-resolution output only) against the same
number of reals. KID as in Binkowski et al. 2018 (arXiv 1801.01401) on the
same features. Real statistics are cached on disk per dataset. Images are
resized to 299x299 in one of two modes (`--fid-resize`, see
`metrics.inception.RESIZE_MODES`); result lines name it.

Heavy imports (Keras, the networks, the Inception port) happen inside the
functions, so `check_metric_names()` and CLI `--help` stay instant.
"""

import contextlib
import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from dnnlib.util import UserError, format_time

FAKE_SEED = 0  # latents (and noise) of the fakes: the same for every call
REAL_SEED = 0  # which reals, and which of them are mirrored

_METRICS = {}


def register_metric(fn):
    """Register `fn(opts) -> dict(value, num_real, num_fake)` by its name."""
    _METRICS[fn.__name__] = fn
    return fn


def metric_names():
    """All registered metric names, sorted."""
    return sorted(_METRICS)


def check_metric_names(names):
    """Raise a UserError naming the unknown metrics and the valid ones."""
    unknown = [n for n in names if n not in _METRICS]
    if unknown:
        raise UserError(
            f"unknown metric {', '.join(repr(n) for n in unknown)}; "
            f"valid metrics: {', '.join(metric_names())}"
        )


@dataclass
class MetricOptions:
    """What a metric function needs.

    Args:
        G: the generator (Gs) to evaluate.
        data: the dataset directory (StyleGAN TFRecords).
        mirror: whether training mirrored the reals (see `iterate_reals`).
        extractor: a `metrics.inception.FeatureExtractor`.
        num: an image count overriding the metric's own (quick checks).
        progress: show progress bars on stderr.
        devices: Keras device names ('gpu:0', 'gpu:1') to spread the
            generation and Inception passes over; None: the default device.
    """

    G: object
    data: str
    mirror: bool
    extractor: object
    num: int | None = None
    progress: bool = True
    devices: list | None = None

    def count(self, default):
        return self.num if self.num else default


@dataclass
class MetricResult:
    """One metric of one network."""

    name: str
    value: float
    seconds: float
    num_fake: int
    num_real: int
    network: str = ""
    resize: str = ""

    def line(self):
        """`<network> time <t> <metric> <value> resize=<mode>`.

        StyleGAN's result line with the resize mode appended.
        """
        fmt = ".6f" if self.name.startswith("kid") else ".4f"
        return (
            f"{self.network} time {format_time(self.seconds)} "
            f"{self.name} {self.value:{fmt}} resize={self.resize}"
        )


# --------------------------------------------------------------------------
# Images


def draw_reals(num_images, num, mirror=False, seed=REAL_SEED):
    """Which reals to use: (uses, flips), both of length `num`.

    As NVlabs drew them: the dataset shuffled with a fixed seed and read
    from the start, reshuffled for every further pass when it holds fewer
    than `num` images; with `mirror`, each drawn image is flipped
    left-right with probability 1/2, as the training data is.
    """
    rnd = np.random.RandomState(seed)
    passes = -(-num // num_images)  # ceil
    uses = np.concatenate([rnd.permutation(num_images) for _ in range(passes)])
    uses = uses[:num]
    flips = np.zeros([num], bool)
    if mirror:
        flips = np.random.RandomState(seed + 1).rand(num) < 0.5
    return uses, flips


def iterate_reals(data, num, batch_size, mirror=False, seed=REAL_SEED):
    """uint8 [n, H, W, C] batches of `num` full-resolution reals.

    The images and flips of `draw_reals()`, read in one pass in stored
    order (FID's mean and covariance do not depend on the order, and the
    file is read sequentially, whatever its size).
    """
    from datasets.tfrecords import count_records, find_dataset, iterate_images

    info = find_dataset(data)
    file = info.files[info.resolution]
    n = count_records(file)
    if n == 0:
        raise UserError(f"dataset '{info.path}' holds no images")
    uses, flips = draw_reals(n, num, mirror, seed)
    per_image = [[] for _ in range(n)]  # flips of each use of an image
    for index, flip in zip(uses, flips):
        per_image[index].append(flip)
    batch = []
    for index, img in enumerate(iterate_images(file)):
        for flip in per_image[index]:
            batch.append(img[:, ::-1] if flip else img)
            if len(batch) == batch_size:
                yield np.stack(batch)
                batch = []
    if batch:
        yield np.stack(batch)


def fake_inputs(G, num, batch_size, seed=FAKE_SEED):
    """(z, noise) NumPy batches for `num` fakes, `batch_size` at a time.

    Latents come from `np.random.RandomState(seed)` and the noise from a
    Keras seed generator made from the same seed, so two calls (on any
    number of devices) see the same images.
    """
    import keras

    rnd = np.random.RandomState(seed)
    noise_gen = keras.random.SeedGenerator(seed)
    noise_res = G.noise_resolutions
    for start in range(0, num, batch_size):
        n = min(batch_size, num - start)
        z = rnd.randn(n, G.z_dim).astype(np.float32)
        noise = [
            keras.ops.convert_to_numpy(
                keras.random.normal((n, r, r, 1), seed=noise_gen)
            )
            for r in noise_res
        ]
        yield z, noise


def generate(G, z, noise):
    """uint8 [n, R, R, C] full-resolution images: no truncation, random
    noise (the given images), as StyleGAN's FID."""
    import keras

    from dnnlib.images import to_uint8

    imgs = G(z, truncation_psi=1.0, noise_mode="random", noise=noise)
    return to_uint8(keras.ops.convert_to_numpy(imgs[-1]))


def iterate_fakes(G, num, batch_size, seed=FAKE_SEED):
    """uint8 [n, R, R, C] batches of `num` full-resolution Gs images."""
    for z, noise in fake_inputs(G, num, batch_size, seed):
        yield generate(G, z, noise)


# --------------------------------------------------------------------------
# Devices


def on_devices(fn, items, devices):
    """Yield `fn(d, item)` for every item, in item order.

    Item k runs on `devices[d]`, d = k mod len(devices), inside
    `keras.device`, in that device's own thread, with up to two items per
    device in flight (TensorFlow and JAX release the GIL while they
    compute, so the devices work at once). `fn` must use device d's own
    copies of the networks (`replicas`). Each result depends on its item
    alone (the networks work image by image), so the results are those of
    one device. devices: None or one device: in this thread.
    """
    import keras

    if not devices or len(devices) == 1:
        scope = keras.device(devices[0]) if devices else _no_scope()
        with scope:
            for item in items:
                yield fn(0, item)
        return

    def run(d, item):
        with keras.device(devices[d]):
            return fn(d, item)

    pools = [ThreadPoolExecutor(1, f"metrics-{d}") for d in devices]
    pending = deque()
    try:
        for k, item in enumerate(items):
            d = k % len(devices)
            pending.append(pools[d].submit(run, d, item))
            if len(pending) >= 2 * len(devices):
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for pool in pools:
            pool.shutdown(wait=True, cancel_futures=True)


@contextlib.contextmanager
def _no_scope():
    yield


_replicas = {}  # (kind, device) -> (original, its copy on that device)


def replicas(original, devices, copy):
    """`original` for each device: a copy made there with `copy(original)`
    inside `keras.device` (kept while the original is the same object);
    the original itself without devices."""
    import keras

    if not devices or len(devices) == 1:
        return [original]
    out = []
    for device in devices:
        key = (copy.__name__, device)
        held = _replicas.get(key)
        if held is None or held[0] is not original:
            with keras.device(device):
                held = _replicas[key] = (original, copy(original))
        out.append(held[1])
    return out


def copy_generator(G):
    """Gs rebuilt from its Keras config, with the same values."""
    from msg_stylegan import networks

    G2 = type(G).from_config(G.get_config())
    G2.build((None, G.z_dim))
    networks.set_state(G2, networks.get_state(G), what=G.name)
    return G2


def copy_extractor(extractor):
    """A FeatureExtractor with the same Inception weights and options."""
    from metrics import inception as inception_lib

    model = inception_lib.build_inception(extractor.resize)
    model.set_weights(extractor.model.get_weights())
    model.weights_id = extractor.weights_id
    return inception_lib.FeatureExtractor(model, extractor.batch_size)


def _origin(extractor):
    from metrics.feature_stats import Origin

    return Origin(extractor.resize, extractor.weights_id)


def real_stats(opts, num, capture_all=False):
    """Inception statistics of `num` reals, cached per dataset and options.

    The key names the full-resolution .tfrecords file (path, size, mtime),
    so a rewritten dataset gets new statistics; the resize mode and network
    are part of the cache file's name too.
    """
    from datasets.tfrecords import find_dataset
    from metrics.feature_stats import compute_stats, dataset_cache_key

    info = find_dataset(opts.data)
    key = dataset_cache_key(
        info.files[info.resolution],
        num=num,
        mirror=bool(opts.mirror),
        draw=f"shuffled-{REAL_SEED}",
    )
    extractors = replicas(opts.extractor, opts.devices, copy_extractor)
    batches = iterate_reals(
        opts.data, num, opts.extractor.batch_size, opts.mirror
    )
    return compute_stats(
        on_devices(lambda d, imgs: extractors[d](imgs), batches, opts.devices),
        _origin(opts.extractor),
        max_items=num,
        cache_key=key,
        capture_all=capture_all,
        desc="reals",
        progress=opts.progress,
    )


def fake_stats(opts, num, capture_all=False):
    """Inception statistics of `num` Gs images (never cached).

    Generated in batches of the extractor's size, so none is padded.
    """
    from metrics.feature_stats import compute_stats

    Gs = replicas(opts.G, opts.devices, copy_generator)
    extractors = replicas(opts.extractor, opts.devices, copy_extractor)

    def features(d, inputs):
        return extractors[d](generate(Gs[d], *inputs))

    inputs = fake_inputs(opts.G, num, opts.extractor.batch_size)
    return compute_stats(
        on_devices(features, inputs, opts.devices),
        _origin(opts.extractor),
        max_items=num,
        capture_all=capture_all,
        desc="fakes",
        progress=opts.progress,
    )


# --------------------------------------------------------------------------
# Metrics


def compute_fid(opts, num):
    num = opts.count(num)
    return fid_of(real_stats(opts, num), fake_stats(opts, num))


def fid_of(real, fake):
    """The metric dict of two FeatureStats made the same way."""
    from metrics.feature_stats import check_same_origin
    from metrics.fid import fid_from_stats

    check_same_origin(real.origin, fake.origin, "the reals", "the fakes")
    value = fid_from_stats(*real.mean_cov(), *fake.mean_cov())
    return dict(value=value, num_real=real.num_items, num_fake=fake.num_items)


def compute_kid(opts, num):
    from metrics.feature_stats import check_same_origin
    from metrics.kid import kid_from_features

    num = opts.count(num)
    real = real_stats(opts, num, capture_all=True)
    fake = fake_stats(opts, num, capture_all=True)
    check_same_origin(real.origin, fake.origin, "the reals", "the fakes")
    value = kid_from_features(real.features(), fake.features())
    return dict(value=value, num_real=real.num_items, num_fake=fake.num_items)


@register_metric
def fid50k(opts):
    return compute_fid(opts, 50000)


@register_metric
def fid10k(opts):
    return compute_fid(opts, 10000)


@register_metric
def fid2k(opts):
    return compute_fid(opts, 2000)


@register_metric
def fid1k(opts):
    return compute_fid(opts, 1000)


def compute_fid_full(opts, num_fake):
    """FID of `num_fake` fakes against every real, each once, unflipped.

    As NVlabs' `fid50k_full`: the real statistics describe the whole
    dataset rather than a draw of `num_fake` images, so they are computed
    (and cached) once per dataset and reused for any generator, and the
    value does not depend on which reals a draw picked. `opts.num`
    overrides the fakes only.
    """
    return fid_of(full_real_stats(opts), fake_stats(opts, opts.count(num_fake)))


def full_real_stats(opts):
    """Statistics of every real of `opts.data`, each once, never mirrored.

    Cached like `real_stats`, so a first call (e.g. before training)
    leaves nothing for the `*_full` metrics to compute on the reals.
    """
    import dataclasses

    from datasets.tfrecords import count_records, find_dataset

    info = find_dataset(opts.data)
    num = count_records(info.files[info.resolution])
    return real_stats(dataclasses.replace(opts, mirror=False), num)


@register_metric
def fid50k_full(opts):
    return compute_fid_full(opts, 50000)


@register_metric
def fid10k_full(opts):
    return compute_fid_full(opts, 10000)


@register_metric
def kid50k(opts):
    return compute_kid(opts, 50000)


@register_metric
def kid10k(opts):
    return compute_kid(opts, 10000)


# --------------------------------------------------------------------------
# Evaluation with cached network and extractor

_network_cache = {}  # only the last snapshot: a run's snapshots differ
_extractor_cache = {}  # (weights file, batch, resize) -> FeatureExtractor


def _file_id(path):
    st = os.stat(path)
    return (os.path.abspath(path), st.st_size, st.st_mtime_ns)


def get_network(path):
    """(Gs, cfg) of a snapshot, reused while the file is unchanged.

    Several metrics on one snapshot load it once.
    """
    from msg_stylegan.inference import load_network

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserError(f"snapshot '{path}' does not exist")
    key = _file_id(path)
    if key not in _network_cache:
        _network_cache.clear()
        _network_cache[key] = load_network(path, which="Gs")
    return _network_cache[key]


def get_extractor(inception=None, batch_size=None, resize=None):
    """A FeatureExtractor, loaded once per weights file, batch and resize.

    `inception` is a weights path (searched as `metrics.inception` does:
    the path, $MSG_STYLEGAN_INCEPTION, the cache, a download) or an
    extractor, returned as is (its resize mode must be `resize`, if
    given). `batch_size=None` reuses any extractor already loaded from the
    same file in the same mode (else 50 images per pass); `resize=None` is
    the default mode, `tf1`.
    """
    from metrics import inception as inception_lib

    if inception is not None and not isinstance(inception, (str, os.PathLike)):
        if resize is not None and inception.resize != resize:
            raise UserError(
                f"the feature extractor resizes in {inception.resize} mode, "
                f"not {resize}"
            )
        return inception
    resize = inception_lib.check_resize(resize or inception_lib.DEFAULT_RESIZE)
    file_id = _file_id(inception_lib.find_weights(inception))
    if batch_size is None:
        for (fid, _, mode), extractor in _extractor_cache.items():
            if (fid, mode) == (file_id, resize):
                return extractor
        batch_size = 50
    key = (file_id, int(batch_size), resize)
    if key not in _extractor_cache:
        _extractor_cache[key] = inception_lib.feature_extractor(
            file_id[0], batch_size=batch_size, resize=resize
        )
    return _extractor_cache[key]


def resolve_data(data, cfg, path):
    """The dataset to compare against: `data`, else the snapshot's own."""
    from datasets.tfrecords import find_dataset

    source = ""
    if not data:
        data, source = cfg.data, " (from the snapshot's config)"
        if not data:
            raise UserError(
                f"snapshot '{path}' names no dataset; pass --data=DIR"
            )
    try:
        info = find_dataset(data)
    except UserError as e:
        hint = "; pass --data=DIR" if source else ""
        raise UserError(f"{e}{source}{hint}")
    if (info.resolution, info.channels) != (
        cfg.img_resolution,
        cfg.img_channels,
    ):
        raise UserError(
            f"dataset '{info.path}' holds {info.resolution}x{info.resolution}"
            f"x{info.channels} images but the network makes "
            f"{cfg.img_resolution}x{cfg.img_resolution}x{cfg.img_channels}"
        )
    return info.path


def evaluate_snapshot(
    name,
    path,
    data=None,
    mirror=None,
    run_dir=None,
    inception=None,
    num=None,
    batch_size=None,
    progress=True,
    resize=None,
    devices=None,
):
    """Compute metric `name` of a snapshot's Gs, print and log the line.

    Args:
        name: a registered metric, e.g. `fid50k`.
        path: the snapshot .pkl.
        data: the dataset directory (None: the snapshot config's).
        mirror: mirror cycled reals (None: the snapshot config's).
        run_dir: when given, the line is appended to `metric-<name>.txt`.
        inception: weights path, or a FeatureExtractor to reuse.
        num: images per side instead of the metric's count (quick checks;
            results are then not comparable with published ones).
        batch_size: images per Inception pass (None: an already loaded
            extractor's, else 50).
        resize: the resize mode to 299x299, `tf1` (None: the default) or
            `half-pixel`; an extractor passed as `inception` must match.
        devices: Keras device names ('gpu:0', 'gpu:1') that generate and
            extract features, a batch each at a time (None: the default
            device); the value is the same as on one device.

    Returns:
        MetricResult.
    """
    check_metric_names([name])
    G, cfg = get_network(path)
    data = resolve_data(data, cfg, path)
    if mirror is None:
        mirror = cfg.mirror
    extractor = get_extractor(inception, batch_size, resize)
    opts = MetricOptions(
        G=G,
        data=data,
        mirror=bool(mirror),
        extractor=extractor,
        num=num,
        progress=progress,
        devices=list(devices) if devices else None,
    )
    start = time.time()
    out = _METRICS[name](opts)
    result = MetricResult(
        name=name,
        value=float(out["value"]),
        seconds=time.time() - start,
        num_fake=int(out["num_fake"]),
        num_real=int(out["num_real"]),
        network=os.path.splitext(os.path.basename(os.fspath(path)))[0],
        resize=extractor.resize,
    )
    line = result.line()
    print(line, flush=True)
    if run_dir is not None:
        target = os.path.join(run_dir, f"metric-{name}.txt")
        try:
            with open(target, "a") as f:
                f.write(line + "\n")
        except OSError as e:
            raise UserError(f"cannot append to '{target}': {e.strerror}")
    return result
