"""FID (Heusel et al. 2017) and KID (Binkowski et al. 2018) between two sets.

Each set is a folder of images, a .zip of images (optionally `path.zip:prefix/`
to use only the members under a prefix) or an FID statistics .npz holding
`mu` and `sigma`. Both sides must be made with the same resize mode and
feature network; the statistics this command writes record both.
"""

import argparse
import io
import os
import re
import sys
import time
import zipfile

import numpy as np

from dnnlib.util import UserError, format_time, run_cli
from metrics import DEFAULT_RESIZE, RESIZE_MODES

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")

EPILOG = """examples:
  # CIFAR-10 test split against ../shared's train statistics, which were
  # made in half-pixel mode (recognised by their hash)
  python -m metrics.fid_between data/cifar10_jpeg.zip:test/ \\
      data/fid_stats_cifar10jpeg_train50k.npz --fid-resize=half-pixel

  # two folders of samples, FID and KID on the first 5000 of each
  python -m metrics.fid_between out/run1 out/run2 --max-images=5000 --kid

  # write a set's statistics (they record --fid-resize and the network)
  python -m metrics.fid_between data/cifar10_jpeg.zip:train/ \\
      --save-stats=cifar10-train-tf1.npz

  # a plain mu/sigma file from pytorch-fid (half-pixel) instead of TTUR's
  python -m metrics.fid_between samples/ pytorch_fid_stats.npz \\
      --stats-resize=half-pixel --fid-resize=half-pixel

Resize modes (--fid-resize): tf1 is TensorFlow 1's bilinear resize inside
the inception-2015-12-05 graph (TTUR, NVlabs, the published FIDs);
half-pixel is pytorch-fid's and tf.image.resize's. A .npz that does not
record its mode is taken as tf1, with a warning, unless --stats-resize says
otherwise.
"""


class ImageSet:
    """A folder or zip of images, read in sorted name order.

    Args:
        label: `A` or `B`, for messages.
        path: the folder or .zip.
        prefix: in a zip, use only the members whose names start with it.
    """

    def __init__(self, label, path, prefix=""):
        self.label, self.path, self.prefix = label, path, prefix
        self.is_zip = os.path.isfile(path)
        if self.is_zip:
            try:
                with zipfile.ZipFile(path) as zf:
                    names = zf.namelist()
            except (zipfile.BadZipFile, OSError) as e:
                raise UserError(f"{label}: cannot read zip '{path}': {e}")
            self.names = sorted(
                n
                for n in names
                if n.startswith(prefix) and n.lower().endswith(IMAGE_EXTS)
            )
        else:
            names = []
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for f in files:
                    if f.lower().endswith(IMAGE_EXTS):
                        names.append(
                            os.path.relpath(os.path.join(root, f), path)
                        )
            self.names = sorted(names)
        if not self.names:
            where = f"'{path}'" + (f" under '{prefix}'" if prefix else "")
            raise UserError(
                f"{label}: no images ({', '.join(IMAGE_EXTS)}) in {where}"
            )

    def batches(self, batch_size, max_images=None):
        """uint8 [n, H, W, 3] batches; a new batch starts when sizes change."""
        from PIL import Image

        names = self.names[:max_images] if max_images else self.names
        zf = zipfile.ZipFile(self.path) if self.is_zip else None
        try:
            batch = []
            for name in names:
                try:
                    if zf is not None:
                        file = io.BytesIO(zf.read(name))
                    else:
                        file = os.path.join(self.path, name)
                    with Image.open(file) as img:
                        arr = np.asarray(img.convert("RGB"))
                except (OSError, ValueError) as e:
                    raise UserError(
                        f"{self.label}: cannot decode '{name}': {e}"
                    )
                if batch and (
                    arr.shape != batch[0].shape or len(batch) == batch_size
                ):
                    yield np.stack(batch)
                    batch = []
                batch.append(arr)
            if batch:
                yield np.stack(batch)
        finally:
            if zf is not None:
                zf.close()


def open_source(label, text):
    """`path`, `path.zip:prefix` or `stats.npz` -> ImageSet or npz path."""
    path, prefix = text, ""
    m = re.fullmatch(r"(.+\.zip):(.*)", text, flags=re.IGNORECASE)
    if m and not os.path.exists(text):
        path, prefix = m.group(1), m.group(2)
    if not os.path.exists(path):
        raise UserError(f"{label}: '{path}' does not exist")
    if os.path.isfile(path) and path.lower().endswith(".npz"):
        return path
    if os.path.isfile(path) and not zipfile.is_zipfile(path):
        raise UserError(
            f"{label}: '{path}' is neither a folder, a .zip of images nor "
            "a statistics .npz"
        )
    return ImageSet(label, path, prefix)


