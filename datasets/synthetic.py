"""A built-in synthetic image set: coloured shapes on smooth gradients.

Made so the demo trains offline in minutes on something with structure at
several scales: a smooth two-colour background gradient (coarse), one large
main shape, a disc, a rotated square or a striped disc, whose kind is the
class label (middle), and a few small discs and squares plus the stripes
themselves (fine). Edges are anti-aliased over one pixel, so the images
downsample cleanly into the pyramid.

`simple=True` keeps the kinds, colours and backgrounds but centres the
main shape, keeps it upright and about one size, and draws two or three wide
horizontal or vertical stripes: what the 16x16 CPU demo can learn in
minutes (at 16x16 the full set's stripes are finer than a pixel pair).

Deterministic: the parameters of images [256 b, 256 (b + 1)) come from
`np.random.default_rng([seed, b])`, so a seed gives the same images on every
run, and a smaller set is a prefix of a larger one.
"""

import numpy as np

CLASSES = ("disc", "square", "stripes")
_BLOCK = 256
NUM_SMALL = 4


def _draw_params(rng, n):
    """Random parameters of `n` images, all drawn in a fixed order."""
    u = rng.uniform
    return {
        "bg0": u(0.0, 1.0, (n, 3)),
        "bg1": u(0.0, 1.0, (n, 3)),
        "bg_angle": u(0.0, 2 * np.pi, n),
        "kind": rng.integers(0, len(CLASSES), n),
        "center": u(-0.35, 0.35, (n, 2)),
        "size": u(0.3, 0.55, n),
        "angle": u(0.0, np.pi / 2, n),
        "color": u(0.0, 1.0, (n, 3)),
        "color2": u(0.0, 1.0, (n, 3)),
        "freq": u(3.0, 7.0, n),
        "stripe_angle": u(0.0, np.pi, n),
        "small_kind": rng.integers(0, 2, (n, NUM_SMALL)),
        "small_center": u(-0.85, 0.85, (n, NUM_SMALL, 2)),
        "small_size": u(0.05, 0.14, (n, NUM_SMALL)),
        "small_angle": u(0.0, np.pi / 2, (n, NUM_SMALL)),
        "small_color": u(0.0, 1.0, (n, NUM_SMALL, 3)),
    }


def _simplify(p):
    """The `simple` variant of drawn parameters (the same draws, narrowed)."""
    p = dict(p)
    p["center"] = p["center"] * (0.06 / 0.35)  # within 1/2 pixel at 16x16
    p["size"] = 0.45 + (p["size"] - 0.3) * (0.1 / 0.25)  # 0.45 to 0.55
    p["freq"] = 1.0 + (p["freq"] - 3.0) * (0.5 / 4.0)  # 1 to 1.5 periods
    p["angle"] = np.zeros_like(p["angle"])
    p["stripe_angle"] = np.where(p["stripe_angle"] < np.pi / 2, 0.0, np.pi / 2)
    return p


def _f32(x):
    return np.asarray(x, np.float32)


