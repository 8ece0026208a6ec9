"""Tests of the dataset CLI: real-data round trips, every command, bad input."""

import io
import os
import re
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image

from datasets import tfrecords
from tests.datasets.dataset_helpers import (
    ROOT,
    leftovers,
    random_images,
    save_png,
    write_cifar,
    write_image_folder,
)
from tests.helpers import SUBPROCESS_DEADLINE


def subset_zip(src, dst, per_class, prefix):
    """Copy the first `per_class` sorted members of each class folder."""
    chosen = {}
    with zipfile.ZipFile(src) as zin:
        for name in sorted(zin.namelist()):
            parts = name.split("/")
            if not name.startswith(prefix) or not name.endswith(".jpg"):
                continue
            members = chosen.setdefault(parts[-2], [])
            if len(members) < per_class:
                members.append(name)
        names = sorted(n for ms in chosen.values() for n in ms)
        with zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
            originals = {}
            for name in names:
                data = zin.read(name)
                zout.writestr(name, data)
                originals[name] = data
    return originals


def pillow_rgb(data):
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def read_pngs(folder):
    names = sorted(os.listdir(folder))
    return [np.asarray(Image.open(os.path.join(folder, n))) for n in names]


def check_levels(path, top):
    """Every lower level equals the rounded box average of the top."""
    info = tfrecords.find_dataset(path)
    for res in info.resolutions:
        got = np.stack(list(tfrecords.iterate_images(path, res=res)))
        factor = info.resolution // res
        expected = np.stack([tfrecords.box_downsample(a, factor) for a in top])
        np.testing.assert_array_equal(got, expected)


def test_cifar_jpeg_round_trip(cifar_zip, tmp_path, run_tool):
    sub = tmp_path / "cifar_sub.zip"
    originals = subset_zip(cifar_zip, sub, 20, "train/")
    assert len(originals) == 200
    out = tmp_path / "cifar"
    code, stdout, _ = run_tool(
        "create_from_images", out, sub, "--labels", "--no-shuffle"
    )
    assert code == 0 and "wrote 200 images of 32x32x3" in stdout
    assert "10 classes" in stdout
    code, _, _ = run_tool("extract", out, tmp_path / "png")
    assert code == 0
    extracted = read_pngs(tmp_path / "png")
    expected = [pillow_rgb(d) for d in originals.values()]
    np.testing.assert_array_equal(np.stack(extracted), np.stack(expected))
    check_levels(out, expected)
    info = tfrecords.find_dataset(out)
    assert info.resolutions == [4, 8, 16, 32] and info.label_dim == 10
    classes = sorted({n.split("/")[1] for n in originals})
    ids = [classes.index(n.split("/")[1]) for n in originals]
    np.testing.assert_array_equal(info.load_labels(), np.eye(10)[ids])


def test_flowers_round_trip_shuffled(flowers_zip, tmp_path, run_tool):
    sub = tmp_path / "flowers_sub.zip"
    originals = subset_zip(flowers_zip, sub, 8, "flowers/")
    assert len(originals) == 40
    out = tmp_path / "flowers"
    code, stdout, _ = run_tool(
        "create_from_images", out, sub, "--labels", "--seed", "3"
    )
    assert code == 0 and "wrote 40 images of 128x128x3" in stdout
    info = tfrecords.find_dataset(out)
    assert info.resolutions == [4, 8, 16, 32, 64, 128]
    stored = np.stack(list(tfrecords.iterate_images(out)))
    classes = sorted({n.split("/")[1] for n in originals})
    expected = {
        pillow_rgb(d).tobytes(): classes.index(n.split("/")[1])
        for n, d in originals.items()
    }
    # Shuffled: the same images with their labels, in another order.
    labels = info.load_labels().argmax(axis=1)
    assert {a.tobytes(): int(c) for a, c in zip(stored, labels)} == expected
    assert [a.tobytes() for a in stored] != list(expected)
    check_levels(out, stored)
    code, _, _ = run_tool("extract", out, tmp_path / "png", "--max-images", 5)
    np.testing.assert_array_equal(
        np.stack(read_pngs(tmp_path / "png")), stored[:5]
    )


