"""SIGINT/SIGTERM during training: a loadable snapshot, then exact resume.

The signals are real (`os.kill` of this process) and are sent at chosen
moments by wrapping the step function or the snapshot writer; the loop sees
only the signal. Waits are for states (the stop flag), never for a time.
"""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from dnnlib import interrupt
from msg_stylegan import snapshot
from tests.helpers import ROOT, SUBPROCESS_DEADLINE, tiny_config
from training import training_loop

pytestmark = pytest.mark.large

STEPS = 8  # batch 8, 0.064 kimg; a tick every 4 steps, a snapshot each tick
# Two replicas (the two logical CPUs of conftest.py): the multi-replica path,
# the one a GPU machine takes.
DEVICES = ["/cpu:0", "/cpu:1"]


def _cfg(data):
    return tiny_config(
        16,
        batch=8,
        xla=False,
        data=data,
        total_kimg=0.064,
        kimg_per_tick=0.032,
        network_snapshot_ticks=1,
        grid_size=2,
    )


def _arrays(data):
    return {k: data[k] for k in ("G", "D", "Gs", "G_opt", "D_opt")}


def _assert_same(a, b):
    for net in a:
        assert sorted(a[net]) == sorted(b[net]), net
        for key in a[net]:
            np.testing.assert_array_equal(
                a[net][key], b[net][key], err_msg=f"{net}/{key}"
            )


@pytest.fixture(scope="module")
def straight(synthetic16, tmp_path_factory):
    """The uninterrupted run's final snapshot."""
    run = tmp_path_factory.mktemp("straight")
    path = training_loop.training_loop(
        _cfg(synthetic16), str(run), devices=DEVICES
    )
    return snapshot.load(path)


class _SignalOnCall:
    """Wrap a step function: send `sig` to this process before call `n`."""

    def __init__(self, fn, sig, n):
        self.fn, self.sig, self.n, self.calls = fn, sig, n, 0

    def __call__(self, *args, **kwargs):
        if self.calls == self.n:
            os.kill(os.getpid(), self.sig)
        self.calls += 1
        return self.fn(*args, **kwargs)


def _signal_at_step(monkeypatch, sig, n):
    from training import backends

    backend = backends.get()
    make = backend.make_train_step

    def make_train_step(*args, **kwargs):
        step, compiled = make(*args, **kwargs)
        return _SignalOnCall(step, sig, n), compiled

    monkeypatch.setattr(backend, "make_train_step", make_train_step)


def _signal_in_snapshot_write(monkeypatch, sig):
    save = snapshot.save

    def save_with_signal(path, data):
        if not interrupt.requested():
            os.kill(os.getpid(), sig)
            interrupt._requested.wait()  # the watcher has seen it
        save(path, data)

    monkeypatch.setattr(snapshot, "save", save_with_signal)


def _stop(cfg, run, resume, sig, moment, monkeypatch, capsys):
    """Train until `sig` arrives at `moment`; the stopped snapshot's data."""
    if moment == "snapshot write":
        _signal_in_snapshot_write(monkeypatch, sig)
    else:  # before the first call (the compile) or the second (mid-tick)
        _signal_at_step(monkeypatch, sig, {"first compile": 0}.get(moment, 1))
    path = training_loop.training_loop(
        cfg, str(run), resume=resume, devices=DEVICES
    )
    monkeypatch.undo()
    out = capsys.readouterr().out
    assert f"Stopped by {signal.Signals(sig).name}" in out, out
    assert f"--resume={path}" in out
    assert not list(run.glob(".*.tmp"))
    assert not interrupt.requested()  # cleared for the next run
    return path, snapshot.load(path)


