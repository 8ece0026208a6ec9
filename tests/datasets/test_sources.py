"""Tests of the image readers, conversions and the skip/fail policy."""

import io
import os
import pickle
import tarfile
import zipfile

import numpy as np
import pytest
from PIL import Image

from datasets import sources
from dnnlib.util import UserError
from tests.datasets.dataset_helpers import (
    random_images,
    save_png,
    write_cifar,
    write_image_folder,
)


def pixels(source):
    """Decode a whole source the default way (RGB, no transform)."""
    return [(a, label) for a, label in sources.ImageStream(source)]


def test_convert_modes():
    rgb = random_images(1, 8, seed=1)[0]
    gray = rgb[:, :, 0]
    out = sources.convert_image(Image.fromarray(gray), name="g")
    np.testing.assert_array_equal(out, np.stack([gray] * 3, axis=2))
    rgba = np.concatenate([rgb, np.full((8, 8, 1), 7, np.uint8)], axis=2)
    out = sources.convert_image(Image.fromarray(rgba), name="a")
    np.testing.assert_array_equal(out, rgb)
    pal = Image.fromarray(rgb).convert("P")
    out = sources.convert_image(pal, name="p")
    np.testing.assert_array_equal(out, np.asarray(pal.convert("RGB")))
    out = sources.convert_image(Image.fromarray(rgb), name="x", channels=1)
    assert out.shape == (8, 8, 1)
    expected = np.asarray(Image.fromarray(rgb).convert("L"))
    np.testing.assert_array_equal(out[:, :, 0], expected)
    wide = (gray.astype(np.uint16) * 257).astype(np.uint16)
    out = sources.convert_image(Image.fromarray(wide), name="16")
    np.testing.assert_array_equal(out, np.stack([gray] * 3, axis=2))
    # Arrays (tfds, CIFAR) pass through unchanged.
    np.testing.assert_array_equal(sources.convert_image(rgb, name="r"), rgb)


def test_convert_needs_an_explicit_transform():
    wide = Image.fromarray(random_images(1, 40, seed=2)[0][:20])
    with pytest.raises(UserError, match="'wide.png' is 40x20.*--transform"):
        sources.convert_image(wide, name="wide.png")
    square = Image.fromarray(random_images(1, 24, seed=2)[0])
    with pytest.raises(UserError, match="24x24, not a square power"):
        sources.convert_image(square, name="s")
    p16 = Image.fromarray(random_images(1, 16, seed=2)[0])
    with pytest.raises(UserError, match="16x16, not 8x8.*--transform"):
        sources.convert_image(p16, name="s", resolution=8)


def test_center_crop_and_pad():
    arr = random_images(1, 40, seed=3)[0][:20]  # 20 high, 40 wide
    img = Image.fromarray(arr)
    out = sources.convert_image(
        img, name="w", resolution=16, transform="center-crop"
    )
    expected = img.crop((10, 0, 30, 20)).resize((16, 16), Image.LANCZOS)
    np.testing.assert_array_equal(out, np.asarray(expected))
    out = sources.convert_image(img, name="w", resolution=32, transform="pad")
    canvas = np.zeros((40, 40, 3), np.uint8)
    canvas[10:30] = arr
    expected = Image.fromarray(canvas).resize((32, 32), Image.LANCZOS)
    np.testing.assert_array_equal(out, np.asarray(expected))
    # Already the right size: untouched.
    sq = random_images(1, 16, seed=4)[0]
    out = sources.convert_image(sq, name="s", resolution=16, transform="pad")
    np.testing.assert_array_equal(out, sq)


@pytest.fixture
def folder(tmp_path):
    """Images in two class folders, plus files that are not images."""
    root = tmp_path / "imgs"
    imgs = random_images(6, 8, seed=5)
    names = [
        "b/2.png",
        "a/1.png",
        "b/sub/0.png",
        "a/0.bmp",
        "b/1.PNG",
        "a/9.webp",
    ]
    for arr, name in zip(imgs, names):
        path = str(root / name)
        fmt = {"bmp": "BMP", "webp": "WEBP"}.get(name.split(".")[-1], "PNG")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Image.fromarray(arr).save(path, fmt, lossless=True)
    (root / "README.txt").write_text("not an image")
    (root / "a" / ".hidden.png").write_bytes(b"junk")
    return root, dict(zip(names, imgs))


