"""bench/ab_bench.py and train_bench's turns: two checkouts side by side."""

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import ab_bench  # noqa: E402
import train_bench  # noqa: E402


def test_take_turns_times_one_block_per_go(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(sys, "stdin", io.StringIO("go\ngo\nstop\ngo\n"))
    sec, blocks = train_bench._take_turns(calls.append, 3, 2)
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert rows[0] == {"turn": "ready"}
    assert [r["turn"] for r in rows[1:]] == ["block", "block"]
    assert all(r["sec_per_step"] >= 0 <= r["cpu_per_step"] for r in rows[1:])
    # Steps continue from the warm-up's count; "stop" ends the turns.
    assert calls == [3, 4, 5, 6] and blocks == 2 and sec >= 0


def test_take_turns_refuses_an_empty_stdin(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    with pytest.raises(SystemExit, match="before the first block"):
        train_bench._take_turns(lambda i: None, 0, 1)


@pytest.mark.parametrize(
    "argv",
    [
        ["--turns", "--res=8,16"],
        ["--turns", "--precision=fp32,bf16"],
        ["--turns", "--generation"],
        ["--root=/nonexistent"],
    ],
)
def test_train_bench_bad_turns_and_root_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        train_bench.main(argv)
    assert e.value.code == 2
    assert "error" in capsys.readouterr().err


def test_ab_bench_refuses_a_directory_that_is_not_a_checkout(tmp_path):
    r = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "ab_bench.py")]
        + [f"--a={tmp_path}", f"--b={ROOT}", "--", "--backend=jax"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr.count("\n") == 1 and "not a checkout" in r.stderr


def test_ab_bench_names_a_failing_worker(capsys):
    # A flag train_bench refuses: the worker exits before "ready".
    argv = [f"--a={ROOT}", f"--b={ROOT}", "--rounds=2", "--", "--res=8,16"]
    assert ab_bench.main(argv) == 1
    err = capsys.readouterr().err
    assert "worker a" in err and "one case" in err


@pytest.mark.parametrize("flag", ["--rounds=1", "--pairs=0"])
def test_ab_bench_bad_counts_exit_2(flag, capsys):
    with pytest.raises(SystemExit) as e:
        ab_bench.main([f"--a={ROOT}", f"--b={ROOT}", flag])
    assert e.value.code == 2
    assert flag.split("=")[0] in capsys.readouterr().err


@pytest.mark.large
def test_ab_bench_alternates_two_compiled_workers(tmp_path):
    out = tmp_path / "ab.jsonl"
    r = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "ab_bench.py")]
        + [f"--a={ROOT}", f"--b={ROOT}", "--rounds=3", "--pairs=2"]
        + [f"--out={out}", "--"]
        + ["--backend=jax", "--res=8", "--batch=2", "--channels=tiny"]
        + ["--steps=1", "--warmup=1"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout)
    assert json.loads(out.read_text()) == row
    assert row["a"] == row["b"] and (row["rounds"], row["pairs"]) == (3, 2)
    assert (row["backend"], row["res"], row["batch"]) == ("jax", 8, 2)
    lo, mid, hi = row["b_over_a_speed"]
    assert 0 < lo <= mid <= hi and 0 <= row["b_faster_rounds"] <= 6
    assert len(row["pair_medians"]) == 2 and all(row["pair_medians"])
    assert 0 <= row["b_faster_pairs"] <= 2
    assert row["a_img_per_s"] > 0 and row["b_img_per_s"] > 0
    # Two fresh pairs, one after the other; rounds alternate which side
    # goes first.
    assert r.stderr.count("both compiled") == 2
    rounds = [x for x in r.stderr.splitlines() if " round " in x]
    orders = [x.split(": ")[0].split()[-1] for x in rounds]
    assert orders == ["ab", "ba", "ab"] * 2
