"""Tests for the FID Inception port: features, preprocessing, weight files."""

import collections
import io
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from dnnlib.util import UserError
from metrics import inception
from tests.helpers import SUBPROCESS_DEADLINE

ROOT = Path(__file__).resolve().parents[2]
NUM_REFERENCE = 48  # of the 100 reference images, to keep CPU time short


# --------------------------------------------------------------------------
# The resize modes against TensorFlow's own kernels


def tf_resize(imgs, mode):
    """The reference: TF1's legacy bilinear or TF2's half-pixel one."""
    import tensorflow as tf

    x = tf.cast(imgs, tf.float32)
    if mode == "tf1":
        return tf.compat.v1.image.resize_bilinear(
            x, (299, 299), align_corners=False, half_pixel_centers=False
        ).numpy()
    return tf.image.resize(x, (299, 299), "bilinear").numpy()


def resize_inputs(size):
    """Two uint8 images of `size`: noise, so every tap position matters."""
    rng = np.random.default_rng(size[0] * 7 + size[1])
    return rng.integers(0, 256, (2,) + tuple(size) + (3,), dtype=np.uint8)


SQUARE = [32, 64, 128, 256, 1024]
MODES = ["tf1", "half-pixel"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "size", [(n, n) for n in SQUARE] + [(17, 600), (640, 480), (299, 299)]
)
def test_resize_matches_tf(size, mode):
    imgs = resize_inputs(size)
    x = keras.ops.cast(imgs, "float32")
    got = keras.ops.convert_to_numpy(
        inception.resize_bilinear(x, (299, 299), mode)
    )
    np.testing.assert_allclose(got, tf_resize(imgs, mode), rtol=0, atol=1e-4)


def test_resize_modes_differ_by_the_half_pixel_shift():
    # tf1 samples source dst * in / out, half-pixel 0.5 * (1 - in / out)
    # source pixels earlier: at 32 -> 299 almost half a pixel of a ramp.
    ramp = np.tile(np.arange(32, dtype=np.uint8) * 8, (1, 32, 1))[..., None]
    x = keras.ops.cast(ramp, "float32")
    a = keras.ops.convert_to_numpy(inception.resize_bilinear(x, (299, 299)))
    b = keras.ops.convert_to_numpy(
        inception.resize_bilinear(x, (299, 299), "half-pixel")
    )
    shift = 0.5 * (1 - 32 / 299) * 8  # grey levels, away from the borders
    np.testing.assert_allclose((a - b)[0, 5, 40:260, 0], shift, atol=1e-3)


def test_preprocess_default_is_tf1_and_scales():
    imgs = resize_inputs((32, 32))
    got = keras.ops.convert_to_numpy(inception.preprocess(imgs))
    np.testing.assert_allclose(
        got, (tf_resize(imgs, "tf1") - 128) / 128, atol=1e-6
    )
    assert inception.DEFAULT_RESIZE == "tf1"
    with pytest.raises(UserError, match="valid modes: tf1, half-pixel"):
        inception.preprocess(imgs, "nearest")


JAX_RESIZE_SCRIPT = """
import sys
import numpy as np, keras
assert keras.backend.backend() == "jax"
from metrics import inception
out = sys.argv[1]
for line in sys.argv[2:]:
    h, w, mode = line.split(",")
    rng = np.random.default_rng(int(h) * 7 + int(w))
    imgs = rng.integers(0, 256, (2, int(h), int(w), 3), dtype=np.uint8)
    x = keras.ops.cast(imgs, "float32")
    y = inception.resize_bilinear(x, (299, 299), mode)
    np.save(f"{out}/{h}-{w}-{mode}.npy", keras.ops.convert_to_numpy(y))
print("JAX-OK")
"""


