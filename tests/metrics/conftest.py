"""Metrics test fixtures: the shared Inception weights and one extractor."""

import io
import zipfile

import numpy as np
import pytest

from tests.helpers import shared_data

INCEPTION_DIR = ("fid-inception-2015-12-05",)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Keep tests away from the user's cache and weights settings."""
    monkeypatch.setenv("MSG_STYLEGAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MSG_STYLEGAN_INCEPTION", raising=False)


@pytest.fixture(scope="session")
def weights_npz():
    return shared_data(*INCEPTION_DIR, "fid_inception_2015_12_05.npz")


@pytest.fixture(scope="session")
def reference():
    """(uint8 images [100, 32, 32, 3], features [100, 2048]) of CIFAR test."""
    ref = np.load(
        shared_data(
            *INCEPTION_DIR, "reference_features_cifar10jpeg_test_first100.npz"
        )
    )
    from PIL import Image

    zip_path = shared_data("cifar10-jpeg", "cifar10_jpeg.zip")
    with zipfile.ZipFile(zip_path) as zf:
        imgs = [
            np.asarray(Image.open(io.BytesIO(zf.read(str(n)))).convert("RGB"))
            for n in ref["names"]
        ]
    return np.stack(imgs), ref["features"]


@pytest.fixture(scope="session")
def extractor(weights_npz):
    """In half-pixel mode, the mode of the reference features."""
    from metrics.inception import feature_extractor

    return feature_extractor(weights_npz, batch_size=50, resize="half-pixel")