def test_signals_stop_with_snapshot_and_the_resumed_chain_is_exact(
    synthetic16, straight, tmp_path, monkeypatch, capsys
):
    """Three stops at three moments, each resumed: the straight run's end.

    One chain of resumes instead of three pairs: the same moments are hit
    and every resume must be exact for the end to be.
    """
    cfg = _cfg(synthetic16)

    def stop(name, resume, sig, moment):
        run = tmp_path / name
        return _stop(cfg, run, resume, sig, moment, monkeypatch, capsys)

    # SIGINT while the tick's snapshot is being written: that snapshot is
    # the one kept, and the run stops there.
    path, data = stop("a", None, signal.SIGINT, "snapshot write")
    assert data["step"] == 4
    assert len(list((tmp_path / "a").glob("network-snapshot-*"))) == 1
    # SIGINT during the resumed run's first call (its compile): one step.
    path, data = stop("b", path, signal.SIGINT, "first compile")
    assert data["step"] == 5
    # SIGTERM mid-tick: the step under way finishes, then the stop.
    path, data = stop("c", path, signal.SIGTERM, "mid-tick")
    assert data["step"] == 7
    resumed = training_loop.training_loop(
        cfg, str(tmp_path / "d"), resume=path, devices=DEVICES
    )
    final = snapshot.load(resumed)
    assert final["step"] == straight["step"] == STEPS
    _assert_same(_arrays(straight), _arrays(final))


SECOND_SIGNAL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, time
    sys.path.insert(0, {root!r})
    from dnnlib import interrupt
    from tests.helpers import tiny_config
    from msg_stylegan import snapshot
    from training import training_loop

    dump = snapshot.pickle.dump

    def dump_then_two_signals(obj, f, protocol):
        f.write(b"half a snapshot")
        f.flush()
        os.kill(os.getpid(), signal.SIGINT)
        interrupt._requested.wait()
        print("FIRST-SEEN", flush=True)
        os.kill(os.getpid(), signal.SIGINT)
        while True:  # the watcher thread ends the process
            time.sleep(0.05)

    snapshot.pickle.dump = dump_then_two_signals
    cfg = tiny_config(16, batch=8, xla=False, data={data!r},
                      total_kimg=0.064, kimg_per_tick=0.032,
                      network_snapshot_ticks=1, grid_size=2)
    training_loop.training_loop(cfg, {run!r})
    print("NOT-REACHED")
    """
)


def test_second_signal_quits_at_once_leaving_no_partial_file(
    synthetic16, tmp_path
):
    run = tmp_path / "run"
    script = SECOND_SIGNAL_SCRIPT.format(
        root=str(ROOT), data=synthetic16, run=str(run)
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=dict(os.environ, KERAS_BACKEND="tensorflow"),
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_DEADLINE,
    )
    assert proc.returncode == 128 + signal.SIGINT, proc.stderr[-3000:]
    assert "FIRST-SEEN" in proc.stdout and "NOT-REACHED" not in proc.stdout
    assert "quitting now" in proc.stderr
    assert not list(run.glob("network-*.pkl"))
    assert not list(run.glob(".*.tmp")), list(run.iterdir())


JAX_SIGNAL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import keras, numpy as np
    assert keras.backend.backend() == "jax"
    from tests.helpers import tiny_config
    from msg_stylegan import snapshot
    from training import backends, training_loop

    cfg = tiny_config(16, batch=8, data={data!r}, total_kimg=0.064,
                      kimg_per_tick=0.032, network_snapshot_ticks=1,
                      grid_size=2)
    straight = training_loop.training_loop(cfg, {work!r} + "/s")
    backend = backends.get()
    make = backend.make_train_step

    def make_train_step(*args, **kwargs):
        step, compiled = make(*args, **kwargs)
        calls = [0]

        def wrapped(*a, **k):
            if calls[0] == 2:
                os.kill(os.getpid(), signal.SIGTERM)
            calls[0] += 1
            return step(*a, **k)

        return wrapped, compiled

    backend.make_train_step = make_train_step
    stopped = training_loop.training_loop(cfg, {work!r} + "/a")
    backend.make_train_step = make
    step = snapshot.load(stopped)["step"]
    assert 0 < step < 8, step
    resumed = training_loop.training_loop(cfg, {work!r} + "/b", resume=stopped)
    a, b = snapshot.load(straight), snapshot.load(resumed)
    for net in ("G", "D", "Gs", "G_opt", "D_opt"):
        for key in a[net]:
            np.testing.assert_array_equal(a[net][key], b[net][key], key)
    print("JAX-SIGNAL-OK", step)
    """
)


def test_sigterm_on_jax_stops_with_snapshot_then_resume_is_exact(
    synthetic16, tmp_path
):
    script = JAX_SIGNAL_SCRIPT.format(data=synthetic16, work=str(tmp_path))
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=str(ROOT))
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_DEADLINE,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "JAX-SIGNAL-OK" in proc.stdout and "Stopped by SIGTERM" in (
        proc.stdout
    ), proc.stdout[-3000:]
