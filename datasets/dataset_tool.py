"""The dataset CLI: create StyleGAN TFRecords datasets, inspect, extract.

`python -m datasets.dataset_tool <command> ...`; `--help` on any command shows
its options. TensorFlow is imported only by the commands that write or read
tfds, so `--help` and flag errors are instant.
"""

import argparse
import os
import sys

from dnnlib.util import (
    Progress,
    UserError,
    add_verbose_flag,
    arg_positive,
    quiet_framework_logs,
    run_cli,
)

EPILOG = """\
examples:
  # a folder (or .zip) of square power-of-two images, classes from folders
  python -m datasets.dataset_tool create_from_images data/flowers \\
      ~/flowers.zip --labels
  # photos of any size: crop the centre square and resize to 256
  python -m datasets.dataset_tool create_from_images data/ffhq256 ~/photos \\
      --resolution 256 --transform center-crop
  # CIFAR-10 from cifar-10-python.tar.gz (or its extracted folder)
  python -m datasets.dataset_tool create_cifar10 data/cifar10 \\
      ~/cifar-10-python.tar.gz
  # a prepared tensorflow-datasets dataset (never downloads)
  python -m datasets.dataset_tool create_from_tfds data/flowers102 \\
      oxford_flowers102 --tfds-data-dir ~/tensorflow_datasets \\
      --resolution 256 --transform center-crop
  # the built-in synthetic shapes, for a demo that runs offline
  python -m datasets.dataset_tool create_synthetic data/shapes32
  python -m datasets.dataset_tool info data/shapes32
  python -m datasets.dataset_tool preview data/shapes32 --out shapes.png
  python -m datasets.dataset_tool extract data/shapes32 shapes_png \\
      --max-images 100
"""


def _resolution(text):
    value = arg_positive(int)(text)
    if value & (value - 1) or not 4 <= value <= 1024:
        raise argparse.ArgumentTypeError(
            f"{value} is not a power of two in 4..1024"
        )
    return value


def _grid(text):
    try:
        cols, rows = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not COLSxROWS like 8x8")
    if cols <= 0 or rows <= 0:
        raise argparse.ArgumentTypeError(f"'{text}' must be positive")
    return cols, rows


def _add_output(p):
    g = p.add_argument_group("output")
    g.add_argument(
        "out_dir",
        metavar="OUT_DIR",
        help="dataset directory to create; its name prefixes the files",
    )
    g.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a dataset already in OUT_DIR (default: refuse)",
    )
    return g


def _add_selection(p, labels=True):
    g = p.add_argument_group("selection")
    g.add_argument(
        "--max-images",
        type=arg_positive(int),
        metavar="N",
        default=None,
        help="use only the first N inputs in sorted order (default: all)",
    )
    g.add_argument(
        "--shuffle",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="store the images in a random order, as StyleGAN's "
        "tool (default: %(default)s)",
    )
    g.add_argument(
        "--seed",
        type=int,
        metavar="N",
        default=0,
        help="seed of the shuffle (default: %(default)s)",
    )
    if labels:
        g.add_argument(
            "--labels",
            action="store_true",
            help="store one-hot class labels (default: off)",
        )


