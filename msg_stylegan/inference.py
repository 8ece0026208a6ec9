"""Inference from snapshots: load Gs, seeded images, mixing, interpolation.

The library behind `generate.py`, `compare.py` and the metrics: everything
here works on NumPy arrays and the Keras networks, with no TensorFlow-only
calls. It sits with the networks, below metrics and training, so that
evaluating a snapshot never imports the training code. Every image is a
function of its seed alone: z and, for `noise_mode=random`, the noise images
are drawn from `np.random.RandomState(seed)`. Laying images out and writing
them is `dnnlib.images`.
"""

import numpy as np

from dnnlib.images import tile, to_uint8
from dnnlib.util import UserError


def load_network(path, which="Gs", log=print):
    """Rebuild `which` (G or Gs) from a snapshot: returns (network, cfg).

    The network is built from the snapshot's stored config (data, never
    code) and its weights are assigned by variable key with shape checks,
    so a file that does not fit is a UserError naming the first mismatch.
    A published TF1 pickle is converted on the way (msg_stylegan.convert_tf1;
    `log` receives what was inferred).
    """
    import config as config_lib
    from msg_stylegan import convert_tf1, networks, snapshot, tf1_pickle

    if tf1_pickle.is_tf1_pickle(path):
        data = convert_tf1.convert(path, log=log)
    else:
        data = snapshot.load(path)
    try:
        cfg = config_lib.Config.from_json(data["config"])
    except UserError as e:
        raise UserError(f"snapshot '{path}': {e}")
    except (TypeError, ValueError) as e:
        raise UserError(f"snapshot '{path}' has an unreadable config: {e}")
    state = data.get(which)
    if not isinstance(state, dict):
        raise UserError(f"snapshot '{path}' has no '{which}' weights")
    try:
        G = networks.build_generator(cfg, name=which)
        networks.set_state(G, state, what=which)
    except (TypeError, ValueError) as e:
        raise UserError(f"snapshot '{path}' does not fit its network: {e}")
    return G, cfg


def seed_inputs(seed, z_dim, noise_resolutions=None):
    """z [1, z_dim] and optional noise images [1, res, res, 1] per layer.

    Both come from the seed's own RandomState, z first, so the same seed
    gives the same image whatever batch it is generated in.
    """
    rnd = np.random.RandomState(seed)
    z = rnd.randn(1, z_dim).astype(np.float32)
    if noise_resolutions is None:
        return z, None
    noise = [
        rnd.randn(1, res, res, 1).astype(np.float32)
        for res in noise_resolutions
    ]
    return z, noise


def batch_inputs(G, seeds, noise_mode="const"):
    """Latents [N, z_dim] and the per-layer noise list (None unless random)."""
    res = G.noise_resolutions if noise_mode == "random" else None
    pairs = [seed_inputs(s, G.z_dim, res) for s in seeds]
    z = np.concatenate([p[0] for p in pairs])
    if res is None:
        return z, None
    noise = [np.concatenate(layer) for layer in zip(*[p[1] for p in pairs])]
    return z, noise


def seed_ws(G, seeds, truncation_psi=1.0, truncation_cutoff=None):
    """The seeds' latent codes after the truncation trick: ws
    [N, num_ws, w_dim] for StyleGAN generators, z for ProGAN ones."""
    if truncation_cutoff is None:
        truncation_cutoff = G.truncation_cutoff
    z, _ = batch_inputs(G, seeds)
    ws = G.latent_codes(
        z,
        truncation_psi=truncation_psi,
        truncation_cutoff=truncation_cutoff,
    )
    return np.asarray(ws, dtype=np.float32)


def synthesize(G, ws, noise_mode="const", noise=None):
    """Latent codes -> the list of float images coarse to fine, as NumPy
    (one full-size image at the stored lod for progressive networks)."""
    imgs = G.synthesize(ws, noise_mode=noise_mode, noise=noise)
    return [np.asarray(img, dtype=np.float32) for img in imgs]


def iter_images(
    G,
    seeds,
    truncation_psi=0.7,
    truncation_cutoff=None,
    noise_mode="const",
    batch=8,
    progress=None,
):
    """Yield (seeds, images per scale) a batch at a time, coarse to fine.

    Streaming keeps memory at one batch however many seeds are asked for.
    """
    for i in range(0, len(seeds), batch):
        chunk = list(seeds[i : i + batch])
        ws = seed_ws(G, chunk, truncation_psi, truncation_cutoff)
        _, noise = batch_inputs(G, chunk, noise_mode)
        yield chunk, synthesize(G, ws, noise_mode, noise)
        if progress is not None:
            progress.update(len(chunk))