def test_max_images_reads_the_big_zip_in_sorted_order(
    cifar_zip, tmp_path, run_tool
):
    out = tmp_path / "c40"
    code, _, _ = run_tool(
        "create_from_images",
        out,
        cifar_zip,
        "--max-images",
        40,
        "--no-shuffle",
    )
    assert code == 0
    with zipfile.ZipFile(cifar_zip) as zf:
        names = sorted(zf.namelist())[:40]
        expected = [pillow_rgb(zf.read(n)) for n in names]
    assert names[0] == "test/airplane/0000.jpg"
    np.testing.assert_array_equal(
        np.stack(list(tfrecords.iterate_images(out))), np.stack(expected)
    )


def test_create_cifar10_from_batches(tmp_path, run_tool):
    batches = write_cifar(tmp_path / "cifar-10-batches-py", n=4)
    out = tmp_path / "c10"
    code, stdout, _ = run_tool(
        "create_cifar10", out, tmp_path, "--split", "test", "--no-shuffle"
    )
    assert code == 0 and "wrote 4 images of 32x32x3" in stdout
    data, labels = batches["test_batch"]
    expected = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(
        np.stack(list(tfrecords.iterate_images(out))), expected
    )
    info = tfrecords.find_dataset(out)
    np.testing.assert_array_equal(info.load_labels(), np.eye(10)[labels])
    code, stdout, _ = run_tool("create_cifar10", tmp_path / "tr", tmp_path)
    assert code == 0 and "wrote 20 images" in stdout


def test_create_from_tfds_image_folder(tmp_path, run_tool):
    imgs = write_image_folder(str(tmp_path / "folder"), n_per_class=8)
    out = tmp_path / "tf"
    code, stdout, _ = run_tool(
        "create_from_tfds",
        out,
        tmp_path / "folder",
        "--labels",
        "--resolution",
        8,
        "--transform",
        "center-crop",
    )
    assert code == 0 and "wrote 24 images of 8x8x3" in stdout
    stored = list(tfrecords.iterate_images(out))
    labels = tfrecords.find_dataset(out).load_labels().argmax(axis=1)
    # Resized with Lanczos, labels still matching their images.
    expected = {
        np.asarray(
            Image.fromarray(a).resize((8, 8), Image.LANCZOS)
        ).tobytes(): c
        for a, c in imgs.values()
    }
    assert {a.tobytes(): int(c) for a, c in zip(stored, labels)} == expected


def test_synthetic_is_deterministic(tmp_path, run_tool):
    for name, seed in [("a", 1), ("b", 1), ("c", 2)]:
        code, _, _ = run_tool(
            "create_synthetic",
            tmp_path / name,
            "--num-images",
            300,
            "--seed",
            seed,
            "--labels",
        )
        assert code == 0
    for f in ["-r05.tfrecords", "-r02.tfrecords", "-rxx.labels"]:
        a = (tmp_path / "a" / ("a" + f)).read_bytes()
        b = (tmp_path / "b" / ("b" + f)).read_bytes()
        c = (tmp_path / "c" / ("c" + f)).read_bytes()
        assert a == b and a != c
    imgs = np.stack(list(tfrecords.iterate_images(tmp_path / "a")))
    # Non-trivial: distinct images with colour and spatial structure.
    assert len({x.tobytes() for x in imgs}) == 300
    assert imgs.std() > 40 and np.abs(np.diff(imgs, axis=1)).mean() > 2


def test_synthetic_without_small_shapes_keeps_the_rest(tmp_path):
    from datasets import synthetic

    full, labels = synthetic.make_images(64, 16)
    plain, plain_labels = synthetic.make_images(64, 16, small_shapes=0)
    one, _ = synthetic.make_images(64, 16, small_shapes=1)
    np.testing.assert_array_equal(labels, plain_labels)
    # Fewer small shapes change few pixels: the same backgrounds and main
    # shapes, only the small ones missing.
    changed = (full != plain).any(axis=-1).mean()
    assert 0 < changed < 0.15, changed
    assert (one != plain).any(axis=-1).mean() < changed
    with pytest.raises(ValueError, match="small_shapes must be 0 to 4"):
        synthetic.make_images(4, 16, small_shapes=5)


def _border_jump(imgs):
    """Largest step between neighbouring pixels of the 2-pixel border."""
    x = imgs.astype(np.int32)
    rows = np.concatenate([x[:, :2], x[:, -2:]], axis=1)
    cols = np.concatenate([x[:, :, :2], x[:, :, -2:]], axis=2)
    return np.abs(np.diff(rows, axis=2)).max(axis=(1, 2, 3)), np.abs(
        np.diff(cols, axis=1)
    ).max(axis=(1, 2, 3))


