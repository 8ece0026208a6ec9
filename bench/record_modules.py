"""Run a script or module and record, at exit, which modules it imported.

The GPU comparison (bench/gpu_quality.sh) runs on a machine without
TensorFlow, so every process on its path must work with Keras' JAX backend
alone. This wrapper makes that checkable where TensorFlow is installed
too: it writes `<dir>/<label>.json` with the imported top-level modules,
whether any `tensorflow` module was imported, and the TensorFlow imports
that were attempted (with the importing file), without changing what the
program does.

python bench/record_modules.py LABEL DIR train.py --config=...
python bench/record_modules.py LABEL DIR -m datasets.dataset_tool info d
"""

import atexit
import json
import os
import runpy
import sys
import traceback


class _Watch:
    """A meta path finder that only notes TensorFlow imports (and where
    they came from) and lets the normal finders do the work.

    `project` is the innermost frame in this repository's own code (not
    an installed package, not this wrapper): the line to change.
    """

    def __init__(self, root):
        self.root = root
        self.attempts = []

    def _own(self, filename):
        if not os.path.isabs(filename):  # <frozen importlib._bootstrap>
            return False
        rel = os.path.relpath(filename, self.root)
        return not (
            rel.startswith("..")
            or "site-packages" in rel
            or rel.startswith(".venv")
            or os.path.basename(filename) == "record_modules.py"
        )

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow" and len(self.attempts) < 20:
            stack = traceback.extract_stack()[:-1]
            where = [
                f"{f.filename}:{f.lineno}"
                for f in stack
                if "importlib" not in f.filename
            ][-3:]
            own = [f for f in stack if self._own(f.filename)]
            project = None
            if own:
                rel = os.path.relpath(own[-1].filename, self.root)
                project = f"{rel}:{own[-1].lineno}"
            self.attempts.append(dict(name=name, where=where, project=project))
        return None


def _write(path, label, argv, watch):
    names = sorted({m.split(".")[0] for m in list(sys.modules)})
    tf = sorted(m for m in list(sys.modules) if m.split(".")[0] == "tensorflow")
    record = dict(
        label=label,
        argv=argv,
        keras_backend=os.environ.get("KERAS_BACKEND"),
        tensorflow_imported=bool(tf),
        tensorflow_modules=tf[:20],
        tensorflow_import_attempts=watch.attempts,
        modules=names,
    )
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(record, f, indent=1)
    os.replace(tmp, path)


def main():
    if len(sys.argv) < 4:
        print(
            "usage: record_modules.py LABEL DIR (SCRIPT | -m MODULE) ARGS...",
            file=sys.stderr,
        )
        return 2
    label, folder = sys.argv[1], sys.argv[2]
    os.makedirs(folder, exist_ok=True)
    rest = sys.argv[3:]
    watch = _Watch(os.getcwd())
    sys.meta_path.insert(0, watch)
    path = os.path.join(folder, f"{label}.json")
    atexit.register(_write, path, label, rest, watch)
    if rest[0] == "-m":
        sys.argv = [rest[1]] + rest[2:]
        sys.path.insert(0, os.getcwd())
        runpy.run_module(rest[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = rest
        sys.path.insert(0, os.path.dirname(os.path.abspath(rest[0])))
        runpy.run_path(os.path.abspath(rest[0]), run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
