"""Keras port of the FID Inception network (TF "inception-2015-12-05").

The network of Heusel et al. 2017 (TTUR, arXiv 1706.08500), as used by
NVIDIA's StyleGAN metrics and pytorch-fid: 2048-d pool_3 features. Written with
keras.layers / keras.ops only, so it runs on the TensorFlow and JAX backends.
Weights come from the NumPy archive or from pytorch-fid's `.pth` file, read
without torch by a restricted unpickler.
"""

import collections
import hashlib
import io
import os
import pickle
import sys
import urllib.request
import zipfile

import keras
import numpy as np
from keras import ops

from dnnlib.util import Progress, UserError, atomic_write
from metrics import DEFAULT_RESIZE, RESIZE_MODES

NPZ_NAME = "fid_inception_2015_12_05.npz"
PTH_NAME = "pt_inception-2015-12-05-6726825d.pth"
PTH_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
    + PTH_NAME
)
PTH_SHA256_PREFIX = "6726825d"  # pytorch-fid names its files by hash prefix
ENV_WEIGHTS = "MSG_STYLEGAN_INCEPTION"
ENV_CACHE = "MSG_STYLEGAN_CACHE"
BN_EPSILON = 0.001
IMG_SIZE = 299


def cache_dir():
    """The per-user cache folder: `$MSG_STYLEGAN_CACHE` or ~/.cache/..."""
    path = os.environ.get(ENV_CACHE)
    if path:
        return path
    return os.path.join(os.path.expanduser("~"), ".cache", "msg_stylegan")


# --------------------------------------------------------------------------
# Preprocessing and pools


def check_resize(mode):
    """Return `mode`, or raise a UserError listing the valid modes."""
    if mode not in RESIZE_MODES:
        raise UserError(
            f"unknown FID resize mode {mode!r}; valid modes: "
            f"{', '.join(RESIZE_MODES)}"
        )
    return mode


def resize_taps(in_size, out_size, mode):
    """Bilinear taps along one axis: (lower [out], upper [out], lerp [out]).

    Output pixel i is `x[lower] + (x[upper] - x[lower]) * lerp`. Computed in
    float32 the way TF's ResizeBilinear kernel computes them (scale =
    in / out as a float, floor and ceil of the source coordinate clamped to
    the image), so the result matches TF's to float rounding.
    """
    check_resize(mode)
    scale = np.float32(in_size) / np.float32(out_size)
    i = np.arange(out_size, dtype=np.float32)
    if mode == "tf1":
        src = i * scale
    else:
        src = (i + np.float32(0.5)) * scale - np.float32(0.5)
    floor = np.floor(src)
    lower = np.maximum(floor, 0).astype(np.int32)
    upper = np.minimum(np.ceil(src), in_size - 1).astype(np.int32)
    lerp = (src - floor).astype(np.float32)
    return lower, upper, lerp


def resize_bilinear(x, size, mode=DEFAULT_RESIZE):
    """Bilinear resize of float NHWC `x` to `size` (h, w) without antialias.

    Two gathers and a lerp per axis, columns then rows, in the order of
    operations of TF's kernel. No matrix product: on GPUs a float32 matmul
    may run in TF32, which would move the result by whole grey levels.
    """
    h, w = x.shape[1], x.shape[2]
    if h is None or w is None:
        raise ValueError("resize_bilinear needs a static height and width")
    for axis, (n_in, n_out) in ((2, (w, size[1])), (1, (h, size[0]))):
        if n_in == n_out:
            continue  # both modes sample every pixel exactly
        lower, upper, lerp = resize_taps(n_in, n_out, mode)
        shape = [1, 1, 1, 1]
        shape[axis] = n_out
        lerp = ops.convert_to_tensor(lerp.reshape(shape), dtype=x.dtype)
        a = ops.take(x, lower, axis=axis)
        b = ops.take(x, upper, axis=axis)
        x = a + (b - a) * lerp
    return x


def preprocess(images, resize=DEFAULT_RESIZE):
    """uint8 RGB [N, H, W, C] -> float32 [N, 299, 299, 3] in [-1, 1).

    Bilinear resize to 299x299 in the given mode (`RESIZE_MODES`), then
    `(x - 128) / 128` as the TF graph's own input transform.
    """
    x = ops.cast(images, "float32")
    if x.shape[-1] == 1:
        x = ops.tile(x, (1, 1, 1, 3))  # grayscale: same value in R, G, B
    x = resize_bilinear(x, (IMG_SIZE, IMG_SIZE), resize)
    return (x - 128.0) / 128.0