def test_resize_on_jax_backend(tmp_path):
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    env["PYTHONPATH"] = str(ROOT)
    cases = [(n, n, mode) for n in SQUARE for mode in MODES]
    out = subprocess.run(
        [sys.executable, "-c", JAX_RESIZE_SCRIPT, str(tmp_path)]
        + [f"{h},{w},{mode}" for h, w, mode in cases],
        env=env,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_DEADLINE,
    )
    assert out.returncode == 0 and "JAX-OK" in out.stdout, out.stderr[-3000:]
    for h, w, mode in cases:
        got = np.load(tmp_path / f"{h}-{w}-{mode}.npy")
        want = tf_resize(resize_inputs((h, w)), mode)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)


def avg_pool_reference(x):
    """3x3 s1 SAME average over the real (unpadded) cells only."""
    n, h, w, c = x.shape
    out = np.zeros_like(x)
    for i in range(h):
        for j in range(w):
            win = x[:, max(i - 1, 0) : i + 2, max(j - 1, 0) : j + 2]
            out[:, i, j] = win.mean(axis=(1, 2))
    return out


def test_preprocess_tiles_grayscale():
    img = np.arange(64, dtype=np.uint8).reshape(1, 8, 8, 1)
    out = keras.ops.convert_to_numpy(inception.preprocess(img))
    assert out.shape == (1, 299, 299, 3)
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


def test_avg_pool_excludes_padding():
    x = np.random.default_rng(1).normal(size=(2, 5, 7, 3)).astype("float32")
    got = keras.ops.convert_to_numpy(inception.AvgPoolExcludePad()(x))
    np.testing.assert_allclose(got, avg_pool_reference(x), atol=1e-6)


# --------------------------------------------------------------------------
# The port against the reference features


def test_features_match_reference(extractor, reference):
    """In half-pixel mode: the reference features were made that way."""
    assert extractor.resize == "half-pixel"
    imgs, want = reference
    # 48 images: the extractor pads them to its batch of 50 and drops the pad.
    got = extractor(imgs[:NUM_REFERENCE])
    assert got.shape == (NUM_REFERENCE, 2048) and got.dtype == np.float32
    assert np.abs(got - want[:NUM_REFERENCE]).max() < 1e-3
    assert extractor(imgs[:0]).shape == (0, 2048)


def test_extractor_rejects_bad_input(extractor):
    with pytest.raises(UserError, match="uint8"):
        extractor(np.zeros([1, 8, 8, 3], np.float32))
    with pytest.raises(UserError, match="1 or 3"):
        extractor(np.zeros([1, 8, 8, 4], np.uint8))


def test_parameter_count(extractor):
    # 94 conv layers: weights + beta + mean + var = 21,802,784 numbers, as
    # the weights manifest counts them.
    assert extractor.model.count_params() == 21_802_784
    assert len(extractor.model.conv_names) == 94


JAX_SCRIPT = """
import io, sys, zipfile
import numpy as np, keras
from PIL import Image
assert keras.backend.backend() == "jax"
from metrics import inception
weights, ref_path, zip_path = sys.argv[1:4]
ref = np.load(ref_path)
with zipfile.ZipFile(zip_path) as zf:
    imgs = np.stack([np.asarray(Image.open(io.BytesIO(zf.read(str(n))))
                     .convert("RGB")) for n in ref["names"][:2]])
ext = inception.feature_extractor(weights, batch_size=2, resize="half-pixel")
print("MAXDIFF", np.abs(ext(imgs) - ref["features"][:2]).max())
"""