def test_folder_source_sorted_with_labels(folder):
    root, imgs = folder
    src = sources.image_folder_source(root, labels=True)
    order = [
        "a/0.bmp",
        "a/1.png",
        "a/9.webp",
        "b/1.PNG",
        "b/2.png",
        "b/sub/0.png",
    ]
    assert [os.path.relpath(it.name, root) for it in src] == order
    assert src.class_names == ["a", "b", "sub"]
    got = pixels(src)
    for name, (arr, label) in zip(order, got):
        np.testing.assert_array_equal(arr, imgs[name])
        assert label == src.class_names.index(name.split("/")[-2])


def test_zip_source_matches_folder(folder, tmp_path):
    root, imgs = folder
    zpath = tmp_path / "imgs.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for dirpath, _, files in os.walk(root):
            for f in files:
                full = os.path.join(dirpath, f)
                zf.write(full, os.path.relpath(full, root))
        zf.writestr("__MACOSX/a/._1.png", b"junk")
    a = pixels(sources.image_folder_source(root, labels=True))
    b = pixels(sources.image_folder_source(zpath, labels=True))
    assert len(a) == len(b) == 6
    for (x, la), (y, lb) in zip(a, b):
        np.testing.assert_array_equal(x, y)
        assert la == lb


def test_selection_is_deterministic(folder):
    root, _ = folder
    names = [it.name for it in sources.image_folder_source(root)]
    first = sources.image_folder_source(root, max_images=4)
    assert [it.name for it in first] == names[:4]
    s1 = sources.image_folder_source(root, shuffle=True, seed=1)
    s2 = sources.image_folder_source(root, shuffle=True, seed=1)
    assert [it.name for it in s1] == [it.name for it in s2]
    assert sorted(it.name for it in s1) == names
    assert [it.name for it in s1] != names


