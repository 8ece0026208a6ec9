"""The one data order both backends read: record indices and flips.

TensorFlow-free on purpose: tf.data (`pipeline.make_dataset`) and the JAX
backend's reader thread (`training/backends/jax.py:BatchStream`) both take
their images from `Stream` and `Records` here, so the order is written once
and a JAX run never imports TensorFlow.
"""

import mmap

import numpy as np

from datasets import tfrecords


class Stream:
    """The one image order: record indices and flips, from the seed alone.

    The stream is the concatenation of epochs, each a permutation of all
    records drawn from `(seed, epoch)` (the identity without shuffling);
    global batch b holds stream positions [b * B, (b + 1) * B), and its
    flips are coins from `(seed, b, 1)`.

    Why the global batch is defined first: a worker then takes its rows
    of every global batch (`rows(b, lo, hi)`), so the workers' slices are
    disjoint, their union is the stream (within an epoch every image is
    read once, by one worker), and a step sees the same images in the same
    rows however the batch is split: one device, two replicas in one
    process and two workers of one replica each train alike. Each batch is
    found in O(1), so a resumed run continues with the batches it would
    have seen.
    """

    def __init__(self, num_images, batch, seed, shuffle=True, mirror=False):
        self.n, self.batch, self.seed = int(num_images), int(batch), seed
        self.shuffle, self.mirror = shuffle, mirror
        self._perm = {}

    def permutation(self, epoch):
        if not self.shuffle:
            return np.arange(self.n)
        perm = self._perm.get(epoch)
        if perm is None:
            # Keep two epochs (a batch may straddle them); replace the
            # dict whole, as tf.data may call from several threads.
            perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
            keep = {e: p for e, p in self._perm.items() if e == epoch - 1}
            self._perm = {**keep, epoch: perm}
        return perm

    def rows(self, b, lo, hi):
        """Record indices [hi - lo] and flips of rows [lo, hi) of batch b."""
        pos = np.arange(b * self.batch + lo, b * self.batch + hi)
        epochs = pos // self.n
        index = np.empty(len(pos), np.int64)
        for e in np.unique(epochs):
            at = epochs == e
            index[at] = self.permutation(int(e))[pos[at] % self.n]
        flip = np.zeros(len(pos), bool)
        if self.mirror:
            coins = np.random.default_rng([self.seed, b, 1]).random(self.batch)
            flip = coins[lo:hi] < 0.5
        return index, flip


class Records:
    """Random access to one TFRecords file's checked payloads (mmap).

    The framing is checked when the file is opened, each payload's checksum
    as it is read, so a corrupt record stops training with its file and
    number whichever backend reads it.
    """

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            self.buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self.offsets = tfrecords.record_offsets(self.buf, path)

    def __len__(self):
        return len(self.offsets)

    def read(self, index):
        """The serialized Examples of records `index`, as a NumPy object
        array (what tf.data's string tensors take)."""
        return np.array(
            [
                tfrecords.checked_payload(
                    self.buf, *self.offsets[i], self.path, int(i)
                )
                for i in index
            ],
            dtype=object,
        )

    def images(self, index):
        """Records `index` decoded as uint8 [N, H, W, C] (NumPy)."""
        return np.stack(
            [tfrecords.decode_record(p, self.path) for p in self.read(index)]
        )