class Preprocess(keras.layers.Layer):
    """`preprocess()` as a layer, so the model takes uint8 images directly.

    Args:
        resize: the resize mode, one of `RESIZE_MODES`.
    """

    def __init__(self, resize=DEFAULT_RESIZE, **kwargs):
        super().__init__(**kwargs)
        self.resize = check_resize(resize)

    def call(self, images):
        return preprocess(images, self.resize)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], IMG_SIZE, IMG_SIZE, 3)

    def get_config(self):
        return dict(super().get_config(), resize=self.resize)


class AvgPoolExcludePad(keras.layers.Layer):
    """Average pool 3x3, stride 1, SAME, padded cells left out of the count.

    TF's avg_pool does this; Keras' `average_pool(padding="same")` is not
    guaranteed to on every backend, so the sum over the zero-padded window is
    divided by an explicit count of the real cells.
    """

    def call(self, x):
        h, w = x.shape[1], x.shape[2]
        y = ops.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        y = ops.average_pool(y, 3, strides=1, padding="valid") * 9.0
        # Real cells per window: 2 on a border row/column, 3 inside.
        rows = np.full([h], 3.0, np.float32)
        cols = np.full([w], 3.0, np.float32)
        rows[[0, -1]] -= 1.0
        cols[[0, -1]] -= 1.0
        count = (rows[:, None] * cols[None, :])[None, :, :, None]
        return y / ops.convert_to_tensor(count, dtype=y.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape


# --------------------------------------------------------------------------
# Network


class _Builder:
    """Functional-graph helper: conv+BN+relu units named as pytorch-fid's."""

    def __init__(self):
        self.names = []  # pytorch-fid layer names, in graph order

    def conv(self, x, name, filters, kernel, stride=1, padding="valid"):
        """conv (no bias) -> (x - mean) / sqrt(var + 0.001) + beta -> relu."""
        self.names.append(name)
        x = keras.layers.Conv2D(
            filters,
            kernel,
            strides=stride,
            padding=padding,
            use_bias=False,
            name=f"{name}.conv",
        )(x)
        # BatchNormalization without gamma, always in inference mode.
        x = keras.layers.BatchNormalization(
            epsilon=BN_EPSILON, scale=False, name=f"{name}.bn"
        )(x, training=False)
        return keras.layers.ReLU(name=f"{name}.relu")(x)


def _max_pool(x, stride, padding, name):
    return keras.layers.MaxPooling2D(3, stride, padding=padding, name=name)(x)


def _inception_a(b, x, p, pool_features):
    """Mixed_5b/5c/5d (manifest: mixed, mixed_1, mixed_2)."""
    b1 = b.conv(x, f"{p}.branch1x1", 64, 1)
    b5 = b.conv(x, f"{p}.branch5x5_1", 48, 1)
    b5 = b.conv(b5, f"{p}.branch5x5_2", 64, 5, padding="same")
    b3 = b.conv(x, f"{p}.branch3x3dbl_1", 64, 1)
    b3 = b.conv(b3, f"{p}.branch3x3dbl_2", 96, 3, padding="same")
    b3 = b.conv(b3, f"{p}.branch3x3dbl_3", 96, 3, padding="same")
    bp = AvgPoolExcludePad(name=f"{p}.avg_pool")(x)
    bp = b.conv(bp, f"{p}.branch_pool", pool_features, 1)
    return keras.layers.Concatenate(name=p)([b1, b5, b3, bp])


def _inception_b(b, x, p):
    """Mixed_6a (manifest: mixed_3): grid reduction 35 -> 17."""
    b3 = b.conv(x, f"{p}.branch3x3", 384, 3, stride=2)
    bd = b.conv(x, f"{p}.branch3x3dbl_1", 64, 1)
    bd = b.conv(bd, f"{p}.branch3x3dbl_2", 96, 3, padding="same")
    bd = b.conv(bd, f"{p}.branch3x3dbl_3", 96, 3, stride=2)
    bp = _max_pool(x, 2, "valid", f"{p}.max_pool")
    return keras.layers.Concatenate(name=p)([b3, bd, bp])


def _inception_c(b, x, p, c7):
    """Mixed_6b..6e (manifest: mixed_4..mixed_7): factorised 7x7 towers."""
    b1 = b.conv(x, f"{p}.branch1x1", 192, 1)
    b7 = b.conv(x, f"{p}.branch7x7_1", c7, 1)
    b7 = b.conv(b7, f"{p}.branch7x7_2", c7, (1, 7), padding="same")
    b7 = b.conv(b7, f"{p}.branch7x7_3", 192, (7, 1), padding="same")
    bd = b.conv(x, f"{p}.branch7x7dbl_1", c7, 1)
    bd = b.conv(bd, f"{p}.branch7x7dbl_2", c7, (7, 1), padding="same")
    bd = b.conv(bd, f"{p}.branch7x7dbl_3", c7, (1, 7), padding="same")
    bd = b.conv(bd, f"{p}.branch7x7dbl_4", c7, (7, 1), padding="same")
    bd = b.conv(bd, f"{p}.branch7x7dbl_5", 192, (1, 7), padding="same")
    bp = AvgPoolExcludePad(name=f"{p}.avg_pool")(x)
    bp = b.conv(bp, f"{p}.branch_pool", 192, 1)
    return keras.layers.Concatenate(name=p)([b1, b7, bd, bp])


def _inception_d(b, x, p):
    """Mixed_7a (manifest: mixed_8): grid reduction 17 -> 8."""
    b3 = b.conv(x, f"{p}.branch3x3_1", 192, 1)
    b3 = b.conv(b3, f"{p}.branch3x3_2", 320, 3, stride=2)
    b7 = b.conv(x, f"{p}.branch7x7x3_1", 192, 1)
    b7 = b.conv(b7, f"{p}.branch7x7x3_2", 192, (1, 7), padding="same")
    b7 = b.conv(b7, f"{p}.branch7x7x3_3", 192, (7, 1), padding="same")
    b7 = b.conv(b7, f"{p}.branch7x7x3_4", 192, 3, stride=2)
    bp = _max_pool(x, 2, "valid", f"{p}.max_pool")
    return keras.layers.Concatenate(name=p)([b3, b7, bp])


def _inception_e(b, x, p, max_pool):
    """Mixed_7b/7c (manifest: mixed_9, mixed_10).

    In Mixed_7c the pool branch is a MAX pool: the FID-Inception quirk that
    every FID implementation has to keep.
    """
    b1 = b.conv(x, f"{p}.branch1x1", 320, 1)
    a = b.conv(x, f"{p}.branch3x3_1", 384, 1)
    a1 = b.conv(a, f"{p}.branch3x3_2a", 384, (1, 3), padding="same")
    a2 = b.conv(a, f"{p}.branch3x3_2b", 384, (3, 1), padding="same")
    d = b.conv(x, f"{p}.branch3x3dbl_1", 448, 1)
    d = b.conv(d, f"{p}.branch3x3dbl_2", 384, 3, padding="same")
    d1 = b.conv(d, f"{p}.branch3x3dbl_3a", 384, (1, 3), padding="same")
    d2 = b.conv(d, f"{p}.branch3x3dbl_3b", 384, (3, 1), padding="same")
    if max_pool:
        bp = keras.layers.MaxPooling2D(
            3, 1, padding="same", name=f"{p}.max_pool"
        )(x)
    else:
        bp = AvgPoolExcludePad(name=f"{p}.avg_pool")(x)
    bp = b.conv(bp, f"{p}.branch_pool", 192, 1)
    return keras.layers.Concatenate(name=p)([b1, a1, a2, d1, d2, bp])


def build_inception(resize=DEFAULT_RESIZE):
    """The untrained network: uint8 [N, H, W, 3] -> float32 [N, 2048].

    Layers carry pytorch-fid's names (`Mixed_5b.branch1x1.conv`), so weights
    are assigned by name from either weights file. `resize` is the mode of
    the resize to 299x299 (`RESIZE_MODES`), kept as `model.resize`.
    """
    b = _Builder()
    images = keras.Input(shape=(None, None, 3), dtype="uint8", name="images")
    x = Preprocess(resize, name="preprocess")(images)  # [N, 299, 299, 3]
    # Stem.
    x = b.conv(x, "Conv2d_1a_3x3", 32, 3, stride=2)  # [N, 149, 149, 32]
    x = b.conv(x, "Conv2d_2a_3x3", 32, 3)  # [N, 147, 147, 32]
    x = b.conv(x, "Conv2d_2b_3x3", 64, 3, padding="same")
    x = _max_pool(x, 2, "valid", "pool1")  # [N, 73, 73, 64]
    x = b.conv(x, "Conv2d_3b_1x1", 80, 1)
    x = b.conv(x, "Conv2d_4a_3x3", 192, 3)  # [N, 71, 71, 192]
    x = _max_pool(x, 2, "valid", "pool2")  # [N, 35, 35, 192]
    # Inception blocks.
    x = _inception_a(b, x, "Mixed_5b", 32)  # [N, 35, 35, 256]
    x = _inception_a(b, x, "Mixed_5c", 64)  # [N, 35, 35, 288]
    x = _inception_a(b, x, "Mixed_5d", 64)
    x = _inception_b(b, x, "Mixed_6a")  # [N, 17, 17, 768]
    x = _inception_c(b, x, "Mixed_6b", 128)
    x = _inception_c(b, x, "Mixed_6c", 160)
    x = _inception_c(b, x, "Mixed_6d", 160)
    x = _inception_c(b, x, "Mixed_6e", 192)
    x = _inception_d(b, x, "Mixed_7a")  # [N, 8, 8, 1280]
    x = _inception_e(b, x, "Mixed_7b", max_pool=False)  # [N, 8, 8, 2048]
    x = _inception_e(b, x, "Mixed_7c", max_pool=True)
    # Head: global 8x8 average = pool_3.
    x = keras.layers.GlobalAveragePooling2D(name="pool_3")(x)  # [N, 2048]
    model = keras.Model(images, x, name="inception_2015_12_05")
    model.conv_names = b.names
    model.resize = resize
    return model


# --------------------------------------------------------------------------
# Weight files


def read_npz(path):
    """State dict (name -> array) from the NumPy archive."""
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise UserError(f"cannot read Inception weights '{path}': {e}")


_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


def _refuse_build(self, state):
    raise pickle.UnpicklingError("refusing to set state on a torch stand-in")


class _StorageType:
    """Stand-in for `torch.FloatStorage` etc.: only names a dtype."""

    __setstate__ = _refuse_build

    def __init__(self, name):
        self.dtype = np.dtype(_STORAGE_DTYPES[name]).newbyteorder("<")


class _Stub:
    """A fresh callable per pickle reference to a torch function.

    Fresh, and with a refusing __setstate__, so a pickle's BUILD opcode
    cannot change objects shared with the rest of the program.
    """

    __slots__ = ("fn",)
    __setstate__ = _refuse_build

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, *args):
        return self.fn(*args)


