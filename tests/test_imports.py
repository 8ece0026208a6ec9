"""How the CLIs start: --help and flag errors load no ML framework, and
TensorFlow's C++ start-up lines stay off stderr unless asked for.

Both are checked on real processes: the import list is Python's own
(`-X importtime` writes every module it imports to stderr), so a module
that pulls in Keras through any path is caught.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The ML frameworks, and matplotlib (compare.py plots only after checking).
HEAVY = {"tensorflow", "keras", "jax", "tensorflow_datasets", "matplotlib"}
DEADLINE = 300  # seconds; a framework-free start takes about one


def run(*argv, env=None):
    """Run a CLI from the repository root; (returncode, stdout, messages,
    the top-level names of the modules it imported)."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *map(str, argv)],
        cwd=ROOT,
        env=dict(env or os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    imported, messages = set(), []
    for line in proc.stderr.splitlines():
        if line.startswith("import time:"):
            # "import time: <self us> | <cumulative us> | <indent><module>"
            imported.add(line.rsplit("|", 1)[1].strip().split(".")[0])
        elif line.strip():
            messages.append(line)
    return proc.returncode, proc.stdout, messages, imported


def missing(name):
    """A path that does not exist on any machine."""
    return os.path.join("/nonexistent-msg-stylegan-test", name)


HELP = [
    ("train.py", "--help"),
    ("generate.py", "--help"),
    ("run_metrics.py", "--help"),
    ("compare.py", "--help"),
    ("convert_tf1.py", "--help"),
    ("-m", "datasets.dataset_tool", "--help"),
    ("-m", "datasets.dataset_tool", "create_from_tfds", "--help"),
]

# (argv, what the one error line says)
FLAG_ERRORS = [
    (
        ("train.py", "--config=msg-stylegan-demo", "--batch=abc"),
        "argument --batch: not a whole number: 'abc'",
    ),
    (("train.py", "--config=nope"), "unknown config 'nope'; valid configs: "),
    (
        ("train.py", "--config=msg-stylegan-demo", "--loss=nope"),
        "argument --loss: invalid choice: 'nope' (choose from 'logistic', ",
    ),
    (
        ("train.py", "--config=msg-stylegan-demo", "--mixed-precision=fp8"),
        "argument --mixed-precision: invalid choice: 'fp8' (choose from "
        "'off', 'bf16', 'fp16')",
    ),
    (
        ("generate.py", f"--network={missing('a.pkl')}", "--seeds=abc"),
        "argument --seeds: bad range 'abc': use numbers and ranges like ",
    ),
    (
        ("run_metrics.py", f"--network={missing('a.pkl')}"),
        f"--network '{missing('a.pkl')}' does not exist",
    ),
    (
        ("run_metrics.py", f"--network={missing('a.pkl')}", "--metric=fid7"),
        "argument --metric: unknown metric 'fid7'; valid metrics: ",
    ),
    (
        ("compare.py", f"--outdir={missing('out')}"),
        "give at least one run directory, e.g. ",
    ),
    (
        ("convert_tf1.py", missing("a.pkl"), missing("a.pkl")),
        "OUT.pkl must differ from IN.pkl",
    ),
    (
        ("-m", "datasets.dataset_tool", "info", missing("data")),
        f"dataset '{missing('data')}' does not exist",
    ),
    (
        ("-m", "datasets.dataset_tool", "create_from_tfds"),
        "the following arguments are required: OUT_DIR, NAME",
    ),
]


def check_light(imported, argv, own="argparse"):
    # The import list was read: it has a module the command itself imports.
    assert own in imported, argv
    assert not imported & HEAVY, (argv, sorted(imported & HEAVY))


@pytest.mark.parametrize("argv", HELP, ids=" ".join)
def test_help_loads_no_framework(argv):
    code, out, messages, imported = run(*argv)
    assert code == 0 and out.startswith("usage: "), messages
    assert messages == []
    check_light(imported, argv)


@pytest.mark.parametrize(
    "argv,error", FLAG_ERRORS, ids=[" ".join(a) for a, _ in FLAG_ERRORS]
)
def test_flag_error_is_one_line_and_loads_no_framework(argv, error):
    code, out, messages, imported = run(*argv)
    assert code == 2 and out == ""
    errors = [ln for ln in messages if "error:" in ln]
    # argparse prints its usage above the error line; nothing else may.
    assert len(errors) == 1 and errors[0] == messages[-1], messages
    assert error in errors[0], errors[0]
    check_light(imported, argv)


def test_dry_run_loads_no_framework():
    """The resolved config is plain data: printing it needs no Keras."""
    argv = ("train.py", "--config=msg-stylegan-demo", "--dry-run")
    code, out, messages, imported = run(*argv)
    assert code == 0 and messages == []
    assert '"name": "msg-stylegan-demo"' in out
    check_light(imported, argv)


# What the CLIs import before they parse: the modules STYLE.md keeps free of
# any ML framework, so a framework import there would slow every --help.
LIGHT_MODULES = [
    "config",
    "dnnlib.util",
    "dnnlib.hardware",
    "dnnlib.interrupt",
    "metrics",
    "metrics.metric_main",
]


@pytest.mark.parametrize("module", LIGHT_MODULES)
def test_module_loads_no_framework(module):
    code, _, messages, imported = run("-c", f"import {module}")
    assert code == 0 and messages == []
    check_light(imported, module, own=module.split(".")[0])


# absl's line before its first message, the I/W/E/F lines of TensorFlow's
# and XLA's C++ logging ("I0000 00:00:...  cpu_feature_guard.cc:...") and
# the notices that continue them.
STARTUP_LINE = re.compile(
    r"absl::InitializeLog|^[IWEF]\d{4} |cpu_feature_guard|oneDNN custom "
    r"operations|To enable the following instructions"
)


@pytest.mark.large
def test_tensorflow_start_up_lines_only_with_verbose():
    """A train.py run that loads TensorFlow and then stops on a missing
    dataset: only its one error line by default, TensorFlow's own lines
    too with --verbose."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("TF_CPP_MIN_LOG_LEVEL", "GLOG_minloglevel")
    }
    argv = ("train.py", "--config=msg-stylegan-demo", f"--data={missing('d')}")
    error = f"train.py: error: dataset '{missing('d')}' does not exist"
    code, _, messages, imported = run(*argv, "--verbose", env=env)
    assert code == 2 and messages[-1] == error, messages
    assert "tensorflow" in imported  # the path does load TensorFlow
    if not any(STARTUP_LINE.search(ln) for ln in messages):
        pytest.skip("TensorFlow prints no start-up lines on this machine")
    code, _, messages, imported = run(*argv, env=env)
    assert "tensorflow" in imported
    assert code == 2 and messages == [error]
    # A lookup before the import (run_metrics checks that the backend is
    # installed) must not use up the quiet import.
    code, out, messages, imported = run(
        "-c",
        "from dnnlib import util; util.quiet_framework_logs(); "
        "import importlib.util; importlib.util.find_spec('tensorflow'); "
        "import tensorflow; print('loaded')",
        env=env,
    )
    assert "tensorflow" in imported
    assert (code, out, messages) == (0, "loaded\n", [])