def test_synthetic_simple_centres_the_same_kinds(tmp_path, run_tool):
    from datasets import synthetic

    full, labels = synthetic.make_images(256, 16, small_shapes=0)
    simple, simple_labels = synthetic.make_images(
        256, 16, small_shapes=0, simple=True
    )
    np.testing.assert_array_equal(labels, simple_labels)
    assert (full != simple).any(axis=(1, 2, 3)).mean() > 0.9
    # Centred and about one size: no main shape reaches the border, where
    # only the smooth background (a few levels per pixel) is left; in the
    # full set some do.
    assert max(j.max() for j in _border_jump(simple)) < 24
    assert max(j.max() for j in _border_jump(full)) > 60
    out = tmp_path / "simple"
    code, _, _ = run_tool(
        "create_synthetic", out, "--resolution", 16, "--num-images", 256,
        "--small-shapes", 0, "--simple",
    )  # fmt: skip
    assert code == 0
    written = np.stack(list(tfrecords.iterate_images(out)))
    np.testing.assert_array_equal(written, simple)


def test_synthetic_default_size(tmp_path, run_tool):
    code, stdout, _ = run_tool("create_synthetic", tmp_path / "s")
    assert code == 0 and "wrote 2000 images of 32x32x3" in stdout


def test_info_preview_extract(tmp_path, run_tool):
    out = tmp_path / "shapes"
    run_tool("create_synthetic", out, "--num-images", 20, "--labels")
    code, stdout, _ = run_tool("info", out)
    assert code == 0
    assert "dataset    shapes" in stdout and "images     20" in stdout
    assert "32x32 (stored: 4, 8, 16, 32)" in stdout
    assert "channels   3" in stdout and "3 classes (one-hot)" in stdout
    assert "size       " in stdout and "KB" in stdout
    png = tmp_path / "grid.png"
    code, _, _ = run_tool("preview", out, "--out", png, "--grid", "4x2")
    grid = np.asarray(Image.open(png))
    assert code == 0 and grid.shape == (64, 128, 3)
    imgs = list(tfrecords.iterate_images(out))
    np.testing.assert_array_equal(grid[32:, 96:], imgs[7])
    code, _, _ = run_tool("preview", out, "--out", png, "--res", 8)
    assert np.asarray(Image.open(png)).shape == (64, 64, 3)
    code, stdout, _ = run_tool("extract", out, tmp_path / "x", "--res", 16)
    assert code == 0 and "extracted 20 images" in stdout
    names = sorted(os.listdir(tmp_path / "x"))
    assert names[0] == "img00000000.png" and len(names) == 20
    assert read_pngs(tmp_path / "x")[0].shape == (16, 16, 3)


def test_grayscale(tmp_path, run_tool):
    imgs = random_images(3, 8, channels=1)
    for i, a in enumerate(imgs):
        save_png(a, str(tmp_path / "g" / f"{i}.png"))
    code, _, _ = run_tool(
        "create_from_images",
        tmp_path / "d",
        tmp_path / "g",
        "--grayscale",
        "--no-shuffle",
    )
    assert code == 0
    got = np.stack(list(tfrecords.iterate_images(tmp_path / "d")))
    np.testing.assert_array_equal(got, imgs)
    code, _, _ = run_tool("extract", tmp_path / "d", tmp_path / "x")
    np.testing.assert_array_equal(
        np.stack(read_pngs(tmp_path / "x")), imgs[:, :, :, 0]
    )


# ---------------------------------------------------------------------------
# Bad input: one line on stderr, exit code 2, nothing that looks complete.


def assert_fails(result, pattern, folder):
    code, stdout, stderr = result
    assert code == 2, (stdout, stderr)
    last = stderr.strip().splitlines()[-1]
    assert "error: " in last, stderr
    assert re.search(pattern, last), last
    assert leftovers(folder) == []


@pytest.fixture
def images(tmp_path):
    root = tmp_path / "in"
    for i, a in enumerate(random_images(4, 8, seed=9)):
        save_png(a, str(root / "cls" / f"{i}.png"))
    return root


