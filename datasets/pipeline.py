"""The tf.data training input: full-resolution reals as uint8 NHWC batches.

Training reads the full-resolution file only and builds the pyramid itself
(SPEC section 2), so this module never touches the lower-resolution files.
Images stay uint8 here; `to_float` maps them to [-1, 1] where training wants.
"""

import numpy as np
import tensorflow as tf

from datasets import tfrecords
from datasets.stream import Records, Stream
from dnnlib.util import UserError

AUTOTUNE = tf.data.AUTOTUNE


def to_float(imgs):
    """uint8 images to float32 in [-1, 1]: x / 127.5 - 1."""
    return tf.cast(imgs, tf.float32) * (1.0 / 127.5) - 1.0


def _decode_batch(serialized, shape):
    """Serialized Examples [N] -> uint8 [N, H, W, C]."""
    c, h, w = shape
    feats = tf.io.parse_example(
        serialized,
        {
            "shape": tf.io.FixedLenFeature([3], tf.int64),
            "data": tf.io.FixedLenFeature([], tf.string),
        },
    )
    data = tf.io.decode_raw(feats["data"], tf.uint8)
    # A 3-D transpose is faster on CPU than the equivalent 4-D one.
    data = tf.reshape(data, [-1, c, h * w])  # [N, C, HW] as stored (CHW)
    data = tf.transpose(data, [0, 2, 1])  # [N, HW, C]
    return tf.reshape(data, [-1, h, w, c])  # [NHWC]


def _mirror_batch(imgs, flip):
    """Flip the images where `flip` (bool [N]) is set, left-right."""
    flip = tf.cast(flip, tf.int32)
    # Reverse only the chosen half: a broadcast select over the whole batch
    # costs several times more on CPU.
    index = tf.dynamic_partition(tf.range(tf.shape(imgs)[0]), flip, 2)
    keep, turn = tf.dynamic_partition(imgs, flip, 2)
    # Reverse W through a 3-D view [NH, W, C]: faster than a 4-D reverse.
    shape = tf.shape(turn)
    turn = tf.reshape(turn, [-1, shape[2], shape[3]])  # [NH, W, C]
    turn = tf.reshape(tf.reverse(turn, axis=[1]), shape)  # [NHWC]
    return tf.dynamic_stitch(index, [keep, turn])


def make_dataset(
    data,
    global_batch,
    *,
    strategy=None,
    mirror=False,
    shuffle=True,
    seed=0,
    repeat=True,
    with_labels=False,
    skip_batches=0,
):
    """A dataset of full-resolution uint8 [N, H, W, C] batches.

    The images follow `datasets.stream.Stream`'s order, the JAX backend's
    too. With a strategy, each worker (input pipeline) reads only its own
    rows of every global batch: the records at those stream positions, by
    random access, and nothing else (`distribute_datasets_from_function`).

    Args:
        data: a dataset directory or the DatasetInfo of one.
        global_batch: images per step over all replicas; every batch is full
            so shapes are static.
        strategy: a tf.distribute.Strategy; the result is then its
            distributed dataset, each replica getting global_batch / replicas
            (replica r: rows [r * n, (r + 1) * n) of the global batch).
        mirror: random horizontal flips (x-flip augmentation), seeded.
        shuffle: a new permutation of the records every epoch; otherwise
            the stored order.
        seed: seeds shuffling and mirroring; equal seeds give equal streams.
        repeat: loop forever; otherwise one epoch (the full batches of it),
            each image at most once.
        with_labels: also yield float32 labels [N, label_dim].
        skip_batches: start after this many batches of the same stream
            (a resumed run continues with the batches it would have seen).

    Returns:
        A tf.data.Dataset (or distributed dataset) of `imgs` or
        `(imgs, labels)`.
    """
    info = tfrecords.find_dataset(data)
    global_batch = int(global_batch)
    replicas = strategy.num_replicas_in_sync if strategy is not None else 1
    if global_batch <= 0 or global_batch % replicas:
        raise UserError(
            f"batch {global_batch} must be a positive multiple of "
            f"the {replicas} replicas"
        )
    if global_batch > info.num_images and not repeat:
        raise UserError(
            f"batch {global_batch} is larger than the "
            f"{info.num_images} images of '{info.path}'"
        )
    if with_labels and not info.label_dim:
        raise UserError(f"dataset '{info.path}' has no labels")
    records = Records(info.files[info.resolution])
    labels = info.load_labels()[: info.num_images] if with_labels else None
    stream = Stream(info.num_images, global_batch, seed, shuffle, mirror)
    stop = None if repeat else info.num_images // global_batch

    def dataset_fn(ctx=None):
        # This worker's rows [lo, hi) of every global batch, cut into its
        # local replicas' batches in replica order.
        workers = ctx.num_input_pipelines if ctx else 1
        worker = ctx.input_pipeline_id if ctx else 0
        local = (ctx.num_replicas_in_sync if ctx else 1) // workers
        rows = global_batch // workers
        lo, hi = worker * rows, (worker + 1) * rows
        n = rows // local
        return _worker_dataset(
            records, stream, labels, info, (lo, hi), n, skip_batches, stop
        )

    if strategy is not None:
        return strategy.distribute_datasets_from_function(dataset_fn)
    return dataset_fn()


def _worker_dataset(records, stream, labels, info, rows, n, start, stop):
    """Rows [lo, hi) of global batches start, start + 1, ... as batches of
    n images (hi - lo = n * local replicas)."""
    lo, hi = rows
    shape = (info.channels, info.resolution, info.resolution)

    def read(b):
        # Python: indices, flips and checked payloads of this worker's rows.
        index, flip = stream.rows(int(b), lo, hi)
        lab = labels[index] if labels is not None else np.zeros(0)
        return records.read(index), flip, lab.astype(np.float32)

    def load(b):
        payloads, flip, lab = tf.numpy_function(
            read, [b], [tf.string, tf.bool, tf.float32], stateful=False
        )
        imgs = _decode_batch(payloads, shape)
        if stream.mirror:
            imgs = _mirror_batch(imgs, flip)
        imgs = tf.ensure_shape(imgs, [hi - lo, *info.image_shape])
        imgs = tf.reshape(imgs, [-1, n, *info.image_shape])  # [L, n, HWC]
        if labels is None:
            return imgs
        return imgs, tf.reshape(lab, [-1, n, labels.shape[1]])

    ds = tf.data.Dataset.range(int(start), 2**62 if stop is None else stop)
    ds = ds.map(load, num_parallel_calls=AUTOTUNE)
    ds = ds.unbatch()  # one batch of n per local replica, in replica order
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.OFF  # sharded by rows above
    )
    return ds.with_options(options).prefetch(AUTOTUNE)


def load_images(data, n, *, res=None, with_labels=False):
    """The first `n` images as uint8 [n, H, W, C] NumPy (cycled if fewer).

    Deterministic, for fixed grids such as `reals.png`.
    """
    info = tfrecords.find_dataset(data)
    res = info.resolution if res is None else int(res)
    imgs = list(tfrecords.iterate_images(info, res=res, max_images=n))
    out = np.stack([imgs[i % len(imgs)] for i in range(n)])
    if not with_labels:
        return out
    labels = info.load_labels()
    if labels is None:
        raise UserError(f"dataset '{info.path}' has no labels")
    return out, labels[np.arange(n) % len(imgs)]
