"""Tests for snapshot files: round trip, atomic write, the safe unpickler."""

import os
import pickle

import numpy as np
import pytest

from dnnlib.util import UserError
from msg_stylegan import snapshot


def _data():
    return {
        "kimg": 1.5,
        "config": "{}",
        "G": {"a/kernel": np.ones((2, 3), np.float32)},
        "D": {},
        "Gs": {"a/kernel": np.zeros((2, 3), np.float32)},
        "G_opt": {"adam/iteration": np.array(3, np.int64)},
    }


def test_round_trip_and_no_temp_left(tmp_path):
    path = tmp_path / "net.pkl"
    snapshot.save(path, _data())
    assert os.listdir(tmp_path) == ["net.pkl"]
    data = snapshot.load(path)
    np.testing.assert_array_equal(data["G"]["a/kernel"], np.ones((2, 3)))
    assert data["kimg"] == 1.5 and data["version"] == snapshot.VERSION


def test_refuses_non_plain_data(tmp_path):
    with pytest.raises(TypeError, match="not plain data"):
        snapshot.save(tmp_path / "x.pkl", {"config": object()})
    assert not os.listdir(tmp_path)


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned-by-snapshot",))


def test_hostile_pickle_is_refused_and_nothing_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pkl"
    payload = {"format": snapshot.FORMAT, "version": 1, "G": _Evil()}
    path.write_bytes(pickle.dumps(payload))
    with pytest.raises(UserError, match="refusing to load '(posix|os).system"):
        snapshot.load(path)
    assert not (tmp_path / "pwned-by-snapshot").exists()


def test_corrupt_and_foreign_files(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        snapshot.load(tmp_path / "missing.pkl")
    bad = tmp_path / "bad.pkl"
    noise = np.random.default_rng(0).integers(0, 256, 64, np.uint8).tobytes()
    for junk in (noise, b"P0\n.", b"\x80\x05garbage"):
        bad.write_bytes(junk)
        with pytest.raises(UserError, match="corrupt or not a snapshot"):
            snapshot.load(bad)
    good = tmp_path / "good.pkl"
    snapshot.save(good, _data())
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(good.read_bytes()[:100])
    with pytest.raises(UserError, match="corrupt"):
        snapshot.load(truncated)
    foreign = tmp_path / "foreign.pkl"
    foreign.write_bytes(pickle.dumps({"weights": [1, 2]}))
    with pytest.raises(UserError, match="not an msg-stylegan snapshot"):
        snapshot.load(foreign)


def test_a_stop_in_a_ticks_kimg_keeps_the_tick_snapshot():
    # NVlabs' whole-kimg names; a stop 416 images past kimg 12, where the
    # tick snapshot already took the name, gets its own, sorted after it.
    assert snapshot.snapshot_name(12_300) == "network-snapshot-000012.pkl"
    tick = snapshot.snapshot_name(12_300, taken=())
    stop = snapshot.snapshot_name(12_416, taken={tick})
    assert stop == "network-snapshot-000012-416.pkl"
    assert snapshot.snapshot_kimg(stop) == 12.416
    assert snapshot.snapshot_kimg("network-snapshot-000012") == 12
    assert snapshot.snapshot_kimg("network-final.pkl") is None
    names = [
        stop,
        "network-snapshot-000013.pkl",
        tick,
        "x/network-snapshot-000002.pkl",
    ]
    assert sorted(names, key=snapshot.snapshot_order) == [
        "x/network-snapshot-000002.pkl",
        tick,
        stop,
        "network-snapshot-000013.pkl",
    ]