def test_bad_inputs(tmp_path, images, run_tool):
    out = tmp_path / "out"
    cases = [
        (["create_from_images", out, tmp_path / "nope"], "does not exist"),
        (["create_from_images", out, tmp_path / "txt"], r"no images \(.jpg"),
        (["create_from_tfds", out, "no_such_set"], "unknown tfds dataset"),
        (
            ["create_from_tfds", out, "cifar10", "--tfds-data-dir", tmp_path],
            "not prepared .* never downloads",
        ),
        (
            ["create_from_images", out, images, "--transform", "pad"],
            "--transform needs --resolution",
        ),
        (["create_cifar10", out, images], "'data_batch_1' is missing"),
        (["create_from_images", out, images, "--resolution", 48], "48"),
        (["info", tmp_path / "nope"], "does not exist"),
        (["info", images], "holds no .tfrecords"),
    ]
    (tmp_path / "txt").mkdir()
    (tmp_path / "txt" / "readme.txt").write_text("no images here")
    (tmp_path / "empty").mkdir()
    cases.append((["create_from_images", out, tmp_path / "empty"], "no images"))
    for argv, pattern in cases:
        assert_fails(run_tool(*argv), pattern, tmp_path)
        assert not out.exists()


def test_corrupt_file_fails_or_is_skipped(tmp_path, images, run_tool):
    (images / "cls" / "2.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    out = tmp_path / "out"
    result = run_tool("create_from_images", out, images)
    assert_fails(
        result, r"cannot decode image '.*2\.png'.*--skip-bad", tmp_path
    )
    assert not out.exists()
    code, stdout, stderr = run_tool(
        "create_from_images", out, images, "--skip-bad"
    )
    assert code == 0 and "skipped 1 unreadable image" in stderr
    assert "wrote 3 images" in stdout
    assert tfrecords.find_dataset(out).num_images == 3
    for i in range(4):
        (images / "cls" / f"{i}.png").write_bytes(b"junk")
    result = run_tool(
        "create_from_images", tmp_path / "o2", images, "--skip-bad"
    )
    assert_fails(result, "all 4 images were unreadable", tmp_path)
    assert not (tmp_path / "o2").exists()


def test_size_problems(tmp_path, images, run_tool):
    out = tmp_path / "out"
    save_png(random_images(1, 16)[0], str(images / "cls" / "9.png"))
    result = run_tool("create_from_images", out, images)
    assert_fails(
        result,
        r"'.*9\.png' is 16x16 but .* mixed sizes.*"
        "--transform",
        tmp_path,
    )
    assert not out.exists()
    save_png(random_images(1, 16)[0][:12], str(images / "cls" / "9.png"))
    result = run_tool("create_from_images", out, images)
    assert_fails(
        result, r"'.*9\.png' is 16x12, not a square.*--transform", tmp_path
    )
    code, stdout, _ = run_tool(
        "create_from_images",
        out,
        images,
        "--resolution",
        8,
        "--transform",
        "center-crop",
    )
    assert code == 0 and "wrote 5 images of 8x8x3" in stdout


def test_existing_output_is_refused(tmp_path, images, run_tool):
    out = tmp_path / "out"
    assert run_tool("create_from_images", out, images)[0] == 0
    before = {f: (out / f).read_bytes() for f in os.listdir(out)}
    result = run_tool("create_synthetic", out, "--num-images", 10)
    assert_fails(result, "already holds a dataset; use --overwrite", tmp_path)
    assert {f: (out / f).read_bytes() for f in os.listdir(out)} == before
    code, _, _ = run_tool(
        "create_synthetic", out, "--num-images", 10, "--overwrite"
    )
    assert code == 0 and tfrecords.find_dataset(out).num_images == 10
    assert leftovers(tmp_path) == []
    # A failed overwrite keeps the old dataset.
    result = run_tool(
        "create_from_images", out, tmp_path / "nope", "--overwrite"
    )
    assert_fails(result, "does not exist", tmp_path)
    assert tfrecords.find_dataset(out).num_images == 10
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    result = run_tool("extract", out, tmp_path / "x")
    assert_fails(result, "not empty; use --overwrite", tmp_path)


def test_cli_is_light_and_errors_are_one_line(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    probe = (
        "import sys\n"
        "from datasets import dataset_tool\n"
        "for argv in (['--help'], ['create_synthetic', '--help'],\n"
        "             ['create_synthetic']):\n"
        "    try:\n"
        "        dataset_tool.main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('TF' if 'tensorflow' in sys.modules else 'NO_TF')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env=env,
        timeout=SUBPROCESS_DEADLINE,
    )
    assert proc.stdout.strip().endswith("NO_TF"), proc.stderr
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "datasets.dataset_tool",
            "info",
            str(tmp_path / "nope"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=SUBPROCESS_DEADLINE,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "error: dataset" in proc.stderr and "does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr
