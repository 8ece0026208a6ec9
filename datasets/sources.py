"""Image readers (folders, zips, CIFAR-10 batches, tfds); the skip/fail policy.

A source is a sized, ordered sequence of `Item`s: a name for messages, a
`load()` that returns a PIL image or a uint8 array (raising `BadImage` when the
bytes cannot be decoded), and an optional class index. `ImageStream` turns a
source into uniform uint8 HWC arrays: it converts colour modes, applies the
explicit crop/pad transform, checks that every image has the same size and
either fails on a bad file (naming it) or skips and counts it.
"""

import dataclasses
import difflib
import io
import os
import pickle
import tarfile
import zipfile

import numpy as np

from dnnlib.util import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
TRANSFORMS = ("center-crop", "pad")
_TRANSFORM_HINT = (
    "pass --resolution N with --transform center-crop or --transform pad"
)


class BadImage(Exception):
    """An input file that cannot be decoded as an image."""


@dataclasses.dataclass
class Item:
    """One input image: `name` for messages, `load()` for the pixels."""

    name: str
    load: object
    label: int | None = None


@dataclasses.dataclass
class Source:
    """A sized, ordered sequence of Items, with class names if labelled."""

    description: str
    items: object  # a list, or a callable returning an iterator
    num_items: int
    class_names: list | None = None

    def __len__(self):
        return self.num_items

    def __iter__(self):
        if callable(self.items):
            return iter(self.items())
        return iter(self.items)


def _order(n, max_images, shuffle, seed):
    """Indices to read: the first `max_images` of n, optionally permuted."""
    idx = np.arange(n if max_images is None else min(n, max_images))
    if shuffle:
        idx = np.random.default_rng(seed).permutation(idx)
    return idx


def decode_bytes(data, name):
    """Decode encoded image bytes with Pillow, fully, or raise BadImage."""
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(io.BytesIO(data))
        img.load()
        return img
    except UnidentifiedImageError:
        reason = "not a recognised image format"
    except (
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombError,
    ) as e:
        reason = str(e) or type(e).__name__
    raise BadImage(f"cannot decode image '{name}': {reason}")