def _add_image_options(p):
    g = p.add_argument_group("images")
    g.add_argument(
        "--resolution",
        type=_resolution,
        metavar="RES",
        default=None,
        help="output size; needs --transform unless the inputs "
        "are already RES x RES (default: the inputs' size)",
    )
    g.add_argument(
        "--transform",
        choices=("center-crop", "pad"),
        metavar="{center-crop,pad}",
        default=None,
        help="make non-square or other-size images square, then "
        "Lanczos-resize to RES (default: none, such images are "
        "an error)",
    )
    g.add_argument(
        "--grayscale",
        action="store_true",
        help="store 1-channel images (default: RGB; grayscale "
        "and RGBA inputs become RGB)",
    )
    g.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip and count unreadable images (default: stop at "
        "the first, naming it)",
    )


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m datasets.dataset_tool",
        description="Create, inspect and extract StyleGAN multi-resolution "
        "TFRecords datasets.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True
    )

    def add(name, help_text):
        return sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    p = add(
        "create_from_images",
        "Create a dataset from an image folder or "
        ".zip (recursive; jpg, jpeg, png, webp, bmp).",
    )
    _add_output(p)
    p.add_argument(
        "image_dir",
        metavar="IMAGE_DIR",
        help="folder or .zip of images; with --labels, each "
        "image's parent folder is its class",
    )
    _add_image_options(p)
    _add_selection(p)

    p = add(
        "create_cifar10",
        "Create a dataset from CIFAR-10's python batches (with labels).",
    )
    _add_output(p)
    p.add_argument(
        "cifar_dir",
        metavar="CIFAR_DIR",
        help="folder holding data_batch_1..5 and test_batch, or "
        "cifar-10-python.tar.gz",
    )
    p.add_argument(
        "--split",
        choices=("train", "test"),
        metavar="SPLIT",
        default="train",
        help="train (50,000 images) or test (10,000) (default: %(default)s)",
    )
    _add_selection(p, labels=False)

    p = add(
        "create_from_tfds",
        "Create a dataset from a prepared "
        "tensorflow-datasets dataset or a local ImageFolder (never "
        "downloads).",
    )
    _add_output(p)
    p.add_argument(
        "name",
        metavar="NAME",
        help="tfds name (cifar10, oxford_flowers102, celeb_a) or "
        "the path of a local <split>/<class>/<image> folder",
    )
    p.add_argument(
        "--split",
        metavar="SPLIT",
        default="train",
        help="split to read (default: %(default)s)",
    )
    p.add_argument(
        "--tfds-data-dir",
        metavar="DIR",
        default=None,
        help="where the prepared tfds data is (default: tfds' "
        "own, ~/tensorflow_datasets)",
    )
    add_verbose_flag(p)
    _add_image_options(p)
    _add_selection(p)

    p = add(
        "create_synthetic",
        "Create the built-in synthetic shapes "
        "dataset (deterministic, offline).",
    )
    _add_output(p)
    p.add_argument(
        "--resolution",
        type=_resolution,
        metavar="RES",
        default=32,
        help="image size (default: %(default)s)",
    )
    p.add_argument(
        "--num-images",
        type=arg_positive(int),
        metavar="N",
        default=2000,
        help="number of images (default: %(default)s)",
    )
    p.add_argument(
        "--seed",
        type=int,
        metavar="N",
        default=0,
        help="same seed, same images (default: %(default)s)",
    )
    p.add_argument(
        "--small-shapes",
        type=int,
        choices=range(5),
        metavar="K",
        default=4,
        help="small discs and squares drawn over each image, 0 to 4 "
        "(fine detail; the demo uses 0) (default: %(default)s)",
    )
    p.add_argument(
        "--simple",
        action="store_true",
        help="centred upright shapes of about one size, two or three wide "
        "stripes: learnable at 16x16 in minutes (the demo's) (default: off)",
    )
    p.add_argument(
        "--labels",
        action="store_true",
        help="store the main shape's kind (disc, square, stripes) "
        "as a one-hot label (default: off)",
    )

    p = add("info", "Describe a dataset.")
    p.add_argument("data", metavar="DIR", help="dataset directory")
    p.add_argument(
        "--verify",
        action="store_true",
        help="read every record of every resolution and check its checksums "
        "and image shape; list the bad ones (default: off)",
    )

    p = add("extract", "Write a dataset's images back out as PNG files.")
    p.add_argument("data", metavar="DIR", help="dataset directory")
    p.add_argument("out", metavar="OUT", help="folder for img00000000.png ...")
    p.add_argument(
        "--max-images",
        type=arg_positive(int),
        metavar="N",
        default=None,
        help="extract only the first N (default: all)",
    )
    p.add_argument(
        "--res",
        type=_resolution,
        metavar="RES",
        default=None,
        help="resolution to extract (default: the full one)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="write into OUT even if it is not empty (default: refuse)",
    )

    p = add("preview", "Save a grid PNG of the first images.")
    p.add_argument("data", metavar="DIR", help="dataset directory")
    p.add_argument(
        "--out",
        metavar="FILE.png",
        default=None,
        help="output file (default: <name>-preview.png here)",
    )
    p.add_argument(
        "--grid",
        type=_grid,
        metavar="COLSxROWS",
        default="8x8",
        help="images across and down (default: %(default)s)",
    )
    p.add_argument(
        "--res",
        type=_resolution,
        metavar="RES",
        default=None,
        help="resolution to show (default: the full one)",
    )
    return parser


