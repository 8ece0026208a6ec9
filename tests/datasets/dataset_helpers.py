"""Helpers shared by the datasets tests: shared data paths, image writers."""

import os
import pickle
from pathlib import Path

import numpy as np

from tests.helpers import SHARED_DATA, shared_data

ROOT = Path(__file__).resolve().parents[2]
CIFAR_ZIP = SHARED_DATA / "cifar10-jpeg" / "cifar10_jpeg.zip"
FLOWERS_ZIP = SHARED_DATA / "flowers5-128" / "flowers5_128.zip"


def require(path):
    """The shared data file, skipping the test when it is absent."""
    return shared_data(path.relative_to(SHARED_DATA))


def random_images(n, size, channels=3, seed=0):
    """n random uint8 images [n, size, size, channels]."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, size, size, channels), dtype=np.uint8)


def save_png(arr, path):
    """Write a uint8 HWC/HW array as PNG, creating folders."""
    from PIL import Image

    os.makedirs(os.path.dirname(path), exist_ok=True)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    Image.fromarray(arr).save(path)


def leftovers(folder):
    """Entries of `folder` that look like temporary dataset output."""
    return sorted(e for e in os.listdir(folder) if ".tmp-" in e or ".old-" in e)


def write_dataset(path, images, labels=None):
    """Write uint8 HWC images (and float labels) as a dataset at `path`."""
    from datasets import tfrecords

    with tfrecords.DatasetWriter(path) as writer:
        for img in images:
            writer.add_image(img)
        if labels is not None:
            writer.set_labels(labels)
    return str(path)


def cifar_batch(n, seed, protocol=pickle.HIGHEST_PROTOCOL):
    """A CIFAR-10 python batch: dict with b'data' [n, 3072], b'labels'."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = rng.integers(0, 10, n).tolist()
    blob = pickle.dumps(
        {b"batch_label": b"x", b"data": data, b"labels": labels},
        protocol=protocol,
    )
    return blob, data, labels


def write_cifar(folder, n=3):
    """All six batches into `folder`; returns {name: (data, labels)}."""
    os.makedirs(folder, exist_ok=True)
    out = {}
    for i, name in enumerate(
        [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    ):
        blob, data, labels = cifar_batch(n, i, protocol=2 if i % 2 else 5)
        with open(os.path.join(folder, name), "wb") as f:
            f.write(blob)
        out[name] = (data, labels)
    return out


def write_image_folder(root, split="train", n_per_class=12, size=16):
    """tfds ImageFolder layout: <root>/<split>/<class>/<image>.png."""
    imgs = {}
    for c, cls in enumerate(["cat", "dog", "owl"]):
        for i, arr in enumerate(random_images(n_per_class, size, seed=c)):
            path = os.path.join(root, split, cls, f"{i:03d}.png")
            save_png(arr, path)
            imgs[path] = (arr, c)
    return imgs