def _rebuild_tensor(storage, offset, size, stride, *unused):
    """Stand-in for torch._utils._rebuild_tensor_v2: a strided NumPy view.

    A view, not a copy: the legacy format fills storages after unpickling.
    """
    if not isinstance(storage, np.ndarray):
        raise pickle.UnpicklingError("a tensor without a storage")
    item = storage.dtype.itemsize
    if any(s < 0 for s in stride) or any(n < 0 for n in size):
        raise pickle.UnpicklingError("negative tensor size or stride")
    last = offset + sum((n - 1) * s for n, s in zip(size, stride) if n > 0)
    if size and min(size) > 0 and last >= storage.size:
        raise pickle.UnpicklingError("tensor extends past its storage")
    return np.lib.stride_tricks.as_strided(
        storage[offset:],
        shape=tuple(size),
        strides=tuple(s * item for s in stride),
        writeable=False,
    )


def _rebuild_parameter(data, requires_grad, backward_hooks, *unused):
    return data


class _TorchUnpickler(pickle.Unpickler):
    """Reads a torch state dict as NumPy arrays without importing torch.

    Admits only the torch tensor/storage rebuild names (mapped to harmless
    stand-ins) and OrderedDict; everything else is refused, because a pickle
    can otherwise run any code.
    """

    _FUNCTIONS = {
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    }

    def __init__(self, file, read_storage):
        super().__init__(file)
        self.read_storage = read_storage  # (key, dtype, numel) -> array

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict  # a C type: its attributes are fixed
        if (module, name) in self._FUNCTIONS:
            return _Stub(self._FUNCTIONS[(module, name)])
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(
            f"refusing to load '{module}.{name}' (only torch tensors are "
            "allowed in a weights file)"
        )

    def persistent_load(self, pid):
        if self.read_storage is None:
            raise pickle.UnpicklingError("a storage outside the state dict")
        if (
            not isinstance(pid, tuple)
            or len(pid) < 5
            or pid[0] != "storage"
            or not isinstance(pid[1], _StorageType)
        ):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid[:5]
        return self.read_storage(str(key), storage_type.dtype, int(numel))


