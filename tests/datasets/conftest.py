"""Fixtures for the datasets tests: shared data and the CLI run in-process."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.datasets.dataset_helpers import CIFAR_ZIP, FLOWERS_ZIP, require  # noqa: E402


@pytest.fixture
def cifar_zip():
    return require(CIFAR_ZIP)


@pytest.fixture
def flowers_zip():
    return require(FLOWERS_ZIP)


@pytest.fixture
def run_tool(capsys):
    """Run the dataset tool in-process: returns (exit code, stdout, stderr)."""
    from datasets import dataset_tool
    from dnnlib.util import run_cli

    def run(*argv):
        capsys.readouterr()
        code = 0
        try:
            run_cli(dataset_tool.main, [str(a) for a in argv])
        except SystemExit as e:
            code = e.code
        out, err = capsys.readouterr()
        return code, out, err

    return run