@pytest.mark.large
def test_features_on_jax_backend(weights_npz, reference):
    from tests.helpers import shared_data

    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    env["PYTHONPATH"] = str(ROOT)
    ref = shared_data(
        "fid-inception-2015-12-05",
        "reference_features_cifar10jpeg_test_first100.npz",
    )
    zip_path = shared_data("cifar10-jpeg", "cifar10_jpeg.zip")
    out = subprocess.run(
        [sys.executable, "-c", JAX_SCRIPT, str(weights_npz), str(ref)]
        + [str(zip_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_DEADLINE,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    line = [s for s in out.stdout.splitlines() if s.startswith("MAXDIFF")]
    assert line and float(line[0].split()[1]) < 1e-3, out.stdout


# --------------------------------------------------------------------------
# Torch-free .pth reading, with fixtures written the way torch writes them


class FloatStorage:
    """Pickled by name, then renamed to `torch.FloatStorage` below."""


def _rebuild_tensor_v2(*args):
    raise AssertionError("only pickled, never called")


class _Storage:
    def __init__(self, key, array):
        self.key, self.array = key, array


class _Tensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset = storage, offset
        self.size, self.stride = size, stride

    def __reduce__(self):
        args = (self.storage, self.offset, self.size, self.stride, False)
        return _rebuild_tensor_v2, args + (collections.OrderedDict(),)


def _torch_names(data):
    """Rename this module's stand-ins to the names torch's pickles use."""
    mod = __name__.encode()
    data = data.replace(
        b"c" + mod + b"\n_rebuild_tensor_v2\n",
        b"ctorch._utils\n_rebuild_tensor_v2\n",
    )
    return data.replace(
        b"c" + mod + b"\nFloatStorage\n", b"ctorch\nFloatStorage\n"
    )


def _tensors(state):
    """Each array becomes a tensor on its own storage, as torch saves them."""
    od = collections.OrderedDict()
    storages = []
    for i, (name, arr) in enumerate(state.items()):
        # A transposed array keeps its storage and gets reversed strides.
        base = arr if arr.flags.c_contiguous else arr.T
        s = _Storage(str(i), np.ascontiguousarray(base, "<f4").ravel())
        storages.append(s)
        stride = tuple(int(x) // 4 for x in base.strides)
        if base is not arr:
            stride = stride[::-1]
        od[name] = _Tensor(s, 0, tuple(arr.shape), stride)
    od._metadata = collections.OrderedDict({"": {"version": 1}})
    return od, storages


def _dump(obj, persistent_id):
    buf = io.BytesIO()
    p = pickle.Pickler(buf, protocol=2)
    p.persistent_id = persistent_id
    p.dump(obj)
    return _torch_names(buf.getvalue())


def write_pth_zip(path, state):
    """torch >= 1.6 layout: `<stem>/data.pkl`, `<stem>/data/<key>`, ..."""
    od, storages = _tensors(state)

    def pid(obj):
        if isinstance(obj, _Storage):
            return ("storage", FloatStorage, obj.key, "cpu", obj.array.size)
        return None

    stem = Path(path).stem
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{stem}/data.pkl", _dump(od, pid))
        zf.writestr(f"{stem}/byteorder", "little")
        for s in storages:
            zf.writestr(f"{stem}/data/{s.key}", s.array.tobytes())
        zf.writestr(f"{stem}/version", "3\n")


def write_pth_legacy(path, state):
    """torch < 1.6 layout: magic, version, sys info, object, keys, data."""
    od, storages = _tensors(state)

    def pid(obj):
        if isinstance(obj, _Storage):
            size = obj.array.size
            return ("storage", FloatStorage, obj.key, "cpu", size, None)
        return None

    with open(path, "wb") as f:
        for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
            pickle.dump(header, f, protocol=2)
        f.write(_dump(od, pid))
        pickle.dump(sorted(s.key for s in storages), f, protocol=2)
        for s in sorted(storages, key=lambda s: s.key):
            f.write(np.int64(s.array.size).astype("<i8").tobytes())
            f.write(s.array.tobytes())


def small_state():
    rng = np.random.default_rng(0)
    return {
        "a.conv.weight": rng.normal(size=(4, 3, 3, 3)).astype("float32"),
        "a.bn.bias": rng.normal(size=(4,)).astype("float32"),
        "fc.weight": rng.normal(size=(5, 2)).astype("float32").T,  # strided
    }


@pytest.mark.parametrize("writer", [write_pth_zip, write_pth_legacy])
def test_read_pth(tmp_path, writer):
    state = small_state()
    path = tmp_path / "weights.pth"
    writer(path, state)
    got = inception.read_weights(path)
    assert sorted(got) == sorted(state)
    for name, arr in state.items():
        np.testing.assert_array_equal(got[name], arr)
        assert got[name].shape == arr.shape


def test_pth_with_all_weights_loads_like_npz(tmp_path, weights_npz):
    state = inception.read_npz(weights_npz)
    path = tmp_path / inception.PTH_NAME
    write_pth_zip(path, dict(state, **{"fc.bias": np.zeros([1008], "f4")}))
    got = inception.read_weights(path)
    assert len(got) == len(state) + 1
    for name, arr in state.items():
        np.testing.assert_array_equal(got[name], arr)
    model = inception.build_inception()
    inception.assign_weights(model, got)
    names = model.conv_names
    assert inception.weights_digest(got, names) == inception.weights_digest(
        state, names
    )


class _Evil:
    def __reduce__(self):
        return os.system, ("echo owned",)


@pytest.mark.parametrize("layout", ["zip", "legacy"])
def test_hostile_pickle_is_refused(tmp_path, layout):
    path = tmp_path / "evil.pth"
    data = pickle.dumps({"x": _Evil()}, protocol=2)
    if layout == "zip":
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("evil/data.pkl", data)
    else:
        with open(path, "wb") as f:
            for header in (0x1950A86A20F9469CFC6C, 1001, {}):
                pickle.dump(header, f, protocol=2)
            f.write(data)
    with pytest.raises(
        UserError, match=r"refusing to load '(posix|nt)\.system"
    ):
        inception.read_weights(path)


@pytest.mark.parametrize(
    "data, match",
    [
        # BUILD on the tensor rebuild function: would alter shared state.
        (b"ctorch._utils\n_rebuild_tensor_v2\n}S'x'\nK\x01sb.", "set state"),
        # A tensor whose "storage" is not one.
        (
            b"ctorch._utils\n_rebuild_tensor_v2\n(S'x'\nK\x00)))tR.",
            "without a storage",
        ),
    ],
)
def test_malformed_pickles_are_refused(tmp_path, data, match):
    path = tmp_path / "bad.pth"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("bad/data.pkl", data)
    with pytest.raises(UserError, match=match):
        inception.read_weights(path)


def test_wrong_shape_is_named(tmp_path, weights_npz):
    state = inception.read_npz(weights_npz)
    state["Mixed_6a.branch3x3.bn.bias"] = np.zeros([3], "float32")
    with pytest.raises(
        UserError, match=r"Mixed_6a\.branch3x3.*\(384,\).*\(3,\)"
    ):
        inception.assign_weights(inception.build_inception(), state)


# --------------------------------------------------------------------------
# Finding the weights


def test_missing_weights_message(tmp_path):
    with pytest.raises(UserError) as e:
        inception.find_weights(allow_download=False)
    msg = str(e.value)
    assert inception.ENV_WEIGHTS in msg and "--inception" in msg
    assert str(tmp_path / "cache") in msg and inception.PTH_NAME in msg


def test_weights_search_order(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / inception.NPZ_NAME).write_bytes(b"")
    assert inception.find_weights(allow_download=False) == str(
        cache / inception.NPZ_NAME
    )
    env_file = tmp_path / "env.pth"
    env_file.write_bytes(b"")
    monkeypatch.setenv(inception.ENV_WEIGHTS, str(env_file))
    assert inception.find_weights(allow_download=False) == str(env_file)
    explicit = tmp_path / "explicit.npz"
    explicit.write_bytes(b"")
    assert inception.find_weights(explicit) == str(explicit)
    with pytest.raises(UserError, match="not found"):
        inception.find_weights(tmp_path / "nope.npz")
