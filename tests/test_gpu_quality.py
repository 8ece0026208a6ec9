"""bench/gpu_quality.sh: staged carry of its inputs, and its TINY dry run."""

import json
import math
import os
import re
import subprocess
import sys
import tarfile
import zlib

import pytest

from tests.helpers import ROOT, SUBPROCESS_DEADLINE, shared_data

sys.path.insert(0, str(ROOT / "bench"))

import carry_chunks  # noqa: E402
import gpu_quality  # noqa: E402

MIB = 1 << 20


def test_shuffle_round_trip():
    for n in (0, 3, 4, 17, 4096 + 2):
        data = os.urandom(n)
        packed = carry_chunks.shuffle4(data)
        assert len(packed) == n
        assert carry_chunks.unshuffle4(packed) == data
    data = bytes(range(8))
    assert carry_chunks.shuffle4(data) == bytes([0, 4, 1, 5, 2, 6, 3, 7])


def test_plan_chunks_fills_calls_evenly():
    sizes = carry_chunks.plan_chunks(120 * MIB, 62 * MIB, 3 * MIB)
    assert len(sizes) == 2 and sum(sizes) == 120 * MIB
    assert sizes[0] <= 62 * MIB and sizes[1] + 3 * MIB <= 62 * MIB
    assert abs(sizes[0] - (sizes[1] + 3 * MIB)) <= 1  # the same load
    assert carry_chunks.plan_chunks(10, 62 * MIB, 3 * MIB) == [10]
    sizes = carry_chunks.plan_chunks(122 * MIB, 62 * MIB, 3 * MIB)
    assert len(sizes) == 3 and sum(sizes) == 122 * MIB
    with pytest.raises(carry_chunks.Error, match="not even the wheels"):
        carry_chunks.plan_chunks(10, MIB, 2 * MIB)


def _carry(tmp_path, zip_bytes, npz_bytes, sizes):
    """A two-payload split of the given bytes, as `split` writes it."""
    packed = zlib.compress(carry_chunks.shuffle4(npz_bytes))
    sha = carry_chunks.sha256_bytes
    payloads = [
        dict(
            name=carry_chunks.TRAIN_ZIP,
            size=len(zip_bytes),
            sha256=sha(zip_bytes),
            restore="copy",
        ),
        dict(
            name=carry_chunks.PACKED_NPZ,
            size=len(packed),
            sha256=sha(packed),
            restore="unshuffle4-inflate",
            restored_name=carry_chunks.NPZ_NAME,
            restored_size=len(npz_bytes),
            restored_sha256=sha(npz_bytes),
        ),
    ]
    stream = zip_bytes + packed
    sizes = sizes + [len(stream) - sum(sizes)]
    return carry_chunks.write_carry(
        str(tmp_path / "carry"), payloads, stream, sizes, ".whl"
    )


def _stage(tmp_path, *extra):
    return carry_chunks.main(
        ["--root", str(tmp_path), "stage", "--carry", "carry"]
        + ["--stage", "stage", *extra]
    )


def test_stage_restores_across_calls(tmp_path, capsys):
    zip_bytes, npz_bytes = os.urandom(5000), os.urandom(3001)
    _carry(tmp_path, zip_bytes, npz_bytes, [2000, 2500])
    chunk3 = tmp_path / "carry" / "3"
    os.rename(chunk3, tmp_path / "later")
    # Calls 1 and 2 only keep their chunks and name the next call.
    assert _stage(tmp_path) == 0
    out = capsys.readouterr().out
    assert "1 chunk(s) still to come" in out and "call 3" in out
    assert not (tmp_path / "stage" / "inputs").exists()
    # The last call finds chunk 3 and restores both files exactly.
    os.rename(tmp_path / "later", chunk3)
    assert _stage(tmp_path, "--require-all") == 0
    inputs = tmp_path / "stage" / "inputs"
    assert (inputs / carry_chunks.TRAIN_ZIP).read_bytes() == zip_bytes
    assert (inputs / carry_chunks.NPZ_NAME).read_bytes() == npz_bytes
    assert not (tmp_path / "stage" / "chunks").exists()
    assert _stage(tmp_path, "--require-all") == 0  # again: nothing to do
    assert "already restored" in capsys.readouterr().out


def test_stage_names_the_missing_call(tmp_path, capsys):
    _carry(tmp_path, os.urandom(100), os.urandom(100), [80])
    (tmp_path / "carry" / "1" / "chunk-1.bin").unlink()
    assert _stage(tmp_path, "--require-all") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "chunk 1 of 2" in err and "call 1" in err
    assert "STAGE=only bash bench/gpu_quality.sh" in err
    assert 'carry: ["carry/1"]' in err


def test_stage_refuses_a_corrupt_chunk(tmp_path, capsys):
    _carry(tmp_path, os.urandom(100), os.urandom(100), [80])
    chunk = tmp_path / "carry" / "2" / "chunk-2.bin"
    data = bytearray(chunk.read_bytes())
    data[0] ^= 1
    chunk.write_bytes(bytes(data))
    assert _stage(tmp_path) == 2
    assert "does not match its sha256" in capsys.readouterr().err


def test_choose_points():
    common = [20.0, 40.0, 60.0, 80.0, 100.0, 120.0, 140.0]
    assert gpu_quality.choose_points(common, 3) == [140.0, 100.0, 40.0]
    assert gpu_quality.choose_points(common, 1) == [140.0]
    assert gpu_quality.choose_points([1.0, 2.0], 3) == [2.0, 1.0]
    assert gpu_quality.choose_points([], 3) == []


