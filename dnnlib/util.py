"""Framework-free helpers: errors, logging, atomic files, run dirs, progress."""

import argparse
import contextlib
import os
import re
import sys
import tempfile
import time


class UserError(Exception):
    """A problem with the user's input; CLIs print it as one line and exit 2."""


def run_cli(main, argv=None):
    """Call `main(argv)`; problems become one stderr line and an exit code.

    A UserError exits 2. So does an OSError that reached here (a file that
    cannot be read or written: disk full, permissions), named with its path.
    Ctrl-C outside a training loop (which handles it itself) exits 130.
    A message quoting a library's multi-line text (pickle's errors have
    newlines) is folded onto the one line.
    """
    prog = os.path.basename(sys.argv[0]) or "msg-stylegan"

    def fail(message):
        print(f"{prog}: error: {' '.join(message.split())}", file=sys.stderr)
        sys.exit(2)

    try:
        return main(argv)
    except UserError as e:
        fail(str(e))
    except OSError as e:
        where = f"'{e.filename}' " if e.filename else ""
        fail(f"{where}{e.strerror or e}")
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(130)


# What quiets the C++ logging of TensorFlow, XLA and jaxlib, read once when
# their libraries load. Level 3 keeps only FATAL lines: the ERROR lines at
# start-up (on GPU machines, CUDA plugins registered twice) are noise, and an
# error that stops a run reaches Python as an exception with the message.
QUIET_LOG_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "GLOG_minloglevel": "3"}

# The lines TensorFlow prints while its libraries load: absl's "All log
# messages before absl::InitializeLog()" line, its I/W/E lines
# ("I0000 00:00:... port.cc:153] oneDNN custom operations are on ...") and
# the CPU-feature notice that continues one of them.
STARTUP_LINE = re.compile(
    rb"absl::InitializeLog|^[IWE]\d{4} |cpu_feature_guard|oneDNN custom "
    rb"operations|To enable the following instructions|rebuild TensorFlow"
)


def quiet_framework_logs(verbose=False, environ=None):
    """Keep the frameworks' C++ start-up lines off stderr, unless `verbose`.

    Loading TensorFlow prints absl's "All log messages before
    absl::InitializeLog()" line, CPU-feature and oneDNN notices, and on GPU
    machines E-lines that say nothing about the run and bury a CLI's
    one-line errors. A CLI calls this after parsing its flags and before it
    imports TensorFlow, Keras or JAX. A variable the user has set is kept, so
    TF_CPP_MIN_LOG_LEVEL=0 shows everything too; `verbose` sets nothing.

    The variables do not reach every line: absl writes what is logged
    before its initialisation (the oneDNN notice, on CPUs where oneDNN is
    on by default) whatever the level. So the first import of TensorFlow,
    by whichever module makes it, also runs with stderr filtered
    (`_QuietTensorFlowImport`).
    """
    environ = os.environ if environ is None else environ
    if verbose:
        return
    for key, value in QUIET_LOG_ENV.items():
        environ.setdefault(key, value)
    quiet = (
        environ.get("TF_CPP_MIN_LOG_LEVEL")
        == QUIET_LOG_ENV["TF_CPP_MIN_LOG_LEVEL"]
    )
    if environ is os.environ and quiet and "tensorflow" not in sys.modules:
        if not any(
            isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path
        ):
            sys.meta_path.insert(0, _QuietTensorFlowImport())


class _QuietTensorFlowImport:
    """An import hook: the first `import tensorflow`, wherever it happens
    (Keras, tensorflow_datasets, the data pipeline), runs with file
    descriptor 2 captured; afterwards the captured text goes back to stderr
    without the lines `STARTUP_LINE` matches. Everything else TensorFlow or
    Python wrote meanwhile (a warning, an ImportError's traceback) is kept.
    A lookup that does not import (`importlib.util.find_spec`, which
    `hardware.require_backend` uses) leaves the hook in place; the import
    itself removes it.
    """

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        from importlib.machinery import PathFinder

        spec = PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            with filtered_stderr(STARTUP_LINE.search):
                run(module)

        spec.loader.exec_module = exec_module
        return spec


