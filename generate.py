"""Generate images, style-mixing figures and interpolations from a snapshot.

python generate.py --network=network-final.pkl --seeds=0-7 --trunc=0.7
"""

import argparse
import os
import sys

import numpy as np

from dnnlib import images
from dnnlib.util import (
    Progress,
    UserError,
    add_verbose_flag,
    arg_positive,
    parse_range,
    quiet_framework_logs,
    run_cli,
)
from training import EXPORT_FORMATS

EPILOG = """examples:
  # eight images seed0000.png .. seed0007.png in out/, truncation psi 0.7
  python generate.py --network=network-final.pkl

  # no truncation, random (but per-seed repeatable) noise, custom outdir
  python generate.py --network=network-final.pkl --seeds=0-99,200 \\
      --trunc=1 --noise-mode=random --outdir=out/samples

  # every scale of each seed side by side (seed0000-scales.png), and all
  # of them in one grid.png with one row per seed
  python generate.py --network=network-final.pkl --scales=all
  python generate.py --network=network-final.pkl --scales=all --grid

  # one 8x4 grid.png of 32 seeds
  python generate.py --network=network-final.pkl --seeds=0-31 --grid=8x4

  # StyleGAN's style-mixing figure (mix.png): coarse styles of the columns
  python generate.py --network=network-final.pkl --mix-rows=0-3 \\
      --mix-cols=10-13 --mix-layers=0-3

  # interp.gif (and interp.mp4 if imageio with ffmpeg is installed):
  # 30 frames from each seed to the next, a straight line in w space
  python generate.py --network=network-final.pkl --interp=0-4 --frames=30

  # Gs for serving: a SavedModel folder and a .keras file in out/
  python generate.py --network=network-final.pkl --export=savedmodel,keras

  # a published TF1 pickle works directly (converted on the way)
  python generate.py --network=karras2019stylegan-ffhq-1024x1024.pkl
"""


def _range(text):
    try:
        return parse_range(text)
    except UserError as e:
        raise argparse.ArgumentTypeError(str(e))


def _grid(text):
    if text == "auto":
        return text
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(
            f"bad grid '{text}': use WxH, e.g. 8x4"
        )
    return int(parts[0]), int(parts[1])


def _formats(text):
    formats = [f.strip() for f in text.split(",") if f.strip()]
    bad = [f for f in formats if f not in EXPORT_FORMATS]
    if bad or not formats:
        raise argparse.ArgumentTypeError(
            f"unknown export format '{(bad or [text])[0]}'; valid: "
            + ", ".join(EXPORT_FORMATS)
        )
    return formats


def _cutoff(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: '{text}'")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more: '{text}'")
    return value