_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def _read_pth_zip(path):
    """torch >= 1.6 format: `<dir>/data.pkl` plus `<dir>/data/<key>`."""
    with zipfile.ZipFile(path) as zf:
        pkl = [n for n in zf.namelist() if n.endswith("/data.pkl")]
        if len(pkl) != 1:
            raise pickle.UnpicklingError("no single '*/data.pkl' in the zip")
        root = pkl[0][: -len("data.pkl")]
        cache = {}

        def read_storage(key, dtype, numel):
            if key not in cache:
                raw = zf.read(f"{root}data/{key}")
                if len(raw) < numel * dtype.itemsize:
                    raise pickle.UnpicklingError(f"storage {key} is truncated")
                cache[key] = np.frombuffer(raw, dtype, count=numel)
            return cache[key]

        with zf.open(pkl[0]) as f:
            return _TorchUnpickler(io.BytesIO(f.read()), read_storage).load()


def _read_pth_legacy(path):
    """torch < 1.6 format: pickles, then each storage as int64 numel + bytes.

    Tensors are views of zero-filled storages until the raw data, which
    follows the pickles, is read into them.
    """
    with open(path, "rb") as f:

        def plain_load():
            return _TorchUnpickler(f, None).load()

        if plain_load() != _LEGACY_MAGIC:
            raise pickle.UnpicklingError("not a torch weights file")
        plain_load()  # protocol version
        plain_load()  # sys info
        storages = {}

        def read_storage(key, dtype, numel):
            if key not in storages:
                storages[key] = np.zeros([numel], dtype)
            return storages[key]

        state = _TorchUnpickler(f, read_storage).load()
        for key in plain_load():
            arr = storages.get(str(key))
            if arr is None:
                raise pickle.UnpicklingError(f"unknown storage {key!r}")
            numel = int(np.frombuffer(f.read(8), "<i8")[0])
            raw = f.read(numel * arr.dtype.itemsize)
            if numel != arr.size or len(raw) != arr.nbytes:
                raise pickle.UnpicklingError(f"storage {key} is truncated")
            arr[:] = np.frombuffer(raw, arr.dtype)
    return state


