"""Helpers shared by the datasets tests: shared data paths, image writers."""

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = ROOT.parent / "shared" / "data"
CIFAR_ZIP = SHARED_DATA / "cifar10-jpeg" / "cifar10_jpeg.zip"
FLOWERS_ZIP = SHARED_DATA / "flowers5-128" / "flowers5_128.zip"


def require(path):
    """Skip (with the reason) when a shared data file is absent."""
    if not path.is_file():
        pytest.skip(f"shared data '{path}' is not present")
    return path


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
