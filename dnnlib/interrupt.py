"""Stop requests from SIGINT and SIGTERM: a flag that long loops check.

Python turns SIGINT into KeyboardInterrupt, which TensorFlow and JAX can
swallow inside their calls (a run then trains on), and SIGTERM, what cluster
schedulers send before they kill a job, ends the process with no snapshot.
Instead, while `catching()` is active both signals only set a flag; the
training loop checks it between steps and inside long maintenance, writes a
snapshot and exits cleanly.

The signals are read by a watcher thread through `signal.set_wakeup_fd`,
which the C-level handler writes at once, even while the main thread is
inside a long compiled call (an XLA compile, a tf.data wait). A second signal
therefore exits at once, with 128 + signal number, after removing the
temporary files of writes in progress (`atomic_write` registers them), so no
half-written file is left behind.
"""

import contextlib
import os
import signal
import socket
import sys
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequested(Exception):
    """Raised by `check()` to abandon long work (a metric) after a signal."""


_lock = threading.Lock()
_requested = threading.Event()
_signal_name = [None]
_temp_files = set()
_active = []  # non-empty while `catching()` is in force


def requested():
    """The name of the signal that asked to stop ('SIGINT'), or None."""
    return _signal_name[0] if _requested.is_set() else None


def check():
    """Raise StopRequested if a stop was asked for."""
    if _requested.is_set():
        raise StopRequested(_signal_name[0])


def register_temp(path):
    """A file being written that a second signal must remove."""
    with _lock:
        _temp_files.add(path)


def unregister_temp(path):
    with _lock:
        _temp_files.discard(path)


def _say(text):
    # os.write: safe whatever the main thread is doing with sys.stderr.
    with contextlib.suppress(OSError):
        os.write(2, text.encode())


def _on_signal(signum):
    name = signal.Signals(signum).name
    if not _requested.is_set():
        _signal_name[0] = name
        _requested.set()
        _say(
            f"\n{name}: stopping after the current step and writing a "
            "snapshot; send it again to quit at once without one\n"
        )
        return
    with _lock:
        for path in list(_temp_files):
            with contextlib.suppress(OSError):
                os.remove(path)
    _say(f"\n{name} again: quitting now, no snapshot written\n")
    os._exit(128 + signum)


def _watch(sock):
    while True:
        try:
            data = sock.recv(64)
        except OSError:
            return
        if not data:
            return
        for signum in data:
            if signum in SIGNALS:
                _on_signal(signum)


@contextlib.contextmanager
def catching():
    """Turn SIGINT and SIGTERM into a stop request while active.

    Outside the main thread (where signals cannot be caught), or nested
    inside another `catching()` (train.py catches from the moment its run
    directory exists, the loop itself too), this does nothing. The flag
    is cleared on entry and exit, so one process can run several trainings
    (as the tests do).
    """
    if threading.current_thread() is not threading.main_thread() or _active:
        yield  # signals are caught in the main thread, once
        return
    _active.append(True)
    _requested.clear()
    _signal_name[0] = None
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    old_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    # A Python-level handler is still needed: it keeps SIGINT from raising
    # KeyboardInterrupt and SIGTERM from killing the process.
    old = {s: signal.signal(s, lambda *_: None) for s in SIGNALS}
    watcher = threading.Thread(
        target=_watch, args=(reader,), name="stop-watcher", daemon=True
    )
    watcher.start()
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        signal.set_wakeup_fd(old_fd)
        with contextlib.suppress(OSError):
            reader.shutdown(socket.SHUT_RDWR)
        writer.close()
        watcher.join(timeout=5)
        reader.close()
        _requested.clear()
        _active.clear()
        sys.stderr.flush()
