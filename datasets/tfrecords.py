"""StyleGAN's multi-resolution TFRecord dataset format: writer and reader.

A dataset is a directory `<dir>/` holding one file per resolution,
`<name>-rNN.tfrecords` with NN = log2(res) (r02 = 4x4 up to the full size),
where `<name>` is the directory's base name. Every record is a
`tf.train.Example` with `shape` (int64 [C, H, W]) and `data` (raw uint8 bytes
in CHW order). Optional labels live in `<name>-rxx.labels`, an `np.save` of
float32 [N, label_dim] (one-hot for class labels). This is exactly NVlabs'
StyleGAN layout, so datasets prepared for StyleGAN load here and vice versa.

Lower resolutions are made as StyleGAN's `dataset_tool.py` makes them: each
level is the 2x2 box average of the previous level *kept in float32*, then
rounded with `np.rint` (round half to even) to uint8. Because every
intermediate average is exact in float32 (values are multiples of 4**-k below
256, at most 24 significant bits down to 4x4 from 1024x1024), each stored level
equals `np.rint` of the plain mean of the corresponding 2^k x 2^k block of the
full-resolution image; `box_downsample` computes exactly that.

Neither reading nor writing needs TensorFlow: the TFRecord framing (with its
CRC-32C checksums, checked on every read) and the two Example fields are
encoded and decoded here in plain Python, byte for byte as TensorFlow's
TFRecordWriter and `SerializeToString(deterministic=True)` write them, so the
dataset tool, `info`, the metrics and the JAX backend run without TensorFlow.
"""

import contextlib
import dataclasses
import glob
import mmap
import os
import re
import shutil
import struct
import tempfile

import crc32c
import numpy as np

from dnnlib.util import UserError

MIN_RES = 4
MAX_RES = 1024
_FILE_RE = re.compile(r"^(?P<name>.+)-r(?P<lod>\d\d)\.tfrecords$")
_LABELS_GLOB = "*-rxx.labels"


def file_name(name, res):
    """`<name>-rNN.tfrecords` for resolution `res` (NN = log2(res))."""
    return f"{name}-r{int(res).bit_length() - 1:02d}.tfrecords"


def labels_name(name):
    """`<name>-rxx.labels`, StyleGAN's label file name."""
    return f"{name}-rxx.labels"


def is_power_of_two(n):
    return n > 0 and n & (n - 1) == 0