@pytest.mark.large
@pytest.mark.dryrun
def test_tiny_dry_run(tmp_path):
    """The device procedure on this CPU, TINY=1: split the real inputs,
    stage each chunk but the last in its own call, then stage the last and
    run; the outputs that come back are there and sane."""
    shared_data("cifar10-jpeg", "cifar10_jpeg.zip")
    shared_data("fid-inception-2015-12-05", "fid_inception_2015_12_05.npz")
    out = tmp_path / "out"
    env = dict(
        os.environ,
        TINY="1",
        OUT=str(out),
        CARRY_DIR=str(tmp_path / "carry"),
        STAGE_DIR=str(tmp_path / "stage"),
        WHEEL_DIR=str(tmp_path / "whl"),
        PYTHON=sys.executable,
    )
    env.pop("KERAS_BACKEND", None)  # the script sets jax itself
    script = str(ROOT / "bench" / "gpu_quality.sh")

    def call(stage=None):
        e = dict(env, STAGE=stage) if stage else env
        return subprocess.run(
            ["bash", script],
            env=e,
            capture_output=True,
            text=True,
            timeout=SUBPROCESS_DEADLINE,
        )

    split = call("split")
    assert split.returncode == 0, split.stderr
    chunks = int(re.search(r"into (\d+) chunk", split.stdout).group(1))
    assert chunks >= 2  # the inputs do not fit one call
    # As on the device: call k finds only .carry/k (and what earlier calls
    # left in the stage folder).
    held = tmp_path / "held"
    os.rename(tmp_path / "carry", held)
    (tmp_path / "carry").mkdir()
    for k in range(1, chunks):
        os.rename(held / str(k), tmp_path / "carry" / str(k))
        staged = call("only")
        assert staged.returncode == 0, staged.stderr
        assert f"next, within 30 s: call {k + 1}" in staged.stdout
    os.rename(held / str(chunks), tmp_path / "carry" / str(chunks))
    run = call()
    assert run.returncode == 0, run.stderr[-3000:]
    check_outputs(out)


def check_outputs(out):
    """What a TINY run leaves in OUT is complete and sane."""
    rows = [json.loads(line) for line in open(out / "summary.jsonl")]
    # The shell's line per phase (rc, seconds), besides the helpers' rows.
    phases = {r["phase"]: r for r in rows if "rc" in r}
    for name in ("stage", "data", "stats", "fid", "compare"):
        assert phases[name]["rc"] == 0, (name, rows)
    stats = [r for r in rows if r["phase"] == "stats" and "num_real" in r]
    assert stats[0]["num_real"] == 128  # every real (MAX_IMAGES)
    assert stats[0]["resize"] == "tf1"
    phases.update((r["phase"], r) for r in rows if r["phase"] == "checks")
    fids = [r for r in rows if r["phase"] == "fid" and "value" in r]
    runs = {r["run"] for r in fids}
    assert len(runs) == 2  # both configs, at the same kimg points
    for run in runs:
        kimgs = sorted(r["kimg"] for r in fids if r["run"] == run)
        assert kimgs == [1.0, 2.0]
    assert all(math.isfinite(r["value"]) and r["value"] > 0 for r in fids)
    assert all(r["num_real"] == 128 and r["num_fake"] == 32 for r in fids)
    checks = phases["checks"]
    assert checks["fid_finite"] and checks["fid_values"] == 4
    assert {"fid_vs_kimg.png", "samples.png"} <= set(checks["plots"])
    assert checks["comparison_names_configs"]
    # Every Python process of the run was recorded, none imported TF.
    assert {
        "data",
        "stats",
        "train-msg-stylegan-demo",
        "train-stylegan-noprog-demo",
        "fid",
        "compare",
    } <= set(checks["processes_recorded"])
    # Where TensorFlow is installed, the JAX trainings import it through
    # keras.utils.set_random_seed (it seeds TF when TF can be imported) in
    # training/backends/jax.py, and nowhere else; on the device, without
    # TF, that call skips it. Nothing else may import it.
    for label, files in checks["tensorflow_imported_by"].items():
        assert label.startswith("train-"), (label, files)
        assert files == ["training/backends/jax.py"], (label, files)

    # What comes back: few enough files, each small enough.
    files = sorted(os.listdir(out))
    assert len(files) <= 8
    assert all((out / f).stat().st_size < 16 * MIB for f in files)
    md = (out / "comparison.md").read_text()
    assert "msg-stylegan-demo" in md and "stylegan-noprog-demo" in md
    assert (out / "fid_vs_kimg.png").read_bytes()[:4] == b"\x89PNG"
    with tarfile.open(out / "runs.tar.gz") as tar:
        names = tar.getnames()
    for cfg in ("msg-stylegan-demo", "stylegan-noprog-demo"):
        run_files = [n for n in names if cfg in n.split("/")[0]]
        assert any(n.endswith("/stats.jsonl") for n in run_files), names
        assert any(n.endswith("/metric-fid10k_full.txt") for n in run_files)
        assert not any(n.endswith(".pkl") for n in run_files)
    assert "modules/train-msg-stylegan-demo.json" in names
    assert "compare/fid_vs_time.png" in names