def _render(p, res, small_shapes=NUM_SMALL):
    """Render a parameter block as float32 [n, res, res, 3] in [0, 1]."""
    n = len(p["kind"])
    # Pixel centres on [-1, 1]; one pixel is 2 / res wide.
    t = (np.arange(res, dtype=np.float32) + 0.5) * (2.0 / res) - 1.0
    y = t[None, :, None]  # [1H1]
    x = t[None, None, :]  # [11W]
    sharp = np.float32(res / 2.0)

    def coverage(sd):
        """Anti-aliased inside-ness of a signed distance field."""
        return np.clip(0.5 - sd * sharp, 0.0, 1.0)[..., None]

    def local(cx, cy, angle):
        """Coordinates relative to a centre, rotated by `angle`."""
        c, s = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
        dx, dy = x - cx[:, None, None], y - cy[:, None, None]
        return c * dx + s * dy, -s * dx + c * dy

    def col(v):
        return v[:, None, None, :]  # [N3] -> [N113]

    # Background: a linear gradient between two colours.
    a = _f32(p["bg_angle"])
    g = 0.5 + 0.35 * (
        np.cos(a)[:, None, None] * x + np.sin(a)[:, None, None] * y
    )
    g = g[..., None]
    img = col(_f32(p["bg0"])) * (1 - g) + col(_f32(p["bg1"])) * g

    # Main shape: its kind is the label.
    cx, cy = _f32(p["center"][:, 0]), _f32(p["center"][:, 1])
    size = _f32(p["size"])[:, None, None]
    kind = p["kind"][:, None, None]
    qx, qy = local(cx, cy, _f32(p["angle"]))
    disc = np.sqrt(qx * qx + qy * qy) - size
    square = np.maximum(np.abs(qx), np.abs(qy)) - size * 0.85
    sd = np.where(kind == 1, square, disc)
    fill = np.broadcast_to(col(_f32(p["color"])), img.shape)
    sx, _ = local(cx, cy, _f32(p["stripe_angle"]))
    phase = sx * (_f32(p["freq"])[:, None, None] * np.float32(np.pi) / size)
    band = (0.5 + 0.5 * np.tanh(4.0 * np.sin(phase)))[..., None]
    striped = col(_f32(p["color"])) * band + col(_f32(p["color2"])) * (1 - band)
    fill = np.where((kind == 2)[..., None], striped, fill)
    m = coverage(sd)
    img = img * (1 - m) + fill * m

    # Small shapes on top: fine-scale detail.
    for j in range(small_shapes):
        cx = _f32(p["small_center"][:, j, 0])
        cy = _f32(p["small_center"][:, j, 1])
        r = _f32(p["small_size"][:, j])[:, None, None]
        qx, qy = local(cx, cy, _f32(p["small_angle"][:, j]))
        disc = np.sqrt(qx * qx + qy * qy) - r
        square = np.maximum(np.abs(qx), np.abs(qy)) - r
        sd = np.where(p["small_kind"][:, j, None, None] == 1, square, disc)
        m = coverage(sd)
        img = img * (1 - m) + col(_f32(p["small_color"][:, j])) * m
    assert img.shape == (n, res, res, 3)
    return img


def _blocks(num_images, resolution, seed, small_shapes, simple):
    """Yield uint8 [n, res, res, 3] images and their labels, block by block."""
    # Render a few images at a time: bounded memory at high resolution.
    step = max(1, min(_BLOCK, (1 << 17) // (resolution * resolution)))
    for start in range(0, num_images, _BLOCK):
        n = min(_BLOCK, num_images - start)
        p = _draw_params(np.random.default_rng([seed, start // _BLOCK]), _BLOCK)
        if simple:
            p = _simplify(p)
        for lo in range(0, n, step):
            hi = min(lo + step, n)
            part = {k: v[lo:hi] for k, v in p.items()}
            img = _render(part, resolution, small_shapes)
            img = np.rint(np.clip(img, 0.0, 1.0) * 255).astype(np.uint8)
            yield img, p["kind"][lo:hi]


def _check_small(small_shapes):
    if not 0 <= small_shapes <= NUM_SMALL:
        raise ValueError(
            f"small_shapes must be 0 to {NUM_SMALL}, not {small_shapes}"
        )


def make_images(
    num_images, resolution=32, seed=0, small_shapes=NUM_SMALL, simple=False
):
    """uint8 [N, res, res, 3] images and int64 [N] labels (CLASSES index).

    small_shapes: how many of the small shapes to draw (0 to NUM_SMALL);
    the other parameters are drawn all the same, so the backgrounds and
    main shapes do not change with it. simple: the narrowed variant (see
    the module docstring); the same kinds and colours as without it.
    """
    _check_small(small_shapes)
    images = np.empty((num_images, resolution, resolution, 3), np.uint8)
    labels = np.empty(num_images, np.int64)
    i = 0
    blocks = _blocks(num_images, resolution, seed, small_shapes, simple)
    for imgs, kinds in blocks:
        images[i : i + len(imgs)] = imgs
        labels[i : i + len(imgs)] = kinds
        i += len(imgs)
    return images, labels


def iterate_images(
    num_images, resolution=32, seed=0, small_shapes=NUM_SMALL, simple=False
):
    """Yield (uint8 HWC image, label) pairs without holding the whole set."""
    _check_small(small_shapes)
    blocks = _blocks(num_images, resolution, seed, small_shapes, simple)
    for imgs, kinds in blocks:
        for img, label in zip(imgs, kinds):
            yield img, int(label)
