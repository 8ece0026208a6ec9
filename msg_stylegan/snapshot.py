"""Snapshot files: plain data that rebuild a whole run, loaded safely.

A snapshot is a pickled dict of builtins and NumPy arrays only (format
version, kimg, config JSON, and {variable path: array} for G, D, Gs, both
optimizers). Loading uses an unpickler that admits nothing else, so a crafted
file cannot run code (SPEC section 7). It sits with the networks, below
metrics and training: evaluating or sampling a snapshot reads it without
importing the training code, and training writes it.
"""

import io
import os
import pickle
import re

import numpy as np

from dnnlib.util import UserError, atomic_write

FORMAT = "msg-stylegan-snapshot"
VERSION = 1

# The globals that rebuilding NumPy arrays and scalars needs: all the plain
# data of a snapshot or a TF1 network pickle references (tf1_pickle.py).
NUMPY_GLOBALS = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }
)
_ALLOWED = NUMPY_GLOBALS | {("builtins", "complex")}


_NAME = re.compile(r"^network-snapshot-(\d+)(?:-(\d+))?\.pkl$")


def snapshot_name(nimg, taken=()):
    """The file name of a network snapshot taken after `nimg` images.

    NVlabs' names count whole kimg (`network-snapshot-000012.pkl`). A stop
    can come in the same kimg as the tick snapshot before it: that name is
    then taken (it is in `taken`), and the stop's snapshot adds the images
    past the whole kimg (`network-snapshot-000012-416.pkl`), so it never
    overwrites the tick snapshot and its metrics.
    """
    kimg, rest = divmod(int(nimg), 1000)
    name = f"network-snapshot-{kimg:06d}.pkl"
    if name in taken:
        name = f"network-snapshot-{kimg:06d}-{rest:03d}.pkl"
    return name


def snapshot_kimg(name):
    """kimg a snapshot name or path was taken at (`...-000012-416` is 12.416),
    None for other names."""
    base = os.path.basename(name)
    m = _NAME.search(base if base.endswith(".pkl") else base + ".pkl")
    if m is None:
        return None
    return int(m.group(1)) + int(m.group(2) or 0) / 1000


def snapshot_order(path):
    """Sort key of snapshot paths: by the images they were taken after
    (a stop's `-416` name comes after its kimg's tick snapshot)."""
    m = _NAME.search(os.path.basename(path))
    if m is None:
        return (-1, -1, path)
    return (int(m.group(1)), int(m.group(2) or -1), path)


class Refused(pickle.UnpicklingError):
    """A restricted unpickler met a global it does not admit."""


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise Refused(
            f"refusing to load '{module}.{name}': snapshots may hold only "
            "plain data and NumPy arrays"
        )


def read_pickle(path, unpickler, what):
    """Unpickle `path` with a restricted `unpickler` class (one whose
    find_class raises `Refused`); a missing, refused, truncated or foreign
    file is one UserError that names `what` the file should be."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserError(f"{what} '{path}' does not exist")
    with open(path, "rb") as f:
        raw = f.read()
    try:
        return unpickler(io.BytesIO(raw)).load()
    except Refused as e:
        raise UserError(f"{what} '{path}' refused: {e}")
    except Exception as e:  # truncated or not a pickle at all
        raise UserError(
            f"'{path}' is corrupt or not a {what} ({type(e).__name__}: {e})"
        )


def _plain(value, where="snapshot"):
    """Check that `value` is plain data before writing it."""
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: non-string key {k!r}")
            _plain(v, f"{where}/{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _plain(v, f"{where}[{i}]")
    elif isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise TypeError(f"{where}: object arrays are not allowed")
    elif not isinstance(value, (str, int, float, bool, type(None), bytes)):
        raise TypeError(f"{where}: {type(value).__name__} is not plain data")


def save(path, data):
    """Write `data` (a dict of plain data) atomically: temp file + rename."""
    data = {"format": FORMAT, "version": VERSION, **data}
    _plain(data)
    with atomic_write(path) as f:
        pickle.dump(data, f, protocol=4)


def load(path):
    """Read a snapshot, refusing anything that is not the project's data."""
    path = os.fspath(path)
    data = read_pickle(path, _SafeUnpickler, "snapshot")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UserError(
            f"'{path}' is not an msg-stylegan snapshot (no format marker)"
        )
    if data.get("version") != VERSION:
        raise UserError(
            f"snapshot '{path}' has format version {data.get('version')}, "
            f"this code reads version {VERSION}"
        )
    for key in ("config", "G", "D", "Gs"):
        if key not in data:
            raise UserError(f"snapshot '{path}' has no '{key}' entry")
    return data


def optimizer_state(opt):
    """{variable path: array} of an optimizer (moments, iteration count).

    Paths are the same on every backend, so the state moves between them.
    """
    return {v.path: np.asarray(v.numpy()) for v in opt.variables}


# fp16's loss-scale optimizer names its own variables `<name>_loss_scale/..`
# (training/precision.py); Adam's paths are the same at every precision.
LOSS_SCALE_SUFFIX = "_loss_scale"


def _is_loss_scale(path):
    return path.split("/")[0].endswith(LOSS_SCALE_SUFFIX)


def set_optimizer_state(opt, state, what):
    """Assign `state` to `opt`'s variables; every path and shape must match.

    Except the fp16 loss scale, so a run can resume at another precision:
    a scale the optimizer lacks is dropped, one the snapshot lacks starts
    at its initial value.
    """
    variables = {v.path: v for v in opt.variables}
    state = {
        k: v
        for k, v in state.items()
        if k in variables or not _is_loss_scale(k)
    }
    variables = {
        k: v
        for k, v in variables.items()
        if k in state or not _is_loss_scale(k)
    }
    if set(variables) != set(state):
        missing = sorted(set(variables) - set(state))[:3]
        extra = sorted(set(state) - set(variables))[:3]
        raise ValueError(
            f"{what}: optimizer state does not match (missing {missing}, "
            f"unexpected {extra})"
        )
    for key, v in variables.items():
        value = np.asarray(state[key])
        if tuple(value.shape) != tuple(v.shape):
            raise ValueError(f"{what}: '{key}' has shape {value.shape}")
        v.assign(value.astype(v.dtype))