def read_pth(path):
    """State dict (name -> array) from a torch `.pth`, without torch."""
    try:
        if zipfile.is_zipfile(path):
            state = _read_pth_zip(path)
        else:
            state = _read_pth_legacy(path)
    except (
        pickle.UnpicklingError,
        EOFError,
        KeyError,
        ValueError,
        TypeError,
        IndexError,
        AttributeError,
    ) as e:  # a malformed file can fail in any of these ways
        raise UserError(f"cannot load '{path}': {e}")
    except OSError as e:
        raise UserError(f"cannot read '{path}': {e.strerror or e}")
    if not isinstance(state, dict):
        raise UserError(f"'{path}' does not hold a state dict")
    # Copy out of the storages, in native byte order.
    return {
        k: np.array(v, v.dtype.newbyteorder("="))
        if isinstance(v, np.ndarray)
        else v
        for k, v in state.items()
    }


def read_weights(path):
    """State dict from `.npz` or `.pth` (told apart by content, not name)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserError(f"Inception weights '{path}' not found")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            is_torch = any(n.endswith("/data.pkl") for n in zf.namelist())
        if not is_torch:
            return read_npz(path)
    return read_pth(path)


def _download(dest):
    """Fetch pytorch-fid's weights into `dest`, checking the hash prefix."""
    try:
        with urllib.request.urlopen(PTH_URL, timeout=30) as r:
            data = r.read()
    except OSError as e:
        return f"download from {PTH_URL} failed: {e}"
    digest = hashlib.sha256(data).hexdigest()
    if not digest.startswith(PTH_SHA256_PREFIX):
        return f"download from {PTH_URL} has the wrong sha256 {digest[:16]}"
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with atomic_write(dest) as f:
        f.write(data)
    return None


def find_weights(path=None, allow_download=True):
    """Locate the weights: path, $MSG_STYLEGAN_INCEPTION, cache, download."""
    if path:
        if not os.path.isfile(path):
            raise UserError(f"Inception weights '{path}' not found")
        return os.fspath(path)
    env = os.environ.get(ENV_WEIGHTS)
    if env:
        if not os.path.isfile(env):
            raise UserError(f"{ENV_WEIGHTS}='{env}': no such file")
        return env
    folder = cache_dir()
    for name in (NPZ_NAME, PTH_NAME):
        candidate = os.path.join(folder, name)
        if os.path.isfile(candidate):
            return candidate
    why = "downloads are disabled"
    if allow_download:
        dest = os.path.join(folder, PTH_NAME)
        print(f"Downloading FID Inception weights to {dest}", file=sys.stderr)
        why = _download(dest)
        if why is None:
            return dest
    raise UserError(
        f"FID Inception weights not found ({why}). Put {PTH_NAME} (pytorch-fid)"
        f" or {NPZ_NAME} in {folder}, or set {ENV_WEIGHTS}=PATH, or pass "
        "--inception=PATH"
    )