def build_parser():
    p = argparse.ArgumentParser(
        prog="generate.py",
        description="Generate images from an MSG-StyleGAN snapshot: one PNG "
        "per seed,\na grid, a style-mixing figure or an interpolation.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = p.add_argument_group("network and output")
    g.add_argument(
        "--network",
        metavar="PATH.pkl",
        required=True,
        help="snapshot written by train.py or convert_tf1.py, or a TF1 "
        "network pickle (required)",
    )
    g.add_argument(
        "--outdir",
        metavar="DIR",
        default="out",
        help="output folder, created if needed (default: %(default)s)",
    )
    g.add_argument(
        "--batch",
        metavar="N",
        type=arg_positive(int),
        default=8,
        help="images per forward pass (default: %(default)s)",
    )
    add_verbose_flag(g)
    s = p.add_argument_group("sampling")
    s.add_argument(
        "--seeds",
        metavar="LIST",
        type=_range,
        default=None,
        help="seeds like 0-99,200, one image each (default: 0-7, or none "
        "when --mix-rows or --interp is given)",
    )
    s.add_argument(
        "--trunc",
        metavar="PSI",
        type=float,
        default=0.7,
        help="truncation psi, 1 = off (default: %(default)s)",
    )
    s.add_argument(
        "--trunc-cutoff",
        metavar="N",
        type=_cutoff,
        default=None,
        help="layers truncated (default: the network's, 8)",
    )
    s.add_argument(
        "--noise-mode",
        metavar="MODE",
        choices=["const", "random", "none"],
        default="const",
        help="%(choices)s; random noise is drawn from each seed, so it "
        "repeats too (default: %(default)s)",
    )
    s.add_argument(
        "--scales",
        metavar="WHICH",
        choices=["top", "all"],
        default="top",
        help="top: the full-size image; all: every scale upsampled side by "
        "side, coarse to fine (default: %(default)s)",
    )
    s.add_argument(
        "--grid",
        metavar="WxH",
        nargs="?",
        const="auto",
        type=_grid,
        default=None,
        help="one grid.png of all seeds instead of one file each; bare "
        "--grid picks a near-square layout, rows = seeds with --scales=all "
        "(default: off)",
    )
    m = p.add_argument_group("style mixing (mix.png)")
    m.add_argument(
        "--mix-rows",
        metavar="LIST",
        type=_range,
        default=None,
        help="seeds whose styles fill the rows (default: none)",
    )
    m.add_argument(
        "--mix-cols",
        metavar="LIST",
        type=_range,
        default=None,
        help="seeds whose styles are copied in (default: none)",
    )
    m.add_argument(
        "--mix-layers",
        metavar="LIST",
        type=_range,
        default=[0, 1, 2, 3],
        help="style layers taken from the column seed; 0-3 coarse, 4-7 "
        "middle, 8 and up fine (default: 0-3)",
    )
    e = p.add_argument_group("export (Gs for serving)")
    e.add_argument(
        "--export",
        metavar="LIST",
        type=_formats,
        default=None,
        help="also write Gs to --outdir as savedmodel (Gs-savedmodel/), "
        "keras (Gs.keras) and/or onnx (Gs.onnx), comma-separated; "
        "(z, truncation_psi) -> images at every scale (default: none)",
    )
    i = p.add_argument_group("interpolation (interp.gif, interp.mp4)")
    i.add_argument(
        "--interp",
        metavar="LIST",
        type=_range,
        default=None,
        help="seeds to walk through in order, linearly in w after "
        "truncation (default: none)",
    )
    i.add_argument(
        "--frames",
        metavar="N",
        type=arg_positive(int),
        default=24,
        help="frames from one seed to the next (default: %(default)s)",
    )
    i.add_argument(
        "--fps",
        metavar="N",
        type=arg_positive(int),
        default=24,
        help="frames per second (default: %(default)s)",
    )
    return p


def check_args(args):
    """Cross-option checks; fills in the default seeds."""
    if (args.mix_rows is None) != (args.mix_cols is None):
        raise UserError("--mix-rows and --mix-cols go together: give both")
    if args.interp is not None and len(args.interp) < 2:
        raise UserError("--interp needs at least two seeds, e.g. 0-3")
    if (
        args.seeds is None
        and args.mix_rows is None
        and args.interp is None
        and args.export is None
    ):
        args.seeds = list(range(8))
    if args.grid not in (None, "auto") and args.seeds:
        cols, rows = args.grid
        if args.scales == "all":
            raise UserError(
                "--grid=WxH with --scales=all: the layout is fixed (a row "
                "per seed, a column per scale); use a bare --grid"
            )
        if cols * rows < len(args.seeds):
            raise UserError(
                f"--grid={cols}x{rows} holds {cols * rows} images, "
                f"--seeds has {len(args.seeds)}"
            )
    if args.trunc < 0:
        raise UserError(f"--trunc must be 0 or more, got {args.trunc}")
    return args


def check_outdir(path):
    """Fail fast, before the slow framework import, if `path` can't be made.

    Nothing is created yet, so a bad --network leaves no empty folder.
    """
    parent = os.path.abspath(path)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise UserError(
            f"cannot create outdir '{path}': '{parent}' is not a directory"
        )
    if not os.access(parent, os.W_OK):
        what = "outdir" if parent == os.path.abspath(path) else "folder"
        raise UserError(f"{what} '{parent}' is not writable")


def make_outdir(path):
    """Create the output folder, or fail with a one-line reason."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create outdir '{path}': {e.strerror}")
    if not os.access(path, os.W_OK):
        raise UserError(f"outdir '{path}' is not writable")


def write_seed_images(G, args, inference):
    """One PNG per seed (or grid.png), full size or every scale."""
    seeds = args.seeds
    progress = Progress(len(seeds), desc="Generating", unit="img")
    kept = []
    for chunk, scales in inference.iter_images(
        G,
        seeds,
        truncation_psi=args.trunc,
        truncation_cutoff=args.trunc_cutoff,
        noise_mode=args.noise_mode,
        batch=args.batch,
        progress=progress,
    ):
        if args.scales == "all":
            imgs = images.to_uint8(images.scales_strip(scales))
        else:
            imgs = images.to_uint8(scales[-1])
        if args.grid is not None:
            kept.append(imgs)
            continue
        suffix = "-scales" if args.scales == "all" else ""
        for seed, img in zip(chunk, imgs):
            path = os.path.join(args.outdir, f"seed{seed:04d}{suffix}.png")
            images.write_png(path, img)
    progress.close()
    if args.grid is None:
        print(f"Wrote {len(seeds)} images to '{args.outdir}'")
        return
    imgs = np.concatenate(kept)
    if args.scales == "all":
        # A strip per seed stacked vertically: rows = seeds, cols = scales.
        grid = images.tile(imgs, 1, len(imgs))
    else:
        cols, rows = (
            images.auto_grid(len(imgs)) if args.grid == "auto" else args.grid
        )
        grid = images.tile(imgs, cols, rows)
    path = os.path.join(args.outdir, "grid.png")
    images.write_png(path, grid)
    print(f"Wrote '{path}' ({len(seeds)} seeds)")


def write_mix(G, args, inference):
    n = len(args.mix_cols) + len(args.mix_rows) * (len(args.mix_cols) + 1)
    progress = Progress(n, desc="Style mixing", unit="img")
    figure = inference.style_mix(
        G,
        args.mix_rows,
        args.mix_cols,
        args.mix_layers,
        truncation_psi=args.trunc,
        truncation_cutoff=args.trunc_cutoff,
        noise_mode=args.noise_mode,
        batch=args.batch,
        progress=progress,
    )
    progress.close()
    path = os.path.join(args.outdir, "mix.png")
    images.write_png(path, figure)
    print(f"Wrote '{path}'")


def write_interp(G, args, inference):
    n = (len(args.interp) - 1) * args.frames + 1
    progress = Progress(n, desc="Interpolating", unit="frame")
    frames = inference.interpolate(
        G,
        args.interp,
        args.frames,
        truncation_psi=args.trunc,
        truncation_cutoff=args.trunc_cutoff,
        noise_mode=args.noise_mode,
        batch=args.batch,
        progress=progress,
    )
    progress.close()
    gif = os.path.join(args.outdir, "interp.gif")
    images.write_gif(gif, frames, fps=args.fps)
    mp4 = os.path.join(args.outdir, "interp.mp4")
    if images.write_mp4(mp4, frames, fps=args.fps):
        print(f"Wrote '{gif}' and '{mp4}' ({len(frames)} frames)")
    else:
        print(
            f"Wrote '{gif}' ({len(frames)} frames; no MP4: imageio with "
            "ffmpeg is not installed)"
        )


def main(argv=None):
    args = check_args(build_parser().parse_args(argv))
    check_outdir(args.outdir)
    quiet_framework_logs(args.verbose)
    # The framework loads only now, so --help and flag errors are instant.
    from msg_stylegan import inference

    G, cfg = inference.load_network(args.network)
    make_outdir(args.outdir)
    print(
        f"Loaded '{args.network}': {cfg.name} at "
        f"{cfg.img_resolution}x{cfg.img_resolution}"
    )
    if args.seeds:
        write_seed_images(G, args, inference)
    if args.mix_rows is not None:
        write_mix(G, args, inference)
    if args.interp is not None:
        write_interp(G, args, inference)
    if args.export is not None:
        from training import export

        for fmt in args.export:
            print(f"Wrote '{export.export(G, args.outdir, fmt)}'")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