# ---------------------------------------------------------------------------
# Creation


def _write(out_dir, stream, *, overwrite, class_names=None, desc="create"):
    """Write an ImageStream (or (img, label) iterable) as a dataset."""
    import numpy as np

    from datasets import tfrecords

    labels = []
    with tfrecords.DatasetWriter(out_dir, overwrite=overwrite) as writer:
        progress = Progress(len(stream), desc=desc)
        skipped = getattr(stream, "skipped", [])
        done = 0
        for img, label in stream:
            writer.add_image(img)
            labels.append(label)
            # Skipped inputs count as done, so the bar reaches its end.
            progress.update(len(skipped) + len(labels) - done)
            done = len(skipped) + len(labels)
        if len(skipped) + len(labels) > done:
            progress.update(len(skipped) + len(labels) - done)
        progress.close()
        if writer.num_images == 0:
            raise UserError(
                f"all {len(skipped)} images were unreadable; nothing written"
            )
        if class_names is not None:
            onehot = np.zeros((len(labels), len(class_names)), np.float32)
            onehot[np.arange(len(labels)), labels] = 1.0
            writer.set_labels(onehot)
    if skipped:
        print(
            f"skipped {len(skipped)} unreadable image(s), e.g. {skipped[0][1]}",
            file=sys.stderr,
        )
    res = writer.resolution
    print(
        f"wrote {writer.num_images} images of {res}x{res}x"
        f"{writer.channels} to '{writer.out_dir}'"
        + (f" with {len(class_names)} classes" if class_names else "")
    )


def _check_output(args):
    from datasets import tfrecords

    tfrecords.check_output_dir(args.out_dir, args.overwrite)


def _stream(args, source):
    from datasets import sources

    return sources.ImageStream(
        source,
        channels=1 if args.grayscale else 3,
        resolution=args.resolution,
        transform=args.transform,
        skip_bad=args.skip_bad,
    )


def cmd_create_from_images(args):
    from datasets import sources

    _check_output(args)
    source = sources.image_folder_source(
        args.image_dir,
        labels=args.labels,
        max_images=args.max_images,
        shuffle=args.shuffle,
        seed=args.seed,
    )
    stream = _stream(args, source)
    _write(
        args.out_dir,
        stream,
        overwrite=args.overwrite,
        class_names=source.class_names,
    )


def cmd_create_cifar10(args):
    from datasets import sources

    _check_output(args)
    source = sources.cifar10_source(
        args.cifar_dir,
        split=args.split,
        max_images=args.max_images,
        shuffle=args.shuffle,
        seed=args.seed,
    )
    _write(
        args.out_dir,
        sources.ImageStream(source),
        overwrite=args.overwrite,
        class_names=source.class_names,
    )


def cmd_create_from_tfds(args):
    quiet_framework_logs(args.verbose)  # before tfds imports TensorFlow
    from datasets import sources

    _check_output(args)
    source = sources.tfds_source(
        args.name,
        split=args.split,
        data_dir=args.tfds_data_dir,
        labels=args.labels,
        max_images=args.max_images,
        shuffle=args.shuffle,
        seed=args.seed,
    )
    _write(
        args.out_dir,
        _stream(args, source),
        overwrite=args.overwrite,
        class_names=source.class_names,
    )


class _Sized:
    def __init__(self, it, n):
        self.it, self.n = it, n

    def __len__(self):
        return self.n

    def __iter__(self):
        return iter(self.it)


def cmd_create_synthetic(args):
    from datasets import synthetic

    _check_output(args)
    it = synthetic.iterate_images(
        args.num_images,
        args.resolution,
        args.seed,
        args.small_shapes,
        simple=args.simple,
    )
    _write(
        args.out_dir,
        _Sized(it, args.num_images),
        overwrite=args.overwrite,
        class_names=list(synthetic.CLASSES) if args.labels else None,
    )


# ---------------------------------------------------------------------------
# Inspection