def weights_digest(state, names):
    """Short id of the weight values, the same whichever file held them."""
    h = hashlib.sha256()
    for name in names:
        for part in (
            "conv.weight",
            "bn.bias",
            "bn.running_mean",
            "bn.running_var",
        ):
            h.update(np.ascontiguousarray(state[f"{name}.{part}"], "<f4"))
    return h.hexdigest()[:16]


def assign_weights(model, state):
    """Copy a pytorch-fid state dict into the model, checking every shape."""
    for name in model.conv_names:
        conv = model.get_layer(f"{name}.conv")
        bn = model.get_layer(f"{name}.bn")
        try:
            w = np.transpose(state[f"{name}.conv.weight"], (2, 3, 1, 0))
            beta = state[f"{name}.bn.bias"]
            mean = state[f"{name}.bn.running_mean"]
            var = state[f"{name}.bn.running_var"]
        except KeyError as e:
            raise UserError(f"Inception weights lack the tensor {e}")
        for layer, values in ((conv, [w]), (bn, [beta, mean, var])):
            for var_, val in zip(layer.weights, values):
                if tuple(var_.shape) != tuple(val.shape):
                    raise UserError(
                        f"Inception weights: {var_.path} has shape "
                        f"{tuple(var_.shape)} but the file has "
                        f"{tuple(val.shape)}"
                    )
                var_.assign(np.asarray(val, np.float32))


def load_inception(path=None, allow_download=True, resize=DEFAULT_RESIZE):
    """The FID Inception model with weights: uint8 NHWC -> [N, 2048].

    `model.weights_id` identifies the weight values (statistics files record
    it as their feature network); `model.resize` is the resize mode.
    """
    check_resize(resize)
    file = find_weights(path, allow_download)
    state = read_weights(file)
    model = build_inception(resize)
    assign_weights(model, state)
    model.weights_id = "inception-2015-12-05-" + weights_digest(
        state, model.conv_names
    )
    return model


class FeatureExtractor:
    """Batches uint8 images through the model in fixed-size chunks.

    Batches are padded to `batch_size`, so the compiled function is traced
    once per image size, not once per batch length. `weights_id` (the
    feature network) and `resize` (the resize mode) say how its features
    were made; statistics record both.

    Args:
        model: the model from `load_inception()`.
        batch_size: images per forward pass.
    """

    def __init__(self, model, batch_size=50):
        if keras.backend.backend() == "tensorflow":
            # XLA: about 1.3x faster on CPU than the plain tf.function.
            model.compile(jit_compile=True)
        self.model = model
        self.batch_size = int(batch_size)
        self.weights_id = model.weights_id
        self.resize = model.resize
        self.feature_dim = 2048

    def __call__(self, images, progress=False, desc="features"):
        """uint8 [N, H, W, C] (C = 1 or 3) -> float32 [N, 2048]."""
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[..., None]
        if images.ndim != 4 or images.shape[-1] not in (1, 3):
            raise UserError(
                f"Inception input must be [N, H, W, 1 or 3], got {images.shape}"
            )
        if images.dtype != np.uint8:
            raise UserError(
                f"Inception input must be uint8, not {images.dtype}"
            )
        if images.shape[-1] == 1:
            images = np.repeat(images, 3, axis=-1)
        bar = Progress(len(images), desc) if progress else None
        out = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            n = len(chunk)
            if n < self.batch_size:
                pad = np.zeros(
                    (self.batch_size - n,) + chunk.shape[1:], "uint8"
                )
                chunk = np.concatenate([chunk, pad])
            feats = self.model.predict_on_batch(chunk)
            out.append(np.asarray(feats, np.float32)[:n])
            if bar:
                bar.update(n)
        if bar:
            bar.close()
        if not out:
            return np.zeros([0, self.feature_dim], np.float32)
        return np.concatenate(out)


def feature_extractor(
    path=None, allow_download=True, batch_size=50, resize=DEFAULT_RESIZE
):
    """Load the weights and return a FeatureExtractor (resize: its mode)."""
    model = load_inception(path, allow_download, resize)
    return FeatureExtractor(model, batch_size)