def test_folder_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        sources.image_folder_source(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images .* found in"):
        sources.image_folder_source(tmp_path / "empty")
    (tmp_path / "notzip.zip").write_bytes(b"PK not really")
    with pytest.raises(UserError, match="neither a folder nor a .zip"):
        sources.image_folder_source(tmp_path / "notzip.zip")
    save_png(random_images(1, 8)[0], str(tmp_path / "flat" / "x.png"))
    with pytest.raises(UserError, match="'.*x.png' is not in a class folder"):
        sources.image_folder_source(tmp_path / "flat", labels=True)


def test_bad_image_fails_or_is_skipped(tmp_path):
    root = tmp_path / "imgs"
    for i, arr in enumerate(random_images(3, 8, seed=6)):
        save_png(arr, str(root / f"{i}.png"))
    (root / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    good = open(root / "2.png", "rb").read()
    (root / "3.png").write_bytes(good[: len(good) // 2])  # truncated
    src = sources.image_folder_source(root)
    with pytest.raises(UserError, match=r"'.*1\.png'.*--skip-bad"):
        list(sources.ImageStream(src))
    stream = sources.ImageStream(src, skip_bad=True)
    assert len(list(stream)) == 2
    assert [os.path.basename(n) for n, _ in stream.skipped] == [
        "1.png",
        "3.png",
    ]


def test_mixed_sizes_fail_naming_the_file(tmp_path):
    root = tmp_path / "imgs"
    save_png(random_images(1, 8)[0], str(root / "a.png"))
    save_png(random_images(1, 16)[0], str(root / "b.png"))
    src = sources.image_folder_source(root)
    with pytest.raises(UserError, match=r"'.*b\.png' is 16x16 but .*a\.png"):
        list(sources.ImageStream(src))
    # With a transform they all end up the same size.
    out = list(sources.ImageStream(src, resolution=8, transform="pad"))
    assert [a.shape for a, _ in out] == [(8, 8, 3)] * 2
    with pytest.raises(UserError, match="--transform needs --resolution"):
        sources.ImageStream(src, transform="pad")


# ---------------------------------------------------------------------------
# CIFAR-10


def test_cifar_folder_and_tar_gz(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    batches = write_cifar(folder)
    tgz = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    for path in (folder, tmp_path, tgz):
        src = sources.cifar10_source(path, split="train")
        assert len(src) == 15 and src.class_names[0] == "airplane"
        got = pixels(src)
        k = 0
        for name in sources.CIFAR10_SPLITS["train"]:
            data, labels = batches[name]
            for row, label in zip(data, labels):
                # Rows are R plane, G plane, B plane, each 32x32 row-major.
                expected = row.reshape(3, 32, 32).transpose(1, 2, 0)
                np.testing.assert_array_equal(got[k][0], expected)
                assert got[k][1] == label
                k += 1
    test = pixels(sources.cifar10_source(tgz, split="test"))
    assert [label for _, label in test] == batches["test_batch"][1]


def test_cifar_errors(tmp_path):
    batches = tmp_path / "c"
    write_cifar(batches)
    os.remove(batches / "data_batch_4")
    with pytest.raises(UserError, match="'data_batch_4' is missing"):
        sources.cifar10_source(batches, split="train")
    sources.cifar10_source(batches, split="test")
    with pytest.raises(UserError, match="does not exist"):
        sources.cifar10_source(tmp_path / "none")


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_cifar_refuses_pickled_code(tmp_path):
    folder = tmp_path / "c"
    write_cifar(folder)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": _Evil(), b"labels": [0]}, f)
    with pytest.raises(UserError, match="refusing to load .*system"):
        sources.cifar10_source(folder, split="test")


def test_cifar_rejects_wrong_layout(tmp_path):
    folder = tmp_path / "c"
    write_cifar(folder)
    blob = pickle.dumps(
        {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}
    )
    (folder / "test_batch").write_bytes(blob)
    with pytest.raises(UserError, match=r"expected \[N, 3072\]"):
        sources.cifar10_source(folder, split="test")


# ---------------------------------------------------------------------------
# tensorflow-datasets


def test_tfds_image_folder(tmp_path):
    imgs = write_image_folder(str(tmp_path / "folder"))
    src = sources.tfds_source(
        str(tmp_path / "folder"), split="train", labels=True
    )
    assert len(src) == 36 and src.class_names == ["cat", "dog", "owl"]
    got = pixels(src)
    # ImageFolder's order is its own; match images by content.
    expected = {a.tobytes(): label for a, label in imgs.values()}
    assert len(got) == 36
    assert {a.tobytes(): label for a, label in got} == expected
    with pytest.raises(UserError, match="no split 'test'.*train"):
        sources.tfds_source(str(tmp_path / "folder"), split="test")
    assert len(sources.tfds_source(str(tmp_path / "folder"), max_images=5)) == 5


def test_tfds_never_downloads(tmp_path):
    data_dir = tmp_path / "tfds"
    data_dir.mkdir()
    with pytest.raises(
        UserError, match="'cifar10' is not prepared in .*never downloads"
    ):
        sources.tfds_source("cifar10", data_dir=str(data_dir))
    assert os.listdir(data_dir) == []
    with pytest.raises(
        UserError, match="unknown tfds dataset 'cifar100000'.*did you mean"
    ):
        sources.tfds_source("cifar100000", data_dir=str(data_dir))
    with pytest.raises(UserError, match="image folder './nope' does not"):
        sources.tfds_source("./nope")


def test_decode_bytes_reports_the_name():
    buf = io.BytesIO()
    Image.fromarray(random_images(1, 8)[0]).save(buf, "JPEG")
    assert sources.decode_bytes(buf.getvalue(), "ok.jpg").size == (8, 8)
    with pytest.raises(sources.BadImage, match="'bad.jpg'"):
        sources.decode_bytes(buf.getvalue()[:50], "bad.jpg")