def _read_file(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise BadImage(f"cannot read '{path}': {e.strerror}") from None


def _is_image(name):
    base = os.path.basename(name)
    return not base.startswith(".") and base.lower().endswith(IMAGE_EXTENSIONS)


def _class_of(rel, root):
    parts = rel.replace("\\", "/").split("/")
    if len(parts) < 2:
        raise UserError(
            f"--labels takes the class from the parent folder, but "
            f"'{os.path.join(root, rel)}' is not in a class folder"
        )
    return parts[-2]


def image_folder_source(
    path, *, labels=False, max_images=None, shuffle=False, seed=0
):
    """Images under a folder (recursive) or inside a .zip, in sorted order.

    With `labels`, the class is the image's parent folder name; classes are
    numbered in sorted order of their names.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise UserError(f"image folder '{path}' does not exist")
    exts = " ".join(IMAGE_EXTENSIONS)
    if os.path.isdir(path):
        rels = []
        for dirpath, dirnames, filenames in os.walk(path, followlinks=True):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for f in filenames:
                if _is_image(f):
                    rel = os.path.relpath(os.path.join(dirpath, f), path)
                    rels.append(rel.replace(os.sep, "/"))
        rels.sort()

        def loader(rel):
            full = os.path.join(path, rel)
            return lambda: decode_bytes(_read_file(full), full)

        description = f"folder '{path}'"
    elif zipfile.is_zipfile(path):
        try:
            zf = zipfile.ZipFile(path)
            rels = sorted(
                m.filename
                for m in zf.infolist()
                if not m.is_dir()
                and _is_image(m.filename)
                and not m.filename.startswith("__MACOSX/")
            )
        except (OSError, zipfile.BadZipFile) as e:
            raise UserError(f"cannot read zip '{path}': {e}") from None

        def loader(rel):
            def load():
                try:
                    data = zf.read(rel)
                except (OSError, zipfile.BadZipFile, ValueError) as e:
                    raise BadImage(f"cannot read '{path}:{rel}': {e}") from None
                return decode_bytes(data, f"{path}:{rel}")

            return load

        description = f"zip '{path}'"
    else:
        raise UserError(f"'{path}' is neither a folder nor a .zip of images")
    if not rels:
        raise UserError(f"no images ({exts}) found in '{path}'")
    order = _order(len(rels), max_images, shuffle, seed)
    class_names, class_ids = None, None
    if labels:
        # Classes come from every image, not just the selected ones, so a
        # subset keeps the dataset's full label space.
        classes = [_class_of(r, path) for r in rels]
        class_names = sorted(set(classes))
        lookup = {c: i for i, c in enumerate(class_names)}
        class_ids = [lookup[c] for c in classes]
    items = [
        Item(
            name=os.path.join(path, rels[i]),
            load=loader(rels[i]),
            label=None if class_ids is None else class_ids[i],
        )
        for i in order
    ]
    return Source(description, items, len(items), class_names)


# ---------------------------------------------------------------------------
# CIFAR-10

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
CIFAR10_SPLITS = {
    "train": [f"data_batch_{i}" for i in range(1, 6)],
    "test": ["test_batch"],
}


class _BatchUnpickler(pickle.Unpickler):
    """Admit only what a CIFAR batch holds: builtins and NumPy arrays.

    A pickle runs code when loaded; this refuses anything else by name.
    """

    ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _load_batch(data, name):
    try:
        batch = _BatchUnpickler(io.BytesIO(data), encoding="bytes").load()
        images = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (
        pickle.UnpicklingError,
        EOFError,
        KeyError,
        TypeError,
        ValueError,
        AttributeError,
        IndexError,
    ) as e:
        raise UserError(
            f"'{name}' is not a CIFAR-10 python batch: {type(e).__name__}: {e}"
        ) from None
    if images.ndim != 2 or images.shape[1] != 3072:
        raise UserError(
            f"'{name}': data has shape {images.shape}, expected [N, 3072]"
        )
    if (
        labels.shape != (images.shape[0],)
        or not ((labels >= 0) & (labels < 10)).all()
    ):
        raise UserError(f"'{name}': labels must be N integers in 0..9")
    return images.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def cifar10_source(
    path, *, split="train", max_images=None, shuffle=False, seed=0
):
    """CIFAR-10 from its python batches: a folder or cifar-10-python.tar.gz."""
    path = os.fspath(path)
    names = CIFAR10_SPLITS[split]
    if not os.path.exists(path):
        raise UserError(f"CIFAR-10 input '{path}' does not exist")
    blobs = {}
    if os.path.isdir(path):
        for folder in (path, os.path.join(path, "cifar-10-batches-py")):
            if os.path.isfile(os.path.join(folder, names[0])):
                break
        for n in names:
            f = os.path.join(folder, n)
            if not os.path.isfile(f):
                raise UserError(
                    f"CIFAR-10 batch '{n}' is missing in "
                    f"'{path}' (the {split} split needs "
                    f"{', '.join(names)})"
                )
            with open(f, "rb") as fh:
                blobs[f] = fh.read()
    elif tarfile.is_tarfile(path):
        try:
            with tarfile.open(path) as tar:
                members = {
                    os.path.basename(m.name): m
                    for m in tar.getmembers()
                    if m.isfile()
                }
                for n in names:
                    if n not in members:
                        raise UserError(
                            f"CIFAR-10 batch '{n}' is missing in '{path}'"
                        )
                    blobs[f"{path}:{members[n].name}"] = tar.extractfile(
                        members[n]
                    ).read()
        except (OSError, tarfile.TarError, EOFError) as e:
            raise UserError(f"cannot read '{path}': {e}") from None
    else:
        raise UserError(
            f"'{path}' is neither a folder of CIFAR-10 batches "
            "nor cifar-10-python.tar.gz"
        )
    parts = [_load_batch(data, name) for name, data in blobs.items()]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    order = _order(len(images), max_images, shuffle, seed)
    items = [
        Item(f"{split} image {i}", (lambda i=i: images[i]), int(labels[i]))
        for i in order
    ]
    return Source(
        f"CIFAR-10 {split} from '{path}'",
        items,
        len(items),
        list(CIFAR10_CLASSES),
    )


# ---------------------------------------------------------------------------
# tensorflow-datasets


def _is_folder_name(name):
    return os.path.isdir(name) or name.startswith((".", os.sep, "~"))


def tfds_source(
    name,
    *,
    split="train",
    data_dir=None,
    labels=False,
    max_images=None,
    shuffle=False,
    seed=0,
):
    """A prepared tfds dataset, or a local `<split>/<class>/<image>` folder.

    Never downloads: a catalogue dataset must already be prepared in
    `data_dir`. A path is read with tfds' ImageFolder. Images are decoded by
    Pillow (tfds' decoding is skipped) so the skip/fail policy applies.
    """
    import tensorflow as tf
    import tensorflow_datasets as tfds

    if _is_folder_name(name):
        root = os.path.expanduser(name)
        if not os.path.isdir(root):
            raise UserError(f"image folder '{name}' does not exist")
        builder = tfds.folder_dataset.ImageFolder(root)
        if not builder.info.splits:
            raise UserError(
                f"no images found in '{name}': tfds' ImageFolder "
                "expects <split>/<class>/<image> folders"
            )
        description = f"tfds ImageFolder '{name}'"
    else:
        try:
            builder = tfds.builder(name, data_dir=data_dir, try_gcs=False)
        except tfds.core.registered.DatasetNotFoundError:
            known = tfds.list_builders(with_community_datasets=False)
            close = difflib.get_close_matches(name.split("/")[0], known, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise UserError(f"unknown tfds dataset '{name}'{hint}") from None
        except (ValueError, KeyError, AssertionError) as e:
            raise UserError(f"cannot open tfds dataset '{name}': {e}") from None
        # A missing variant folder is checked first: tfds logs a warning.
        if not os.path.isdir(builder.data_dir) or not builder.is_prepared():
            raise UserError(
                f"tfds dataset '{name}' is not prepared in '{builder.data_dir}'"
                "; this tool never downloads: prepare it where there is "
                f"internet (`tfds build {name} --data_dir DIR`) and copy DIR "
                "here, then pass --tfds-data-dir DIR"
            )
        description = f"tfds '{name}' from '{builder.data_dir}'"
    splits = builder.info.splits
    if split not in splits:
        raise UserError(
            f"'{name}' has no split '{split}' (it has "
            f"{', '.join(sorted(splits.keys()))})"
        )
    features = builder.info.features
    image_keys = [
        k for k, f in features.items() if isinstance(f, tfds.features.Image)
    ]
    if not image_keys:
        raise UserError(f"tfds dataset '{name}' has no image feature")
    image_key = "image" if "image" in image_keys else image_keys[0]
    label_key, class_names = None, None
    if labels:
        label_key = "label"
        if label_key not in features or not isinstance(
            features[label_key], tfds.features.ClassLabel
        ):
            raise UserError(
                f"tfds dataset '{name}' has no 'label' class "
                "feature to use with --labels"
            )
        class_names = list(features[label_key].names)
    n = splits[split].num_examples
    n = n if max_images is None else min(n, max_images)

    def items():
        ds = builder.as_dataset(
            split=split,
            shuffle_files=False,
            decoders={image_key: tfds.decode.SkipDecoding()},
        )
        keys = [image_key] + ([label_key] if label_key else [])
        ds = ds.map(lambda ex: {k: ex[k] for k in keys})
        ds = ds.take(n)
        if shuffle:
            ds = ds.shuffle(
                max(min(n, 10000), 1), seed=seed, reshuffle_each_iteration=False
            )
        try:
            for i, ex in enumerate(tfds.as_numpy(ds)):
                label = int(ex[label_key]) if label_key else None
                item_name = f"{name}[{split}] example {i}"
                yield Item(
                    item_name,
                    (lambda d=ex[image_key], m=item_name: decode_bytes(d, m)),
                    label,
                )
        except tf.errors.OpError as e:
            raise UserError(
                f"cannot read tfds dataset '{name}': "
                f"{e.message.splitlines()[0]}"
            ) from None

    return Source(description, items, n, class_names)


# ---------------------------------------------------------------------------
# Conversion and the skip/fail policy


def is_power_of_two(n):
    return n > 0 and n & (n - 1) == 0


def convert_image(img, *, name, channels=3, resolution=None, transform=None):
    """A PIL image or array as uint8 HWC with `channels`, transformed if asked.

    Without a transform the size must already be a square power of two (and
    equal `resolution` if given): resizing is never implicit. `center-crop`
    crops the central square, `pad` pads to a square with black; both then
    resize to `resolution` with Lanczos. Grayscale (8 or 16 bit), palette and
    RGBA inputs become RGB (alpha is dropped), or L with `channels=1`.
    """
    from PIL import Image

    if isinstance(img, np.ndarray):
        img = Image.fromarray(
            img[:, :, 0] if img.ndim == 3 and img.shape[2] == 1 else img
        )
    mode = "L" if channels == 1 else "RGB"
    if img.mode.startswith("I;16"):
        # 16-bit grayscale: Pillow's own conversion clips at 255.
        wide = np.asarray(img, dtype=np.float64) / 257.0
        img = Image.fromarray(np.rint(wide).astype(np.uint8))
    if img.mode != mode:
        if img.mode == "P" and mode == "RGB":
            img = img.convert("RGBA")
        img = img.convert(mode)
    w, h = img.size
    if transform is None:
        if w != h or not is_power_of_two(w) or not 4 <= w <= 1024:
            raise UserError(
                f"image '{name}' is {w}x{h}, not a square power "
                f"of two in 4..1024: {_TRANSFORM_HINT}"
            )
        if resolution is not None and w != resolution:
            raise UserError(
                f"image '{name}' is {w}x{h}, not "
                f"{resolution}x{resolution}: {_TRANSFORM_HINT}"
            )
    else:
        if transform == "center-crop":
            s = min(w, h)
            left, top = (w - s) // 2, (h - s) // 2
            img = img.crop((left, top, left + s, top + s))
        elif transform == "pad":
            s = max(w, h)
            canvas = Image.new(mode, (s, s))
            canvas.paste(img, ((s - w) // 2, (s - h) // 2))
            img = canvas
        else:
            raise ValueError(f"unknown transform '{transform}'")
        if img.size != (resolution, resolution):
            img = img.resize((resolution, resolution), Image.LANCZOS)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[:, :, None] if arr.ndim == 2 else arr


class ImageStream:
    """Iterate a Source as uniform uint8 HWC arrays under the skip/fail policy.

    A file that cannot be decoded stops the run with its name, or with
    `skip_bad` is skipped and recorded in `skipped` ((name, reason) pairs).
    Size problems are never skipped: they need a decision (--transform).

    Args:
        source: the Source to read.
        channels: 3 for RGB, 1 for grayscale.
        resolution: the output size; required with `transform`.
        transform: None, "center-crop" or "pad".
        skip_bad: skip undecodable files instead of failing.
    """

    def __init__(
        self,
        source,
        *,
        channels=3,
        resolution=None,
        transform=None,
        skip_bad=False,
    ):
        if transform is not None and resolution is None:
            raise UserError("--transform needs --resolution")
        if transform is not None and transform not in TRANSFORMS:
            raise UserError(
                f"unknown transform '{transform}' (use "
                f"{' or '.join(TRANSFORMS)})"
            )
        if resolution is not None and (
            not is_power_of_two(resolution) or not 4 <= resolution <= 1024
        ):
            raise UserError(
                f"--resolution {resolution} is not a power of two in 4..1024"
            )
        self.source = source
        self.channels, self.resolution = channels, resolution
        self.transform, self.skip_bad = transform, skip_bad
        self.skipped = []

    def __len__(self):
        return len(self.source)

    def __iter__(self):
        first = None
        for item in self.source:
            try:
                img = item.load()
            except BadImage as e:
                if not self.skip_bad:
                    raise UserError(
                        f"{e} (use --skip-bad to skip unreadable images)"
                    ) from None
                self.skipped.append((item.name, str(e)))
                continue
            arr = convert_image(
                img,
                name=item.name,
                channels=self.channels,
                resolution=self.resolution,
                transform=self.transform,
            )
            if first is None:
                first = (item.name, arr.shape)
            elif arr.shape != first[1]:
                h, w = arr.shape[:2]
                raise UserError(
                    f"image '{item.name}' is {w}x{h} but '{first[0]}' is "
                    f"{first[1][1]}x{first[1][0]}: mixed sizes; "
                    f"{_TRANSFORM_HINT}"
                )
            yield arr, item.label