@contextlib.contextmanager
def filtered_stderr(drop):
    """Capture file descriptor 2 (C++ and Python writes alike) for the
    block, then write the captured lines back to it, less those where
    `drop(line_bytes)` is true."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [ln for ln in captured if not drop(ln)]
            if kept:
                os.write(2, b"".join(kept))


# TensorFlow's flags for `--xla=elementwise`, read once, when TensorFlow first
# optimises a graph: auto-clustering (which that mode turns on) may work on
# the CPU, and only on elementwise ops (TensorFlow's FUSIBLE class), so the
# convolutions and matmuls stay with TensorFlow's kernels. Inert while
# auto-clustering is off, as in the other modes.
ELEMENTWISE_XLA_FLAGS = (
    "--tf_xla_cpu_global_jit",
    "--tf_xla_ops_to_cluster=FUSIBLE",
)


def set_tf_xla_flags(environ=None):
    """Add ELEMENTWISE_XLA_FLAGS to TF_XLA_FLAGS, keeping the user's flags
    (one they set with the same name wins). Call before TensorFlow runs its
    first graph function; the TensorFlow backend does it when it loads."""
    environ = os.environ if environ is None else environ
    flags = environ.get("TF_XLA_FLAGS", "").split()
    names = {f.split("=")[0] for f in flags}
    flags += [f for f in ELEMENTWISE_XLA_FLAGS if f.split("=")[0] not in names]
    environ["TF_XLA_FLAGS"] = " ".join(flags)


def add_verbose_flag(parser):
    """The `--verbose` flag of every CLI that loads a framework."""
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show the C++ start-up and log lines of TensorFlow and XLA "
        "(default: off; a TF_CPP_MIN_LOG_LEVEL you set is always kept)",
    )


def arg_bool(text):
    """argparse type for on/off flags: 1/0, true/false, yes/no, on/off."""
    value = str(text).lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean, got '{text}'")


def arg_positive(kind=int):
    """argparse type for a positive int or float."""

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"not a {'whole ' if kind is int else ''}number: '{text}'"
            )
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive: '{text}'")
        return value

    return parse


def format_time(seconds):
    """Readable duration like NVIDIA's tick lines: `12s`, `3m 04s`, `1h 02m`."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {(s // 60) % 60:02d}m"
    return f"{s // 86400}d {(s // 3600) % 24:02d}h"


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Write to a temporary file beside `path`, renamed over it when complete.

    An interrupted write leaves no file that looks complete, and the file
    that `path` named before stays as it was. A failed write (disk full, a
    file-size limit, permissions) is a UserError naming `path`; a second
    Ctrl-C removes the temporary file (`dnnlib.interrupt`).
    """
    from dnnlib import interrupt

    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(
            prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder
        )
    except OSError as e:
        raise UserError(f"cannot write '{path}': {e.strerror}") from None
    interrupt.register_temp(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; use the default
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        _remove_quietly(tmp)
        raise UserError(
            f"cannot write '{path}': {e.strerror or e}; the previous "
            "file of that name, if any, is unchanged"
        ) from None
    except BaseException:
        _remove_quietly(tmp)
        raise
    finally:
        interrupt.unregister_temp(tmp)


def _remove_quietly(path):
    with contextlib.suppress(OSError):
        os.remove(path)


def next_run_dir(outdir, desc):
    """Create `<outdir>/<NNNNN>-<desc>` with the next free run number."""
    try:
        os.makedirs(outdir, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create outdir '{outdir}': {e.strerror}")
    if not os.access(outdir, os.W_OK):
        raise UserError(f"outdir '{outdir}' is not writable")
    ids = []
    for entry in os.listdir(outdir):
        m = re.match(r"^(\d+)-", entry)
        if m and os.path.isdir(os.path.join(outdir, entry)):
            ids.append(int(m.group(1)))
    run_id = max(ids, default=-1) + 1
    while True:
        path = os.path.join(outdir, f"{run_id:05d}-{desc}")
        try:
            os.makedirs(path)
            return path
        except FileExistsError:
            run_id += 1


MAX_RANGE = 100_000  # more images than one call should write


def parse_range(text, limit=MAX_RANGE):
    """Parse `0-7,12` into [0, 1, ..., 7, 12]; bad text is a UserError.

    More than `limit` values (`--seeds=0-999999999`, hours of work and a
    list that alone takes a minute to build) is refused before building.
    """
    values = []
    for part in str(text).split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise UserError(
                f"bad range '{text}': use numbers and ranges like 0-7,12"
            )
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise UserError(f"bad range '{part}': end is before start")
        if len(values) + hi - lo + 1 > limit:
            raise UserError(
                f"range '{text}' asks for {len(values) + hi - lo + 1:,} or "
                f"more values; at most {limit:,} per call: split it"
            )
        values.extend(range(lo, hi + 1))
    return values


class Logger:
    """Tee stdout and stderr into a log file while active."""

    def __init__(self, path, mode="a"):
        self.file = open(path, mode, buffering=1)
        self.stdout, self.stderr = sys.stdout, sys.stderr
        sys.stdout = _Tee(self.stdout, self.file)
        sys.stderr = _Tee(self.stderr, self.file)

    def close(self):
        if self.file is None:
            return
        sys.stdout, sys.stderr = self.stdout, self.stderr
        self.file.close()
        self.file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _Tee:
    def __init__(self, stream, file):
        self.stream, self.file = stream, file

    def write(self, text):
        self.stream.write(text)
        # Progress bars redraw with '\r'; keep only finished lines in the log.
        if "\r" not in text:
            self.file.write(text)

    def flush(self):
        self.stream.flush()
        self.file.flush()

    def isatty(self):
        return self.stream.isatty()


class Progress:
    """A progress bar with rate and ETA on a TTY, periodic lines otherwise."""

    def __init__(self, total, desc="", unit="img", every=10.0, file=None):
        self.total, self.desc, self.unit = total, desc, unit
        self.every = every
        self.file = file or sys.stderr
        self.done = 0
        self.start = self.last = time.time()
        self.tty = hasattr(self.file, "isatty") and self.file.isatty()

    def update(self, n=1):
        self.done += n
        now = time.time()
        if self.tty or now - self.last >= self.every or self.finished:
            self.last = now
            self._draw(now)

    @property
    def finished(self):
        return self.total is not None and self.done >= self.total

    def _draw(self, now):
        elapsed = max(now - self.start, 1e-9)
        rate = self.done / elapsed
        if self.total:
            frac = min(self.done / self.total, 1.0)
            eta = (self.total - self.done) / rate if rate > 0 else 0.0
            bar = "#" * int(frac * 24)
            text = (
                f"{self.desc} [{bar:<24}] {self.done}/{self.total} "
                f"{rate:.1f} {self.unit}/s ETA {format_time(eta)}"
            )
        else:
            text = f"{self.desc} {self.done} {rate:.1f} {self.unit}/s"
        end = "\r" if self.tty and not self.finished else "\n"
        print(text, end=end, file=self.file, flush=True)

    def close(self):
        if self.tty and not self.finished:
            print(file=self.file)
