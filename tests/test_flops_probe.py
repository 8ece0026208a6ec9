"""bench/flops_probe.py: one JSON line per case, bad flags refused."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import flops_probe  # noqa: E402


def test_rows_for_every_case(tmp_path, capsys):
    out = tmp_path / "probe.jsonl"
    argv = ["--n=64", "--conv=1,8,4", "--reps=1", "--blocks=1"]
    assert flops_probe.main(argv + [f"--out={out}"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    cases = {(r["op"], r["dtype"], r["path"]) for r in rows}
    assert cases == {
        (op, dtype, path)
        for op in ("matmul", "conv3x3")
        for dtype in ("float32", "bfloat16")
        for path in ("eager", "xla")
    }
    assert all(r["gflops"] > 0 and r["ms"] > 0 for r in rows)
    assert [json.loads(x) for x in out.read_text().splitlines()] == rows


@pytest.mark.parametrize(
    "flag", ["--conv=1,8", "--dtypes=float64", "--paths=gpu", "--n=x"]
)
def test_bad_flags_exit_2(flag, capsys):
    with pytest.raises(SystemExit) as e:
        flops_probe.main([flag])
    assert e.value.code == 2
    assert "error" in capsys.readouterr().err
