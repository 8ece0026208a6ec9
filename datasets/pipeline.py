"""The tf.data training input: full-resolution reals as uint8 NHWC batches.

Training reads the full-resolution file only and builds the pyramid itself
(SPEC section 2), so this module never touches the lower-resolution files.
Images stay uint8 here; `to_float` maps them to [-1, 1] where training wants.
"""

import os

import numpy as np
import tensorflow as tf

from datasets import tfrecords
from dnnlib.util import UserError

AUTOTUNE = tf.data.AUTOTUNE
_CACHE_LIMIT = 1 << 30  # Keep a full-res file under 1 GiB in memory.


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


def _mirror_batch(imgs, seed, step):
    """Flip each image left-right with probability 1/2, reproducibly."""
    n = tf.shape(imgs)[0]
    coin = tf.random.stateless_uniform([n], seed=tf.stack([seed, step]))
    flip = tf.cast(coin < 0.5, tf.int32)
    # Reverse only the chosen half: a broadcast select over the whole batch
    # costs several times more on CPU.
    index = tf.dynamic_partition(tf.range(n), flip, 2)
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
    shuffle_buffer=None,
    shuffle_mb=1024,
    seed=0,
    repeat=True,
    with_labels=False,
    cache=None,
    skip_batches=0,
):
    """A dataset of full-resolution uint8 [N, H, W, C] batches.

    Args:
        data: a dataset directory or the DatasetInfo of one.
        global_batch: images per step over all replicas; every batch is full
            (drop_remainder) so shapes are static.
        strategy: a tf.distribute.Strategy; the result is then its
            distributed dataset, each replica getting global_batch / replicas.
        mirror: random horizontal flips (x-flip augmentation), seeded.
        shuffle_buffer: records in the shuffle buffer; default from
            `shuffle_mb` (StyleGAN's rule); 0 disables shuffling.
        shuffle_mb: shuffle buffer size in MB when `shuffle_buffer` is None.
        seed: seeds shuffling and mirroring; equal seeds give equal streams.
        repeat: loop forever (reshuffled each epoch); otherwise one epoch,
            each image at most once.
        with_labels: also yield float32 labels [N, label_dim].
        cache: keep the records in memory after the first epoch; default:
            when the full-resolution file is under 1 GiB.
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

    path = info.files[info.resolution]
    ds = tf.data.TFRecordDataset(path, buffer_size=8 << 20)
    if with_labels:
        labels = info.load_labels()[: info.num_images]
        ds = tf.data.Dataset.zip(
            (ds, tf.data.Dataset.from_tensor_slices(labels))
        )
    if cache is None:
        cache = os.path.getsize(path) < _CACHE_LIMIT
    if cache:
        ds = ds.cache()

    if shuffle_buffer is None:
        bytes_per_image = np.prod(info.image_shape)
        shuffle_buffer = max((shuffle_mb << 20) // bytes_per_image, 1)
    shuffle_buffer = min(int(shuffle_buffer), info.num_images)
    if shuffle_buffer > 1:
        ds = ds.shuffle(
            shuffle_buffer, seed=seed, reshuffle_each_iteration=True
        )
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(global_batch, drop_remainder=True)

    shape = (info.channels, info.resolution, info.resolution)
    seed_t = tf.constant(seed, tf.int64)

    def decode(step, batch):
        serialized, lab = batch if with_labels else (batch, None)
        imgs = _decode_batch(serialized, shape)
        if mirror:
            imgs = _mirror_batch(imgs, seed_t, step)
        imgs = tf.ensure_shape(imgs, [global_batch, *info.image_shape])
        return (imgs, lab) if with_labels else imgs

    ds = ds.enumerate()
    if skip_batches:
        ds = ds.skip(int(skip_batches))  # before decoding: cheap
    ds = ds.map(decode, num_parallel_calls=AUTOTUNE)
    ds = ds.prefetch(AUTOTUNE)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA
    )
    ds = ds.with_options(options)
    if strategy is not None:
        return strategy.experimental_distribute_dataset(ds)
    return ds


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
