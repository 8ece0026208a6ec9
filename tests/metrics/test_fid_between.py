"""Tests for the two-set FID/KID command (metrics.fid_between)."""

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dnnlib.util import UserError
from metrics import fid_between, inception
from metrics.feature_stats import FeatureStats, compute_stats_for_images
from tests.helpers import SUBPROCESS_DEADLINE, shared_data

ROOT = Path(__file__).resolve().parents[2]


def write_images(folder, seed, n=10, smooth=False):
    """n 32x32 PNGs in a nested folder, one of them grayscale."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        img = rng.integers(0, 256, (32, 32, 3), np.uint8)
        if smooth:  # a different distribution: blocky, brighter images
            img = np.kron(
                img[::8, ::8] // 2 + 128, np.ones((8, 8, 1), np.uint8)
            )
        sub = folder / ("sub" if i % 2 else "")
        sub.mkdir(parents=True, exist_ok=True)
        pil = Image.fromarray(img)
        if i == 3:
            pil = pil.convert("L")
        pil.save(sub / f"{i:03d}.png")
    return folder


def run_main(argv, capsys, mode="half-pixel"):
    assert fid_between.main(argv) == 0
    out = capsys.readouterr().out
    found = re.findall(r"^(fid|kid) (\S+) resize=(\S+)$", out, re.MULTILINE)
    assert found and all(m == mode for _, _, m in found), out
    return {k: float(v) for k, v, _ in found}


@pytest.fixture
def reuse_extractor(extractor, monkeypatch):
    """The session's half-pixel extractor instead of loading another."""

    def feature_extractor(path=None, batch_size=50, resize="tf1"):
        assert resize == extractor.resize, resize
        return extractor

    monkeypatch.setattr(inception, "feature_extractor", feature_extractor)
    return extractor


@pytest.mark.large
def test_folders_and_stats_npz(tmp_path, capsys, extractor, weights_npz):
    a = write_images(tmp_path / "a", seed=0)
    b = write_images(tmp_path / "b", seed=1, smooth=True)
    flags = ["--inception", str(weights_npz), "--batch", "10"]
    flags += ["--fid-resize", "half-pixel"]
    got = run_main([str(a), str(b), "--kid"] + flags, capsys)
    assert got["fid"] > 1.0 and got["kid"] > 0.0

    # The same sets as precomputed statistics (sigma as float32, as shipped
    # statistics files store it) give the same FID without the network.
    paths = []
    for label, folder in (("A", a), ("B", b)):
        stats = compute_stats_for_images(
            fid_between.ImageSet(label, str(folder)).batches(50), extractor
        )
        mu, sigma = stats.mean_cov()
        paths.append(str(tmp_path / f"{label}.npz"))
        np.savez(paths[-1], mu=mu, sigma=sigma.astype(np.float32))
    # Plain files: their mode is stated, else assumed tf1 with a warning.
    stated = ["--stats-resize", "half-pixel"]
    again = run_main(paths + stated, capsys)
    assert again["fid"] == pytest.approx(got["fid"], rel=1e-5, abs=2e-3)
    # A set against itself; 10 images in 2048-d leave a singular covariance
    # whose rounding noise is ~1e-5 of the trace.
    same = run_main([paths[1], paths[1]], capsys, mode="tf1")
    assert same["fid"] == pytest.approx(0.0, abs=1e-3)


@pytest.mark.large
def test_save_stats_records_the_mode(tmp_path, capsys, reuse_extractor):
    a = write_images(tmp_path / "a", seed=0, n=6)
    out = tmp_path / "a.npz"
    argv = [str(a), "--save-stats", str(out), "--fid-resize", "half-pixel"]
    assert fid_between.main(argv) == 0
    assert "resize=half-pixel" in capsys.readouterr().out
    stats = FeatureStats.load(out)
    assert stats.num_items == 6
    assert stats.origin.resize == "half-pixel"
    assert stats.origin.network == reuse_extractor.weights_id
    # Read back against the same images: a recorded mode, no warning.
    got = run_main([str(out), str(a), "--fid-resize", "half-pixel"], capsys)
    assert got["fid"] == pytest.approx(0.0, abs=1e-3)
    assert "warning" not in capsys.readouterr().err
    # The default mode (tf1) on the other side is refused before any work.
    with pytest.raises(UserError) as e:
        fid_between.main([str(out), str(a)])
    msg = str(e.value)
    assert "B (images) was made with --fid-resize=tf1" in msg
    assert "A with --fid-resize=half-pixel" in msg


@pytest.mark.large
def test_mixed_statistics_files_are_refused(tmp_path, capsys):
    plain = tmp_path / "ttur.npz"  # no record: assumed tf1
    np.savez(plain, mu=np.zeros(2048), sigma=np.eye(2048, dtype=np.float32))
    shared = shared_data("flowers5-128", "fid_stats_flowers5_128_all.npz")
    with pytest.raises(UserError, match="A was made with --fid-resize=tf1 "):
        fid_between.main([str(plain), str(shared)])
    assert "assuming --fid-resize=tf1" in capsys.readouterr().err
    # Stating the plain file's mode makes them comparable.
    run_main([str(plain), str(shared), "--stats-resize=half-pixel"], capsys)


def test_zip_with_prefix(tmp_path):
    path = tmp_path / "set.zip"
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as zf:
        for name, size in [
            ("train/x/0.png", 8),
            ("test/b/1.png", 8),
            ("test/a/0.png", 8),
            ("test/a/2.png", 16),
            ("test/notes.txt", 0),
        ]:
            if size:
                img = rng.integers(0, 256, (size, size, 3), np.uint8)
                f = zf.open(name, "w")
                Image.fromarray(img).save(f, format="PNG")
                f.close()
            else:
                zf.writestr(name, "not an image")
    src = fid_between.open_source("A", f"{path}:test/")
    assert src.names == ["test/a/0.png", "test/a/2.png", "test/b/1.png"]
    shapes = [b.shape for b in src.batches(batch_size=50)]
    # A batch ends where the image size changes.
    assert shapes == [(1, 8, 8, 3), (1, 16, 16, 3), (1, 8, 8, 3)]
    assert len(fid_between.open_source("A", str(path)).names) == 4
    with pytest.raises(UserError, match="no images .* under 'val/'"):
        fid_between.open_source("A", f"{path}:val/")


def test_bad_inputs(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="A: no images"):
        fid_between.open_source("A", str(tmp_path / "empty"))
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(UserError, match="neither a folder"):
        fid_between.open_source("B", str(text))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "0.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match="cannot decode '0.png'"):
        list(fid_between.open_source("A", str(bad)).batches(4))
    stats = tmp_path / "s.npz"
    np.savez(stats, mu=np.zeros(4), sigma=np.eye(4))
    with pytest.raises(UserError, match="no 'features' for KID"):
        fid_between.main([str(stats), str(stats), "--kid"])
    with pytest.raises(UserError, match="either B .* or --save-stats"):
        fid_between.main([str(stats)])
    with pytest.raises(UserError, match="--save-stats needs images"):
        fid_between.main([str(stats), "--save-stats", str(tmp_path / "o")])


def test_cli_error_is_one_line(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-m", "metrics.fid_between", str(tmp_path / "x"), "y"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_DEADLINE,
    )
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert (
        len(lines) == 1 and "A: '" in lines[0] and "does not exist" in lines[0]
    )