def _format_bytes(n):
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def verify(path):
    """Check every record of every .tfrecords file in `path`.

    Returns (files, records); problems are one UserError listing the first
    few bad records of each file.
    """
    import glob

    from datasets import tfrecords

    files = sorted(glob.glob(os.path.join(glob.escape(path), "*.tfrecords")))
    if not files:
        tfrecords.find_dataset(path)  # names what is wrong with `path`
    total = sum(os.path.getsize(f) for f in files)
    bar = Progress(total, "verify", unit="B")
    problems, records = [], 0
    for f in files:
        seen = []
        found = tfrecords.verify_file(f, progress=seen.append)
        records += len(seen)
        bar.update(os.path.getsize(f))
        if found:
            more = len(found) - 3
            problems.append(
                "; ".join(found[:3])
                + (f" (and {more} more)" if more > 0 else "")
            )
    bar.close()
    if problems:
        raise UserError(
            " | ".join(problems) + ": rebuild the dataset from its images"
        )
    return len(files), records


def cmd_info(args):
    from datasets import tfrecords

    if args.verify:
        n_files, n_records = verify(args.data)
    info = tfrecords.find_dataset(args.data)
    size = sum(os.path.getsize(f) for f in info.files.values())
    if info.labels_file:
        size += os.path.getsize(info.labels_file)
        labels = info.load_labels()
        onehot = bool(
            ((labels == 0) | (labels == 1)).all()
            and (labels.sum(axis=1) == 1).all()
        )
        counts = labels.sum(axis=0).astype(int).tolist() if onehot else None
        label_text = f"{info.label_dim} " + (
            f"classes (one-hot), per class {counts}" if onehot else "values"
        )
    else:
        label_text = "none"
    res = ", ".join(str(r) for r in info.resolutions)
    rows = [
        ("dataset", info.name),
        ("path", os.path.abspath(info.path)),
        ("images", f"{info.num_images}"),
        ("resolution", f"{info.resolution}x{info.resolution} (stored: {res})"),
        ("channels", f"{info.channels}"),
        ("labels", label_text),
        ("size", _format_bytes(size)),
    ]
    if args.verify:
        rows.append(
            (
                "verified",
                f"{n_records} records in {n_files} files: checksums and "
                "image shapes good",
            )
        )
    for key, value in rows:
        print(f"{key:<11}{value}")


def cmd_extract(args):
    import shutil
    import tempfile

    from datasets import tfrecords
    from dnnlib.images import write_png

    info = tfrecords.find_dataset(args.data)
    out = os.path.abspath(args.out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserError(f"output '{args.out}' exists and is not a folder")
    if os.path.isdir(out) and os.listdir(out) and not args.overwrite:
        raise UserError(
            f"output folder '{args.out}' is not empty; use "
            "--overwrite to write into it"
        )
    n = info.num_images
    if args.max_images is not None:
        n = min(n, args.max_images)
    # Write beside OUT and move in at the end: no half-extracted folder.
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=os.path.basename(out) + ".tmp-", dir=parent)
    try:
        progress = Progress(n, desc="extract")
        for i, img in enumerate(
            tfrecords.iterate_images(info, res=args.res, max_images=n)
        ):
            write_png(os.path.join(tmp, f"img{i:08d}.png"), img)
            progress.update()
        progress.close()
        if os.path.isdir(out):
            for name in os.listdir(tmp):
                os.replace(os.path.join(tmp, name), os.path.join(out, name))
            os.rmdir(tmp)
        else:
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"extracted {n} images to '{args.out}'")


def cmd_preview(args):
    import numpy as np

    from datasets import tfrecords
    from dnnlib.images import write_grid

    info = tfrecords.find_dataset(args.data)
    cols, rows = args.grid
    imgs = list(
        tfrecords.iterate_images(info, res=args.res, max_images=cols * rows)
    )
    out = args.out or f"{info.name}-preview.png"
    write_grid(out, np.stack(imgs), (cols, rows))
    print(f"saved a {cols}x{rows} grid of {len(imgs)} images to '{out}'")


COMMANDS = {
    "create_from_images": cmd_create_from_images,
    "create_cifar10": cmd_create_cifar10,
    "create_from_tfds": cmd_create_from_tfds,
    "create_synthetic": cmd_create_synthetic,
    "info": cmd_info,
    "extract": cmd_extract,
    "preview": cmd_preview,
}


def main(argv=None):
    args = build_parser().parse_args(argv)
    COMMANDS[args.command](args)


if __name__ == "__main__":
    run_cli(main)
