"""Image grids and files: the one place images are laid out and written.

NumPy and Pillow only, no ML framework, so the training loop's sample grids,
generate.py's seeds, figures and animations, compare.py's sample sheet and
the dataset tool's previews all come out the same way: [-1, 1] floats
rounded to uint8 alike, tiled row-major on black, written atomically with a
plain file's permissions. Images are NHWC ([H, W, C] for one), C = 1 or 3.
"""

import os

import numpy as np
from PIL import Image

from dnnlib.util import UserError, atomic_write


def to_uint8(imgs):
    """[-1, 1] floats -> uint8 via (x + 1) * 127.5, rounded and clipped."""
    x = np.rint((np.asarray(imgs, np.float32) + 1) * 127.5)
    return np.clip(x, 0, 255).astype(np.uint8)


def upsample(imgs, size):
    """Nearest-neighbour upsampling of [N, r, r, C] to [N, size, size, C]."""
    factor = size // imgs.shape[1]
    return np.repeat(np.repeat(imgs, factor, axis=1), factor, axis=2)


def scales_strip(scales):
    """Every scale upsampled to full size, side by side: [N, R, S*R, C]."""
    size = scales[-1].shape[1]
    return np.concatenate([upsample(s, size) for s in scales], axis=2)


def tile(imgs, cols, rows):
    """[N, H, W, C] -> one [rows*H, cols*W, C] image, row-major, black pad."""
    imgs = np.asarray(imgs)
    n, h, w, c = imgs.shape
    canvas = np.zeros((rows * h, cols * w, c), imgs.dtype)
    for i in range(min(n, cols * rows)):
        y, x = divmod(i, cols)
        canvas[y * h : (y + 1) * h, x * w : (x + 1) * w] = imgs[i]
    return canvas


def auto_grid(n):
    """A near-square (cols, rows) that holds n images."""
    cols = int(np.ceil(np.sqrt(n)))
    return cols, int(np.ceil(n / cols))


def _pil(img):
    img = np.asarray(img)
    return Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)


def _umask_mode():
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _save_atomic(path, save):
    """`save(file)` into a temp file renamed over `path` when complete.

    The folder is made if missing (the training loop writes one per
    scale). The temp file is private (0600); the result gets the mode a
    plain open() would give, so images stay readable by others as usual.
    """
    folder = os.path.dirname(os.fspath(path)) or "."
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot write '{path}': {e.strerror}") from None
    with atomic_write(path) as f:
        save(f)
        os.fchmod(f.fileno(), _umask_mode())


def write_png(path, img):
    """Write one uint8 [H, W, C] image; never leaves a half-written file."""
    _save_atomic(path, lambda f: _pil(img).save(f, format="PNG"))


def write_grid(path, imgs, grid):
    """uint8 or [-1, 1] float images [N, H, W, C] -> one PNG of
    `grid` = (cols, rows) images, row-major, black where N falls short."""
    imgs = np.asarray(imgs)
    if imgs.dtype != np.uint8:
        imgs = to_uint8(imgs)
    write_png(path, tile(imgs, *grid))


def write_gif(path, frames, fps=24):
    """An endlessly looping animated GIF, written atomically."""
    images = [_pil(f) for f in frames]
    _save_atomic(
        path,
        lambda f: images[0].save(
            f,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=max(int(round(1000 / fps)), 20),
            loop=0,
        ),
    )


def write_mp4(path, frames, fps=24):
    """An H.264 MP4 when imageio with ffmpeg is importable; else False.

    imageio is optional and not a dependency of this project.
    """
    try:
        import imageio.v2 as imageio
    except ImportError:
        return False
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, "." + os.path.basename(path) + ".tmp.mp4")
    try:
        with imageio.get_writer(tmp, fps=fps) as w:
            for frame in frames:
                w.append_data(np.asarray(frame))
        os.replace(tmp, path)
    except Exception:  # no ffmpeg plugin or backend at run time
        if os.path.exists(tmp):
            os.remove(tmp)
        return False
    return True
