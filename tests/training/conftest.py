"""Fixtures for training tests: a small synthetic dataset on disk."""

import pytest

from datasets import dataset_tool


@pytest.fixture(scope="session")
def synthetic16(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "synthetic16"
    dataset_tool.main(
        [
            "create_synthetic",
            str(path),
            "--resolution",
            "16",
            "--num-images",
            "96",
        ]
    )
    return str(path)


@pytest.fixture(scope="session")
def synthetic8(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "synthetic8"
    dataset_tool.main(
        [
            "create_synthetic",
            str(path),
            "--resolution",
            "8",
            "--num-images",
            "16",
        ]
    )
    return str(path)