def style_mix(
    G,
    row_seeds,
    col_seeds,
    layers,
    truncation_psi=0.7,
    truncation_cutoff=None,
    noise_mode="const",
    batch=8,
    progress=None,
):
    """StyleGAN's style-mixing figure as one uint8 image.

    Top row: the column seeds' images; left column: the row seeds'; cell
    (r, c): the row seed's ws with layers `layers` taken from the column
    seed. With random noise, every image uses its row seed's noise (the
    top row its column seed's), so a row differs only by the copied styles.
    """
    layers = sorted(set(layers))
    if not G.num_ws:
        raise UserError(
            "--mix: style mixing needs a StyleGAN generator; this network "
            "has no styles"
        )
    if layers and layers[-1] >= G.num_ws:
        raise UserError(
            f"--mix-layers: layer {layers[-1]} does not exist; this network "
            f"has layers 0-{G.num_ws - 1}"
        )
    row_ws = seed_ws(G, row_seeds, truncation_psi, truncation_cutoff)
    col_ws = seed_ws(G, col_seeds, truncation_psi, truncation_cutoff)
    # Every image of the figure: column seeds, row seeds, then the cells.
    ws, noise_seeds = [col_ws, row_ws], list(col_seeds) + list(row_seeds)
    for r, seed in enumerate(row_seeds):
        cells = np.repeat(row_ws[r : r + 1], len(col_seeds), axis=0)
        cells[:, layers] = col_ws[:, layers]
        ws.append(cells)
        noise_seeds += [seed] * len(col_seeds)
    ws = np.concatenate(ws)
    imgs = []
    for i in range(0, len(ws), batch):
        _, noise = batch_inputs(G, noise_seeds[i : i + batch], noise_mode)
        imgs.append(
            to_uint8(synthesize(G, ws[i : i + batch], noise_mode, noise)[-1])
        )
        if progress is not None:
            progress.update(min(batch, len(ws) - i))
    imgs = np.concatenate(imgs)
    # Lay out with an empty top-left corner.
    nc, nr = len(col_seeds), len(row_seeds)
    blank = np.zeros_like(imgs[:1])
    cells = [blank, imgs[:nc]]
    for r in range(nr):
        cells += [imgs[nc + r : nc + r + 1]]
        cells += [imgs[nc + nr + r * nc : nc + nr + (r + 1) * nc]]
    return tile(np.concatenate(cells), nc + 1, nr + 1)


def interpolate(
    G,
    seeds,
    frames,
    truncation_psi=0.7,
    truncation_cutoff=None,
    noise_mode="const",
    batch=8,
    progress=None,
):
    """Frames [F, R, R, C] uint8 of a linear walk in w between the seeds.

    w space (after truncation) rather than z: w is where StyleGAN's
    perceptual path length is short, so a straight line there morphs
    smoothly, and truncation applies to every frame alike. `frames` per
    transition; the walk ends on the last seed: F = (len(seeds)-1)*frames+1.
    With random noise, every frame uses the first seed's noise so the
    texture does not flicker.
    """
    if len(seeds) < 2:
        raise UserError("--interp needs at least two seeds, e.g. 0-3")
    keys = seed_ws(G, seeds, truncation_psi, truncation_cutoff)
    t = np.arange(frames, dtype=np.float32) / frames  # [F] in [0, 1)
    t = t.reshape((frames,) + (1,) * (keys.ndim - 1))  # over ws or z
    ws = [keys[i] + t * (keys[i + 1] - keys[i]) for i in range(len(seeds) - 1)]
    ws = np.concatenate(ws + [keys[-1:]]).astype(np.float32)
    _, noise1 = batch_inputs(G, seeds[:1], noise_mode)
    out = []
    for i in range(0, len(ws), batch):
        chunk = ws[i : i + batch]
        noise = None
        if noise1 is not None:
            noise = [np.repeat(n, len(chunk), axis=0) for n in noise1]
        out.append(to_uint8(synthesize(G, chunk, noise_mode, noise)[-1]))
        if progress is not None:
            progress.update(len(chunk))
    return np.concatenate(out)
