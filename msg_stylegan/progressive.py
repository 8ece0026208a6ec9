"""Progressive growing (SPEC section 10) as keras.ops functions.

The published StyleGAN and ProGAN baselines train at a level of detail
`lod = log2(R) - log2(current resolution)` that is fractional while the next
resolution fades in. A training step is compiled for one current
resolution (a static int) and takes the fade weight `alpha = lod -
floor(lod)` as a runtime value, so a fade-in never recompiles. Inference
(Gs in grids, metrics, generate.py) reads the network's stored `lod` and
blends every level at run time instead (NVlabs' "linear" structure), which
equals the training-time output at that lod.
"""

import math

from keras import ops

from msg_stylegan.ops import downsample2d, upsample2d


def resolution_and_alpha(lod, img_resolution):
    """(current resolution, alpha) for a Python float `lod`.

    The current resolution is the finer one of a fade-in; alpha is the
    weight of the coarser one (1 at the start of a fade-in, 0 at its end).
    """
    level = math.floor(lod)
    return img_resolution >> level, float(lod - level)


def lerp(a, b, t):
    return a + (b - a) * t


def fade_in(current, previous, alpha):
    """lerp(current, upsample2x(previous), alpha).

    `previous` is None at 4x4 and `alpha` None outside a fade-in.
    """
    if previous is None or alpha is None:
        return current
    alpha = ops.cast(alpha, current.dtype)
    return lerp(current, upsample2d(ops.cast(previous, current.dtype)), alpha)


def to_full_size(img, img_resolution):
    """Nearest-upsample an image to the network's full resolution."""
    return upsample2d(img, img_resolution // img.shape[1])


def training_output(img, previous, alpha, img_resolution):
    """G's output while training at a lod: the current level's RGB faded
    over the previous one's, upsampled to full size (a one-image list)."""
    return [to_full_size(fade_in(img, previous, alpha), img_resolution)]


def discriminate(chain, img, resolution, alpha, name, **kwargs):
    """A progressive D at a lod, entered through one fromRGB.

    chain: D's blocks from full resolution down to 4x4, each with `res` and
    `fromrgb_layer`; img: the full-size image. The block at `resolution`
    reads the image downsampled to it; during a fade-in (alpha not None)
    its output is blended with the next block's fromRGB of the image
    downsampled once more. kwargs go to every block call (`training`).
    """
    img_resolution = chain[0].res
    resolution = resolution or img_resolution
    ress = [block.res for block in chain]
    if resolution not in ress:
        raise ValueError(
            f"{name}: resolution must be one of {ress[::-1]}, got "
            f"{resolution!r}"
        )
    start = ress.index(resolution)
    img = downsample2d(img, img_resolution // resolution)
    x = chain[start](img, from_rgb=True, **kwargs)
    lower = chain[start + 1 :]
    if lower and alpha is not None:
        y = lower[0].fromrgb_layer(downsample2d(img), **kwargs)
        x = lerp(x, y, ops.cast(alpha, x.dtype))
    for block in lower:
        x = block(x, from_rgb=False, **kwargs)
    return x


def process_reals(reals, resolution, alpha):
    """The reals at a lod, as NVlabs' `process_reals`, at full size.

    Box-downsample to `resolution`, blend with the once-more downsampled
    and re-upsampled version by `alpha`, nearest-upsample back to full size.
    """
    full = reals.shape[1]
    x = downsample2d(reals, full // resolution)
    if resolution > 4:
        y = upsample2d(downsample2d(x))
        x = lerp(x, y, ops.cast(alpha, x.dtype))
    return upsample2d(x, full // resolution)


def blend_all_levels(imgs, lod):
    """One full-size image from every level's RGB at a runtime `lod`.

    imgs: the RGB heads coarse to fine (4x4 first, full size last).
    Level `res` enters with weight 1 - clip(lod - lod(res), 0, 1) over the
    upsampled image so far, so any lod, integer or not, gives exactly the
    `fade_in` output of the current resolution, upsampled to full size.
    """
    full = imgs[-1].shape[1]
    img = imgs[0]
    for level in imgs[1:]:
        level_lod = math.log2(full) - math.log2(level.shape[1])
        t = ops.clip(ops.cast(lod, level.dtype) - level_lod, 0.0, 1.0)
        img = lerp(level, upsample2d(ops.cast(img, level.dtype)), t)
    return img


def mix_styles(ws, ws2, cutoff):
    """Style mixing: layers [0, cutoff) from `ws`, the rest from `ws2`.

    ws, ws2: [N, num_ws, w_dim]; cutoff: a scalar int (runtime value).
    """
    index = ops.arange(ws.shape[1])[None, :, None]
    keep = ops.less(index, ops.cast(cutoff, index.dtype))
    return ops.where(keep, ws, ops.cast(ws2, ws.dtype))


def mixing_cutoff(coin, uniform, prob, num_layers):
    """NVlabs' crossover: with probability `prob` a layer in [1, num_layers)
    drawn from `uniform` in [0, 1), else `num_layers` (no mixing).

    coin, uniform: runtime scalars in [0, 1); num_layers: the styled layers
    in use at the current resolution (static).
    """
    if num_layers < 2:
        return ops.convert_to_tensor(num_layers, "int32")
    drawn = 1 + ops.cast(ops.floor(uniform * (num_layers - 1)), "int32")
    drawn = ops.minimum(drawn, num_layers - 1)
    return ops.where(ops.less(coin, prob), drawn, num_layers)
