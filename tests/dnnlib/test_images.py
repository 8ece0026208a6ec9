"""Tests for dnnlib.images: uint8 conversion, grids, atomic PNG and GIF."""

import os
import stat

import numpy as np
from PIL import Image

from dnnlib import images


def test_to_uint8_rounds_and_clips():
    x = np.array([-2.0, -1.0, 0.0, 0.5, 1.0, 3.0], np.float32)
    # (x + 1) * 127.5 = -127.5, 0, 127.5, 191.25, 255, 510; rint, clip.
    assert images.to_uint8(x).tolist() == [0, 0, 128, 191, 255, 255]


def test_tile_is_row_major_with_black_padding():
    imgs = np.arange(1, 4, dtype=np.uint8).reshape(3, 1, 1, 1)
    imgs = np.broadcast_to(imgs, (3, 2, 3, 1))  # 3 images of 2x3
    grid = images.tile(imgs, cols=2, rows=2)
    assert grid.shape == (4, 6, 1)
    assert grid[0, 0, 0] == 1 and grid[0, 3, 0] == 2  # first row
    assert grid[2, 0, 0] == 3 and grid[2, 3, 0] == 0  # black pad


def test_auto_grid_and_strip():
    assert images.auto_grid(1) == (1, 1)
    assert images.auto_grid(5) == (3, 2)
    assert images.auto_grid(9) == (3, 3)
    scales = [np.zeros((2, r, r, 3), np.float32) for r in (4, 8, 16)]
    scales[0][:, 0, 0] = 1.0
    strip = images.scales_strip(scales)
    assert strip.shape == (2, 16, 48, 3)
    # The 4x4 scale's top-left pixel covers a 4x4 block at full size.
    assert strip[0, :4, :4].min() == 1.0 and strip[0, 4, 0, 0] == 0.0


def test_write_grid_floats_and_gray(tmp_path):
    rnd = np.random.RandomState(0)
    floats = rnd.uniform(-1, 1, (3, 4, 4, 3)).astype(np.float32)
    path = tmp_path / "new" / "folder" / "rgb.png"  # made on the way
    images.write_grid(path, floats, (2, 2))
    got = np.asarray(Image.open(path))
    assert got.shape == (8, 8, 3)
    assert np.array_equal(got, images.tile(images.to_uint8(floats), 2, 2))
    gray = rnd.randint(0, 256, (2, 4, 4, 1)).astype(np.uint8)
    images.write_grid(tmp_path / "gray.png", gray, (2, 1))
    with Image.open(tmp_path / "gray.png") as img:
        assert img.mode == "L"
        assert np.array_equal(np.asarray(img), np.hstack(list(gray[..., 0])))
    assert sorted(os.listdir(tmp_path)) == ["gray.png", "new"]  # no temps


def test_written_files_get_the_umask_mode(tmp_path):
    old = os.umask(0o022)
    try:
        images.write_png(tmp_path / "a.png", np.zeros((2, 2, 3), np.uint8))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "a.png").st_mode) == 0o644


def test_write_gif_keeps_every_frame(tmp_path):
    frames = np.zeros((3, 4, 4, 3), np.uint8)
    frames[1] = 128
    frames[2] = 255
    images.write_gif(tmp_path / "a.gif", frames, fps=10)
    with Image.open(tmp_path / "a.gif") as gif:
        assert gif.n_frames == 3
        assert gif.info["duration"] == 100
