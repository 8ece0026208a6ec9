"""Imports flow one way: CLIs -> training -> metrics -> msg_stylegan ->
datasets/config -> dnnlib (STYLE.md's module map).

Read from the source with `ast`, nothing is imported, so the check costs
milliseconds and also sees the imports made inside functions (the lazy ones
that keep `--help` instant), which an import-time check would miss.
"""

import ast
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Each library package's layer: a module may import its own package and the
# packages of lower layers only. datasets and config share a layer but import
# neither each other, so no two library packages can form a cycle.
LAYER = {
    "dnnlib": 0,
    "datasets": 1,
    "config": 1,
    "msg_stylegan": 2,
    "metrics": 3,
    "training": 4,
}
# The CLIs, benchmarks and tests sit on top: they may import any of the above
# and nothing imports them.
TOP = {"train", "generate", "run_metrics", "compare", "convert_tf1"}
FRAMEWORKS = {
    "tensorflow",
    "keras",
    "jax",
    "jaxlib",
    "torch",
    "flax",
    "tf2onnx",
}
# Modules outside msg_stylegan/ that the JAX backend runs: the Inception port
# and the TensorFlow-free data path (the TFRecord reader and the data order).
TF_FREE = {
    "metrics/inception.py",
    "datasets/tfrecords.py",
    "datasets/stream.py",
}


def _project_files(root=ROOT):
    """The .py files at the top and in every top-level folder holding
    Python code (hidden folders such as .venv left out; run and data
    folders, with no .py file at their top, are not walked)."""
    files = sorted(root.glob("*.py"))
    for top in sorted(root.iterdir()):
        if not top.is_dir() or top.name.startswith(".") or top.is_symlink():
            continue
        if not any(top.glob("*.py")):
            continue
        for folder, dirs, names in os.walk(top):
            dirs[:] = sorted(
                d for d in dirs if not d.startswith(".") and d != "__pycache__"
            )
            files += [
                pathlib.Path(folder, n)
                for n in sorted(names)
                if n.endswith(".py")
            ]
    return files


def _package(path, root):
    """The top-level name a file belongs to: its package or module name."""
    parts = path.relative_to(root).parts
    return parts[0] if len(parts) > 1 else path.stem


def _imports(path, root):
    """(line, top-level module name) of every import in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name.split(".")[0]) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: inside its own package
                out.append((node.lineno, _package(path, root)))
            else:
                out.append((node.lineno, node.module.split(".")[0]))
    return out


def violations(path, root=ROOT):
    """What `path` imports against the layer order, one line each."""
    rel = path.relative_to(root).as_posix()
    own = _package(path, root)
    if own not in LAYER:
        # CLIs, bench/ and tests/: anything but one another's modules.
        return [
            f"{rel}:{line} imports the CLI '{name}'"
            for line, name in _imports(path, root)
            if name in TOP and name != own and own in TOP
        ]
    bad = []
    for line, name in _imports(path, root):
        where = f"{rel}:{line}"
        if name in TOP:
            bad.append(f"{where} imports the CLI '{name}'")
        elif name in LAYER and name != own and LAYER[name] >= LAYER[own]:
            bad.append(f"{where}: {own} may not import {name}")
        elif own == "dnnlib" and name in FRAMEWORKS:
            bad.append(f"{where}: dnnlib imports the framework '{name}'")
        elif name == "tensorflow" and (own == "msg_stylegan" or rel in TF_FREE):
            bad.append(f"{where} imports TensorFlow (must run on JAX)")
    return bad


def test_every_project_file_is_checked():
    names = {p.relative_to(ROOT).as_posix() for p in _project_files()}
    for must in (
        "train.py",
        "dnnlib/util.py",
        "msg_stylegan/networks.py",
        "metrics/metric_main.py",
        "training/training_loop.py",
        "tests/test_import_direction.py",
    ):
        assert must in names
    assert not any(n.startswith(".venv/") for n in names)


def test_imports_follow_the_layer_order():
    bad = [v for p in _project_files() for v in violations(p)]
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    "rel, source, expected",
    [
        ("metrics/x.py", "def f():\n    from training import snapshot\n", 1),
        ("msg_stylegan/x.py", "import metrics.fid\n", 1),
        ("dnnlib/x.py", "import config\n", 1),
        ("dnnlib/x.py", "def f():\n    import keras\n", 1),
        ("datasets/x.py", "from config import Config\n", 1),
        ("msg_stylegan/x.py", "import tensorflow as tf\n", 1),
        ("metrics/inception.py", "import tensorflow\n", 1),
        ("datasets/stream.py", "def f():\n    import tensorflow\n", 1),
        ("training/x.py", "import generate\n", 1),
        ("training/x.py", "from metrics import fid\nfrom . import loss\n", 0),
        ("metrics/x.py", "from msg_stylegan import inference\n", 0),
        ("datasets/x.py", "import tensorflow as tf\nimport dnnlib\n", 0),
        ("generate.py", "from training import export\n", 0),
        ("tests/x.py", "import train\n", 0),
    ],
)
def test_the_check_catches_what_it_should(tmp_path, rel, source, expected):
    # The same check on a one-file tree, so it is seen to fail where it must.
    path = tmp_path / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    assert len(violations(path, root=tmp_path)) == expected