def box_downsample(img, factor):
    """np.rint of the mean over `factor` x `factor` blocks of an HWC image.

    Equal, bit for bit, to StyleGAN's chain of float32 2x2 averages followed by
    rounding (see the module docstring).
    """
    h, w, c = img.shape
    x = img.astype(np.float64).reshape(
        h // factor, factor, w // factor, factor, c
    )
    return np.rint(x.mean(axis=(1, 3))).clip(0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------
# Reading (pure Python)


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What `find_dataset` learnt about a dataset directory.

    Args:
        path: the dataset directory.
        name: the file-name prefix (`<name>-rNN.tfrecords`).
        resolution: the full (highest) resolution.
        channels: image channels (3, or 1 for grayscale).
        num_images: records in the full-resolution file.
        label_dim: columns of the label file, 0 without labels.
        files: res -> path of that resolution's .tfrecords file.
        labels_file: path of the `.labels` file, or None.
    """

    path: str
    name: str
    resolution: int
    channels: int
    num_images: int
    label_dim: int
    files: dict
    labels_file: str | None = None

    @property
    def resolutions(self):
        """All stored resolutions, low to high."""
        return sorted(self.files)

    @property
    def image_shape(self):
        """[H, W, C] of a full-resolution image."""
        return (self.resolution, self.resolution, self.channels)

    def load_labels(self):
        """float32 [num_images, label_dim], or None without labels."""
        if self.labels_file is None:
            return None
        return _load_labels(self.labels_file)


_VERIFY_HINT = (
    "list every bad record with `python -m datasets.dataset_tool info "
    "--verify DIR` and rebuild the dataset"
)


def masked_crc(data):
    """TFRecord's checksum: CRC-32C rotated right 15 bits, plus a constant."""
    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _truncated(path, index):
    return UserError(
        f"'{path}' is truncated in record {index} (a partial record); "
        "rebuild the dataset"
    )


def _corrupt(path, index, offset, what):
    return UserError(
        f"'{path}' is corrupt: record {index} (byte {offset}) {what}; "
        + _VERIFY_HINT
    )


def _map(path):
    """The file's bytes, memory-mapped (an empty file gives b'')."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return b""
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


def iter_frames(buf, path):
    """Yield (index, payload start, payload length) of every record.

    The framing is checked as it is read: uint64 length, the masked CRC of
    the length, the payload, the masked CRC of the payload. A length that
    fails its checksum or runs past the end is a UserError naming the file
    and the record; the payload's checksum is `checked_payload`'s job.
    """
    pos, size, index = 0, len(buf), 0
    while pos < size:
        if pos + 12 > size:
            raise _truncated(path, index)
        header = bytes(buf[pos : pos + 8])
        (length,) = struct.unpack("<Q", header)
        (crc,) = struct.unpack("<I", buf[pos + 8 : pos + 12])
        if crc != masked_crc(header):
            raise _corrupt(
                path, index, pos, "has a length that fails its checksum"
            )
        if pos + 16 + length > size:
            raise _truncated(path, index)
        yield index, pos + 12, length
        pos += 16 + length
        index += 1


def record_offsets(buf, path):
    """[(payload start, length)] of every record, the framing checked."""
    return [(start, n) for _, start, n in iter_frames(buf, path)]


def checked_payload(buf, start, length, path, index):
    """A record's payload, after checking it against its checksum."""
    payload = buf[start : start + length]
    (crc,) = struct.unpack("<I", buf[start + length : start + length + 4])
    if crc != masked_crc(payload):
        raise _corrupt(path, index, start - 12, "fails its data checksum")
    return payload


def _read_records(path, parse=True):
    """Yield each record's checked payload (or None if `parse` is False)."""
    buf = _map(path)
    try:
        for index, start, length in iter_frames(buf, path):
            if parse:
                yield checked_payload(buf, start, length, path, index)
            else:
                yield None
    finally:
        if isinstance(buf, mmap.mmap):
            buf.close()


def count_records(path):
    """Number of records in a .tfrecords file, the framing checked."""
    return sum(1 for _ in _read_records(path, parse=False))


def locate(path, offset):
    """The index of the record whose frame holds byte `offset`, or None."""
    buf = _map(path)
    try:
        for index, start, length in iter_frames(buf, path):
            if start - 12 <= offset < start + length + 4:
                return index
    except UserError:
        return None
    finally:
        if isinstance(buf, mmap.mmap):
            buf.close()
    return None


def verify_file(path, progress=None):
    """Check every record of one file: framing, checksums, image shape.

    Returns the list of problems (one line each) instead of stopping at the
    first, for `dataset_tool info --verify`; `progress(n)` is called per
    record.
    """
    problems = []
    buf = _map(path)
    try:
        frames = iter_frames(buf, path)
        while True:
            try:
                index, start, length = next(frames)
            except StopIteration:
                break
            except UserError as e:  # framing: nothing after it can be read
                problems.append(str(e).split("; ")[0])
                break
            try:
                payload = checked_payload(buf, start, length, path, index)
            except UserError as e:
                problems.append(str(e).split("; ")[0])
                payload = None
            try:
                if payload is not None:
                    decode_record(payload, path)
            except UserError as e:
                problems.append(f"{e} (record {index})")
            if progress is not None:
                progress(1)
    finally:
        if isinstance(buf, mmap.mmap):
            buf.close()
    return problems


def _varint(buf, pos):
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf):
    """Yield (field number, wire type, value) of a serialized protobuf."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + n], pos + n
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield field, wire, value


def _parse_feature(buf):
    """A tf.train.Feature as a list of bytes or ints (floats unsupported)."""
    for kind, _, body in _fields(buf):
        if kind == 1:  # BytesList
            return [bytes(v) if len(v) < 64 else v for _, _, v in _fields(body)]
        if kind == 3:  # Int64List, packed or not
            out = []
            for _, wire, v in _fields(body):
                if wire == 0:
                    out.append(v)
                else:
                    pos = 0
                    while pos < len(v):
                        x, pos = _varint(v, pos)
                        out.append(x)
            return [x - (1 << 64) if x >= 1 << 63 else x for x in out]
    return []


def parse_example(payload):
    """Decode a tf.train.Example into {key: list of bytes/int values}."""
    buf = memoryview(payload)
    out = {}
    for field, _, features in _fields(buf):
        if field != 1:
            continue
        for entry_field, _, entry in _fields(features):
            if entry_field != 1:
                continue
            key, value = None, b""
            for f, _, v in _fields(entry):
                if f == 1:
                    key = bytes(v).decode()
                elif f == 2:
                    value = v
            out[key] = _parse_feature(value)
    return out


def decode_record(payload, path="record"):
    """A StyleGAN record as a uint8 HWC array."""
    try:
        ex = parse_example(payload)
        shape = [int(v) for v in ex["shape"]]
        data = ex["data"][0]
    except (KeyError, IndexError, ValueError) as e:
        raise UserError(
            f"'{path}' holds a record that is not a StyleGAN "
            f"image (shape/data): {e}"
        ) from None
    if len(shape) != 3 or np.prod(shape) != len(data):
        raise UserError(
            f"'{path}' holds a record with shape {shape} and "
            f"{len(data)} bytes of data"
        )
    chw = np.frombuffer(data, np.uint8).reshape(shape)
    return np.ascontiguousarray(chw.transpose(1, 2, 0))


def _first_shape(path):
    for payload in _read_records(path):
        return decode_record(payload, path).shape
    raise UserError(f"'{path}' holds no images")


def _load_labels(path):
    try:
        with open(path, "rb") as f:
            labels = np.load(f, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read labels '{path}': {e}") from None
    if labels.ndim != 2:
        raise UserError(
            f"labels '{path}' have shape {labels.shape}, "
            "expected [num_images, label_dim]"
        )
    return labels.astype(np.float32)


def find_dataset(path):
    """Validate a StyleGAN TFRecords directory and describe it.

    Accepts the directory, a DatasetInfo (returned as is) or one of its
    .tfrecords files. Every problem is a UserError naming the path.
    """
    if isinstance(path, DatasetInfo):
        return path
    path = os.fspath(path)
    if os.path.isfile(path) and path.endswith(".tfrecords"):
        path = os.path.dirname(os.path.abspath(path))
    hint = "make one with `python -m datasets.dataset_tool`"
    if not os.path.exists(path):
        raise UserError(f"dataset '{path}' does not exist")
    if not os.path.isdir(path):
        raise UserError(
            f"dataset '{path}' is not a directory of .tfrecords files ({hint})"
        )
    tfr_files = sorted(
        glob.glob(os.path.join(glob.escape(path), "*.tfrecords"))
    )
    if not tfr_files:
        raise UserError(f"dataset '{path}' holds no .tfrecords files ({hint})")
    files, names = {}, set()
    for f in tfr_files:
        m = _FILE_RE.match(os.path.basename(f))
        if not m:
            raise UserError(
                f"unexpected file '{f}': dataset files are named "
                "<name>-rNN.tfrecords with NN = log2(resolution)"
            )
        names.add(m.group("name"))
        res = 2 ** int(m.group("lod"))
        if not MIN_RES <= res <= MAX_RES:
            raise UserError(
                f"'{f}': resolution {res} is outside {MIN_RES}..{MAX_RES}"
            )
        files[res] = f
    if len(names) > 1:
        raise UserError(
            f"dataset '{path}' mixes file names "
            f"{sorted(names)}: keep one dataset per directory"
        )
    resolution = max(files)
    missing = [r for r in _chain(min(files), resolution) if r not in files]
    if missing:
        raise UserError(
            f"dataset '{path}': resolution {missing[0]} is "
            f"missing between {min(files)} and {resolution}"
        )
    channels = None
    for res, f in files.items():
        h, w, c = _first_shape(f)
        if (h, w) != (res, res):
            raise UserError(
                f"'{f}' holds {h}x{w} images, but its name says {res}x{res}"
            )
        if channels is not None and c != channels:
            raise UserError(
                f"dataset '{path}' mixes {channels} and {c} "
                "channels across resolutions"
            )
        channels = c
    num_images = count_records(files[resolution])
    label_files = sorted(
        glob.glob(os.path.join(glob.escape(path), _LABELS_GLOB))
    )
    labels_file, label_dim = None, 0
    if label_files:
        labels_file = label_files[0]
        labels = _load_labels(labels_file)
        if labels.shape[0] < num_images:
            raise UserError(
                f"labels '{labels_file}' have {labels.shape[0]} "
                f"rows for {num_images} images"
            )
        label_dim = labels.shape[1]
    return DatasetInfo(
        path=path,
        name=names.pop(),
        resolution=resolution,
        channels=channels,
        num_images=num_images,
        label_dim=label_dim,
        files=dict(sorted(files.items())),
        labels_file=labels_file,
    )


def _chain(lo, hi):
    res = lo
    while res <= hi:
        yield res
        res *= 2


def iterate_images(path, *, res=None, max_images=None):
    """Yield the images of a dataset as uint8 HWC arrays, in stored order.

    `path` is a dataset directory, a DatasetInfo or a single .tfrecords file;
    `res` picks a lower resolution of a directory (default: the full one).
    """
    if isinstance(path, (str, os.PathLike)) and os.path.isfile(path):
        file = os.fspath(path)
    else:
        info = find_dataset(path)
        res = info.resolution if res is None else int(res)
        if res not in info.files:
            raise UserError(
                f"dataset '{info.path}' has no resolution {res} "
                f"(it has {info.resolutions})"
            )
        file = info.files[res]
    for i, payload in enumerate(_read_records(file)):
        if max_images is not None and i >= max_images:
            return
        yield decode_record(payload, file)


# ---------------------------------------------------------------------------
# Writing


def _encode_varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _length_delimited(field, body):
    return _encode_varint(field << 3 | 2) + _encode_varint(len(body)) + body


def encode_example(chw):
    """A uint8 CHW image as a serialized tf.train.Example (shape, data).

    The bytes TensorFlow's `SerializeToString(deterministic=True)` gives:
    map entries sorted by key, the int64 list packed.
    """
    shape = b"".join(_encode_varint(int(d)) for d in chw.shape)
    features = {
        "data": _length_delimited(  # Feature.bytes_list = BytesList
            1, _length_delimited(1, chw.tobytes())
        ),
        "shape": _length_delimited(  # Feature.int64_list = Int64List
            3, _length_delimited(1, shape)
        ),
    }
    entries = b"".join(
        _length_delimited(
            1, _length_delimited(1, key.encode()) + _length_delimited(2, value)
        )
        for key, value in sorted(features.items())
    )
    return _length_delimited(1, entries)  # Example.features


def frame(payload):
    """One TFRecord: length, its masked CRC, payload, its masked CRC."""
    header = struct.pack("<Q", len(payload))
    return (
        header
        + struct.pack("<I", masked_crc(header))
        + payload
        + struct.pack("<I", masked_crc(payload))
    )


def check_output_dir(out_dir, overwrite=False):
    """Refuse an output directory that already holds something.

    An existing dataset is replaced only with `overwrite`; a directory holding
    anything else is never touched (it may be the user's files).
    """
    out_dir = os.fspath(out_dir)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise UserError(f"output '{out_dir}' exists and is not a directory")
    if not os.path.isdir(out_dir):
        return
    entries = os.listdir(out_dir)
    if not entries:
        return
    ours = [
        e for e in entries if e.endswith(".tfrecords") or e.endswith(".labels")
    ]
    if len(ours) != len(entries):
        raise UserError(
            f"output '{out_dir}' exists and holds files that are "
            "not a dataset; choose another directory"
        )
    if not overwrite:
        raise UserError(
            f"output '{out_dir}' already holds a dataset; use "
            "--overwrite to replace it"
        )


class DatasetWriter:
    """Write a StyleGAN TFRecords dataset under a temporary name.

    Images go into `<out_dir>.tmp-XXXX` beside `out_dir`; `close()` renames it
    to `out_dir` (replacing an old dataset only when `overwrite`). Used as a
    context manager, an exception removes the temporary directory, so a failed
    or interrupted run never leaves a complete-looking dataset.

    Args:
        out_dir: the dataset directory to create; its base name is the name.
        overwrite: replace an existing dataset in `out_dir`.
    """

    def __init__(self, out_dir, overwrite=False):
        self.out_dir = os.path.abspath(os.fspath(out_dir))
        self.overwrite = overwrite
        self.name = os.path.basename(self.out_dir.rstrip(os.sep))
        check_output_dir(self.out_dir, overwrite)
        parent = os.path.dirname(self.out_dir)
        try:
            os.makedirs(parent, exist_ok=True)
            self.tmp_dir = tempfile.mkdtemp(
                prefix=self.name + ".tmp-", dir=parent
            )
        except OSError as e:
            raise UserError(f"cannot create '{self.out_dir}': {e.strerror}")
        self.resolution = self.channels = None
        self.num_images = 0
        self._writers = {}
        self._labels = None

    def _open(self, shape):
        h, w, c = shape
        if h != w or not is_power_of_two(h) or not MIN_RES <= h <= MAX_RES:
            raise UserError(
                f"image size {w}x{h} is not a square power of two "
                f"between {MIN_RES} and {MAX_RES}"
            )
        if c not in (1, 3):
            raise UserError(f"images must have 1 or 3 channels, not {c}")
        self.resolution, self.channels = h, c
        for res in _chain(MIN_RES, h):
            path = os.path.join(self.tmp_dir, file_name(self.name, res))
            self._writers[res] = open(path, "wb")

    def add_image(self, img):
        """Append one uint8 HWC image (written at every resolution)."""
        img = np.asarray(img)
        if img.ndim == 2:
            img = img[:, :, None]
        if img.dtype != np.uint8:
            raise ValueError(f"images must be uint8, not {img.dtype}")
        if self.resolution is None:
            self._open(img.shape)
        elif img.shape != (self.resolution, self.resolution, self.channels):
            raise UserError(
                f"image {self.num_images} has shape {img.shape}, "
                "expected "
                f"{(self.resolution, self.resolution, self.channels)}"
            )
        chw = img.transpose(2, 0, 1)
        level = chw.astype(np.float32)
        for res in sorted(self._writers, reverse=True):
            if res != self.resolution:
                # StyleGAN: average the float32 level above, then round.
                level = (
                    level[:, 0::2, 0::2]
                    + level[:, 0::2, 1::2]
                    + level[:, 1::2, 0::2]
                    + level[:, 1::2, 1::2]
                ) * 0.25
                quant = np.rint(level).clip(0, 255).astype(np.uint8)
            else:
                quant = chw
            self._writers[res].write(frame(encode_example(quant)))
        self.num_images += 1

    def set_labels(self, labels):
        """Labels for all images, float32 [N, label_dim], saved at close."""
        labels = np.asarray(labels, np.float32)
        if labels.ndim != 2:
            raise ValueError(
                f"labels must be [N, label_dim], not {labels.shape}"
            )
        self._labels = labels

    def close(self):
        """Finish the files and move the dataset into place."""
        for w in self._writers.values():
            w.close()
        if self.num_images == 0:
            self.abort()
            raise UserError("no images to write")
        if self._labels is not None:
            if self._labels.shape[0] != self.num_images:
                self.abort()
                raise UserError(
                    f"{self._labels.shape[0]} labels for "
                    f"{self.num_images} images"
                )
            path = os.path.join(self.tmp_dir, labels_name(self.name))
            with open(path, "wb") as f:
                np.save(f, self._labels)
        old = None
        if os.path.isdir(self.out_dir):
            check_output_dir(self.out_dir, self.overwrite)
            old = tempfile.mkdtemp(
                prefix=self.name + ".old-", dir=os.path.dirname(self.out_dir)
            )
            os.replace(self.out_dir, os.path.join(old, "d"))
        os.replace(self.tmp_dir, self.out_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def abort(self):
        """Drop everything written so far."""
        for w in self._writers.values():
            with contextlib.suppress(Exception):
                w.close()
        self._writers = {}
        shutil.rmtree(self.tmp_dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