def npz_features(label, path):
    """The `features` array of a statistics .npz (KID needs them)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            if "features" in f.files:
                return f["features"]
    except (OSError, ValueError) as e:
        raise UserError(f"{label}: cannot read statistics '{path}': {e}")
    raise UserError(
        f"{label}: '{path}' has no 'features' for KID; give images instead "
        "or drop --kid"
    )


def source_stats(
    label, source, extractor, max_images, need_features, stats_resize=None
):
    """(mu, sigma, features or None, number of images, Origin) of one set.

    A .npz gives its recorded (or known, or stated, or assumed) origin;
    images are made with the extractor's resize mode and network.
    """
    from metrics.feature_stats import load_fid_stats

    if isinstance(source, str):
        mu, sigma, origin = load_fid_stats(source, stats_resize)
        feats = npz_features(label, source) if need_features else None
        return mu, sigma, feats, None, origin
    stats = image_stats(label, source, extractor, max_images, need_features)
    mu, sigma = stats.mean_cov()
    feats = stats.features() if need_features else None
    return mu, sigma, feats, stats.num_items, stats.origin


def image_stats(label, source, extractor, max_images, need_features):
    """FeatureStats of an ImageSet's first `max_images` images."""
    from metrics.feature_stats import compute_stats_for_images

    n = len(source.names)
    if max_images:
        n = min(n, max_images)
    return compute_stats_for_images(
        source.batches(extractor.batch_size, n),
        extractor,
        max_items=n,
        capture_all=need_features,
        desc=label,
    )


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an integer")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="python -m metrics.fid_between",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = p.add_argument_group("image sets")
    g.add_argument("a", metavar="A", help="folder, .zip[:prefix] or .npz")
    g.add_argument(
        "b",
        metavar="B",
        nargs="?",
        default=None,
        help="folder, .zip[:prefix] or .npz (omit with --save-stats)",
    )
    g.add_argument(
        "--max-images",
        metavar="N",
        type=positive_int,
        default=None,
        help="use the first N images of each set (default: all)",
    )
    g.add_argument(
        "--save-stats",
        metavar="PATH",
        default=None,
        help="write the statistics of the images A to PATH (.npz, with "
        "features when --kid) instead of comparing with B (default: none)",
    )
    g = p.add_argument_group("computation")
    g.add_argument(
        "--fid-resize",
        metavar="MODE",
        choices=RESIZE_MODES,
        default=DEFAULT_RESIZE,
        help="resize to 299x299: tf1 (TF1's legacy bilinear, as the "
        "published FIDs) or half-pixel (pytorch-fid's) "
        "(default: %(default)s)",
    )
    g.add_argument(
        "--stats-resize",
        metavar="MODE",
        choices=RESIZE_MODES,
        default=None,
        help="the resize mode of a .npz that does not record one "
        "(default: assume tf1, as TTUR's files, with a warning)",
    )
    g.add_argument(
        "--inception",
        metavar="PATH",
        default=None,
        help="Inception weights, .npz or pytorch-fid .pth (default: "
        "$MSG_STYLEGAN_INCEPTION, then ~/.cache/msg_stylegan, then download)",
    )
    g.add_argument(
        "--batch",
        metavar="B",
        type=positive_int,
        default=50,
        help="images per Inception batch (default: %(default)s)",
    )
    g.add_argument(
        "--kid",
        action="store_true",
        help="also report KID (needs images, not .npz, on both sides)",
    )
    return p.parse_args(argv)


def save_stats(args, a):
    """`--save-stats`: the statistics of the images A, written to a file."""
    from metrics.inception import feature_extractor

    if not isinstance(a, ImageSet):
        raise UserError("--save-stats needs images as A, not a .npz")
    start = time.time()
    extractor = feature_extractor(
        args.inception, batch_size=args.batch, resize=args.fid_resize
    )
    stats = image_stats("A", a, extractor, args.max_images, args.kid)
    try:
        stats.save(args.save_stats)
    except OSError as e:
        raise UserError(f"cannot write '{args.save_stats}': {e}")
    print(
        f"images A {stats.num_items} time {format_time(time.time() - start)}"
        f" resize={stats.origin.resize} network={stats.origin.network}"
    )
    print(f"wrote {args.save_stats}")
    return 0


def main(argv=None):
    args = parse_args(argv)
    if (args.b is None) == (args.save_stats is None):
        raise UserError("give either B to compare with, or --save-stats=PATH")
    a = open_source("A", args.a)
    if args.save_stats is not None:
        return save_stats(args, a)
    b = open_source("B", args.b)
    from metrics.feature_stats import (
        STANDARD_NETWORK,
        Origin,
        check_same_origin,
    )

    # Statistics files first: made differently from each other, or from
    # the images' --fid-resize, they fail before the slow part.
    done = {}
    for label, src in (("A", a), ("B", b)):
        if isinstance(src, str):
            done[label] = source_stats(
                label, src, None, None, args.kid, args.stats_resize
            )
    if len(done) == 1:
        [(label, st)] = done.items()
        other = "B" if label == "A" else "A"
        images = Origin(args.fid_resize, STANDARD_NETWORK)
        check_same_origin(images, st[4], f"{other} (images)", label)
    start = time.time()
    if len(done) < 2:
        from metrics.inception import feature_extractor

        extractor = feature_extractor(
            args.inception, batch_size=args.batch, resize=args.fid_resize
        )
        for label, src in (("A", a), ("B", b)):
            if label not in done:
                done[label] = source_stats(
                    label, src, extractor, args.max_images, args.kid
                )
    mu_a, s_a, f_a, n_a, o_a = done["A"]
    mu_b, s_b, f_b, n_b, o_b = done["B"]
    check_same_origin(o_a, o_b)
    if mu_a.shape != mu_b.shape:
        raise UserError(
            f"A has {len(mu_a)}-d statistics but B has {len(mu_b)}-d ones"
        )
    from metrics.fid import fid_from_stats

    counts = " ".join(
        f"{label} {n if n is not None else 'stats'}"
        for label, n in (("A", n_a), ("B", n_b))
    )
    print(f"images {counts} time {format_time(time.time() - start)}")
    print(f"fid {fid_from_stats(mu_a, s_a, mu_b, s_b):.4f} resize={o_a.resize}")
    if args.kid:
        from metrics.kid import kid_from_features

        print(f"kid {kid_from_features(f_a, f_b):.6f} resize={o_a.resize}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
