"""TF1 network pickles read safely: Network states only, nothing run.

The networks that msg-stylegan-tf, NVlabs' StyleGAN and ProGAN published are
pickles of `dnnlib.tflib.network.Network` (ProGAN: `tfutil.Network`), whose
loading executes the module source stored inside. Here a restricted
unpickler rebuilds only each Network's state (name, static_kwargs,
components, variables) as a `TF1Network` and refuses every other global, so
nothing in the file runs. `msg_stylegan.convert_tf1` maps what it returns
onto this project's networks.
"""

import io
import os
import pickle
import pickletools

import numpy as np

from dnnlib.util import UserError
from msg_stylegan.snapshot import NUMPY_GLOBALS, Refused, read_pickle

# Where the TF1 codes define their Network class (module, name).
_NETWORK_CLASSES = {
    ("dnnlib.tflib.network", "Network"): "dnnlib",
    ("tfutil", "Network"): "tfutil",
}
_EASYDICTS = {("dnnlib.util", "EasyDict"), ("dnnlib", "EasyDict")}


class _NetworkState:
    """Stands in for a TF1 Network: keeps the pickled state, runs nothing."""

    code = None  # "dnnlib" or "tfutil", set on the subclasses below

    def __setstate__(self, state):
        self.state = state


class _DnnlibNetwork(_NetworkState):
    code = "dnnlib"


class _TfutilNetwork(_NetworkState):
    code = "tfutil"


class _EasyDict(dict):
    """dnnlib's EasyDict as the plain dict it is."""


class _TF1Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        code = _NETWORK_CLASSES.get((module, name))
        if code is not None:
            return _DnnlibNetwork if code == "dnnlib" else _TfutilNetwork
        if (module, name) in _EASYDICTS:
            return _EasyDict
        if (module, name) in NUMPY_GLOBALS:
            return super().find_class(module, name)
        raise Refused(
            f"refusing to load '{module}.{name}': a TF1 network pickle may "
            "hold only Network states, plain data and NumPy arrays"
        )


class TF1Network:
    """One TF1 Network's state as plain data.

    Attributes:
        name: str, the TF1 network name (`G`, `G_synthesis`, ...).
        kind: "dnnlib" or "tfutil", the code that pickled it.
        build_func_name: str, e.g. `training.networks_stylegan.G_style`.
        static_kwargs: dict of plain values.
        components: dict name -> TF1Network.
        variables: dict name -> np.ndarray (own variables only).
    """

    def __init__(
        self, name, kind, build_func_name, static_kwargs, components, variables
    ):
        self.name = name
        self.kind = kind
        self.build_func_name = build_func_name
        self.static_kwargs = static_kwargs
        self.components = components
        self.variables = variables

    def flat_variables(self):
        """{name: array}: own names bare, components' under their name."""
        out = dict(self.variables)
        for comp in self.components.values():
            for name, value in comp.flat_variables().items():
                out[f"{comp.name}/{name}"] = value
        return out

    def all_static_kwargs(self):
        """The static kwargs of the network and its components merged."""
        kwargs = {}
        for comp in self.components.values():
            kwargs.update(comp.all_static_kwargs())
        kwargs.update(self.static_kwargs)
        return kwargs


def _check_plain(value, where):
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{where}: non-string key {k!r}")
            _check_plain(v, f"{where}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
    elif not isinstance(value, (str, int, float, bool, type(None), np.generic)):
        raise ValueError(f"{where}: {type(value).__name__} is not plain data")


def _network(obj, where):
    """A validated TF1Network from an unpickled `_NetworkState`."""
    if not isinstance(obj, _NetworkState) or not isinstance(
        getattr(obj, "state", None), dict
    ):
        raise ValueError(f"{where} is not a TF1 Network")
    state = obj.state
    name = state.get("name")
    if not isinstance(name, str):
        raise ValueError(f"{where} has no name")
    static_kwargs = dict(state.get("static_kwargs") or {})
    _check_plain(static_kwargs, f"{name}.static_kwargs")
    components = {}
    for key, comp in dict(state.get("components") or {}).items():
        components[str(key)] = _network(comp, f"{name}.components.{key}")
    variables = {}
    for item in state.get("variables") or []:
        if not (
            isinstance(item, (tuple, list))
            and len(item) == 2
            and isinstance(item[0], str)
        ):
            raise ValueError(f"{name}: a variable is not a (name, value) pair")
        value = np.asarray(item[1])
        if value.dtype.hasobject:
            raise ValueError(f"{name}/{item[0]}: object arrays are refused")
        variables[item[0]] = value
    func = state.get("build_func_name")
    return TF1Network(
        name,
        obj.code,
        func if isinstance(func, str) else "",
        static_kwargs,
        components,
        variables,
    )


def is_tf1_pickle(path):
    """True when the file's pickle names a TF1 Network class.

    Reads the opcodes only (pickletools), so nothing is built or run.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
        strings = set()
        for op, arg, _ in pickletools.genops(io.BytesIO(raw)):
            if op.name == "GLOBAL":
                strings.update(str(arg).split(" "))
            elif isinstance(arg, str) and len(arg) < 64:
                strings.add(arg)
    except Exception:  # not a pickle, or unreadable: not ours to judge
        return False
    return "Network" in strings and bool(
        strings & {module for module, _ in _NETWORK_CLASSES}
    )


def read(path):
    """(G, D, Gs) TF1Networks from a TF1 pickle; D and G may be None.

    A file with one Network is taken as Gs alone.
    """
    path = os.fspath(path)
    obj = read_pickle(path, _TF1Unpickler, "TF1 network pickle")
    try:
        if isinstance(obj, _NetworkState):
            return None, None, _network(obj, "the network")
        if isinstance(obj, (tuple, list)) and len(obj) == 3:
            return tuple(_network(o, k) for o, k in zip(obj, ("G", "D", "Gs")))
    except ValueError as e:
        raise UserError(f"TF1 pickle '{path}': {e}")
    raise UserError(
        f"'{path}' holds {type(obj).__name__}, not a TF1 Network or a "
        "(G, D, Gs) tuple of them"
    )
