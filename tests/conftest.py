"""Test set-up: quiet TensorFlow, two logical CPU devices, shared data path."""

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    # One persistent XLA cache for this test session, shared by the xdist
    # workers and every JAX subprocess (they inherit the variable): the
    # many tiny JAX runs compile the same step programs, and a program
    # compiled once is loaded after that (a repeated tiny run: 30 s -> 6 s).
    # A new directory per session, so each session still compiles each
    # program once; removed when the session ends.
    _cache = tempfile.mkdtemp(prefix="msg-stylegan-tests-jax-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dnnlib.util import set_tf_xla_flags  # noqa: E402

# TensorFlow reads them at its first graph function, which a test may run
# before anything imports the TensorFlow backend (--xla=elementwise).
set_tf_xla_flags()


def pytest_configure(config):
    # Two logical CPU devices so MirroredStrategy tests run in-process; must
    # happen before anything initialises TensorFlow's devices.
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0],
            [tf.config.LogicalDeviceConfiguration()] * 2,
        )
    except RuntimeError:
        pass


def pytest_collection_modifyitems(config, items):
    # Files with multi-step (`large`) tests first: with whole files per
    # process (make test runs xdist with --dist loadfile and without its
    # reorder by test count), the long files start at once and the many
    # short ones fill the gaps at the end, instead of one process being
    # left with the long tail. A stable sort keeps the order within files.
    heavy = {item.path for item in items if item.get_closest_marker("large")}
    items.sort(key=lambda item: item.path not in heavy)
