"""Progressive growing in the training loop: fade-ins without recompiling,
exact resume mid-fade, replicas and the JAX backend (SPEC section 10)."""

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from msg_stylegan import inference, snapshot
from tests.helpers import SUBPROCESS_DEADLINE, tiny_config
from training import schedule, training_loop

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.large

# 4x4 -> 16x16 in phases of 4 steps of 8 images: stable 4, fade 8, stable
# 8, fade 16, stable 16 (20 steps, 0.16 kimg).
PHASE_KIMG = 0.032


def _cfg(data, **changes):
    base = dict(
        architecture="stylegan",
        progressive=True,
        lod_initial_resolution=4,
        lod_training_kimg=PHASE_KIMG,
        lod_transition_kimg=PHASE_KIMG,
        style_mixing_prob=0.9,
        lr=0.001,
        batch=8,
        xla=False,
        data=data,
        kimg_per_tick=0.016,
        network_snapshot_ticks=100,
        grid_size=2,
        total_kimg=0.16,
    )
    return tiny_config(16, **{**base, **changes})


def _rows(run_dir):
    with open(os.path.join(run_dir, "stats.jsonl")) as f:
        return [json.loads(line) for line in f]


def _same(a, b):
    for net in ("G", "D", "Gs", "G_opt", "D_opt"):
        assert sorted(a[net]) == sorted(b[net]), net
        for key in a[net]:
            np.testing.assert_array_equal(
                a[net][key], b[net][key], err_msg=f"{net}/{key}"
            )


def test_run_grows_without_recompiling_and_resumes_mid_fade(
    synthetic16, tmp_path
):
    # A tick every 2 steps; the snapshot after tick 7 (step 14, 0.112 kimg)
    # is in the middle of the 16x16 fade-in.
    cfg = _cfg(synthetic16, network_snapshot_ticks=7)
    straight = training_loop.training_loop(cfg, str(tmp_path / "a"))
    rows = _rows(tmp_path / "a")
    lods = [row["Progress/lod"] for row in rows]
    res = [row["Progress/resolution"] for row in rows]
    # Ticks inside both fade-ins, then full resolution.
    assert any(1 < lod < 2 for lod in lods) and any(0 < lod < 1 for lod in lods)
    assert res[0] == 4 and res[-1] == 16 and lods[-1] == 0
    # One trace of the step per resolution, however far a fade-in goes.
    assert {row["Timing/step_traces"] for row in rows} == {1}
    for row in rows:
        for key, value in row.items():
            if isinstance(value, float):
                assert np.isfinite(value), key
    # Sample grids are full size; snapshots carry lod.
    grids = glob.glob(str(tmp_path / "a" / "*" / "fakes*.png"))
    assert grids and all("/16x16/" in path for path in grids)
    final = snapshot.load(straight)
    assert final["lod"] == 0.0 and final["step"] == 20

    # Resume the snapshot from the middle of the 16x16 fade-in, finish.
    assert 0 < schedule.compute_lod(cfg, 0.112) < 1
    first = str(tmp_path / "a" / "network-snapshot-000000.pkl")
    half = snapshot.load(first)
    assert half["step"] == 14
    # Step 12 (96 images) still has lod 1; step 13 is the first at 16x16.
    assert 0 < half["lod"] < 1 and half["segment_start_step"] == 13
    resumed = training_loop.training_loop(
        cfg, str(tmp_path / "c"), resume=first
    )
    _same(final, snapshot.load(resumed))


def test_gs_of_a_mid_fade_snapshot_generates_at_its_lod(synthetic16, tmp_path):
    cfg = _cfg(synthetic16, total_kimg=0.048)  # half-way into fading in 8
    path = training_loop.training_loop(cfg, str(tmp_path / "run"))
    Gs, loaded_cfg = inference.load_network(path)
    assert loaded_cfg.progressive
    lod = float(Gs.lod.numpy())
    assert lod == pytest.approx(schedule.compute_lod(cfg, 0.048))
    z = np.random.RandomState(0).randn(2, cfg.z_dim).astype("float32")
    img = np.asarray(Gs(z, noise_mode="const")[0])
    res, alpha = 8, lod - 1
    static = Gs(z, noise_mode="const", resolution=res, alpha=alpha)[0]
    np.testing.assert_allclose(img, np.asarray(static), atol=1e-5)
    # Blocks above 8x8 do not contribute yet: the image is 8x8 blocks.
    np.testing.assert_allclose(img[:, ::2, ::2], img[:, 1::2, 1::2], atol=1e-5)


def test_two_replicas_grow(synthetic16, tmp_path):
    cfg = _cfg(synthetic16, total_kimg=0.064)
    path = training_loop.training_loop(
        cfg, str(tmp_path / "r"), devices=["/cpu:0", "/cpu:1"]
    )
    rows = _rows(tmp_path / "r")
    assert rows[-1]["Progress/resolution"] == 8
    assert all(np.isfinite(r["Loss/G/loss"]) for r in rows)
    assert snapshot.load(path)["step"] == 8


JAX_SCRIPT = r"""
import json, sys
import keras
assert keras.backend.backend() == "jax"
import config as config_lib
from training import training_loop
cfg = config_lib.Config.from_json(open(sys.argv[1]).read())
path = training_loop.training_loop(cfg, sys.argv[2])
print("JAX-DONE", path)
"""


def test_jax_backend_grows(synthetic16, tmp_path):
    cfg = _cfg(synthetic16, total_kimg=0.08)  # into the 16x16 fade-in
    (tmp_path / "cfg.json").write_text(cfg.to_json())
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=str(ROOT))
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            JAX_SCRIPT,
            str(tmp_path / "cfg.json"),
            str(tmp_path / "run"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_DEADLINE,
    )
    assert proc.returncode == 0 and "JAX-DONE" in proc.stdout, proc.stderr[
        -3000:
    ]
    rows = _rows(tmp_path / "run")
    assert {row["Timing/step_traces"] for row in rows} == {1}
    assert rows[-1]["Progress/resolution"] == 8
    assert all(np.isfinite(r["Loss/D/loss"]) for r in rows)
    # The TF side reads the JAX snapshot and generates at its lod.
    data = snapshot.load(tmp_path / "run" / "network-final.pkl")
    Gs, _ = inference.load_network(tmp_path / "run" / "network-final.pkl")
    assert float(Gs.lod.numpy()) == pytest.approx(data["lod"])
