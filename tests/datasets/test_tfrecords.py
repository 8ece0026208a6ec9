"""Tests of the StyleGAN TFRecords format: levels, reader, checks, writer."""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from datasets import tfrecords
from dnnlib.util import UserError
from tests.datasets.dataset_helpers import (
    leftovers,
    random_images,
    write_dataset,
)


def stylegan_levels(img):
    """StyleGAN's rule, written out: float32 2x2 averages chained, np.rint."""
    levels = {img.shape[0]: img}
    x = img.astype(np.float32)
    while x.shape[0] > 4:
        x = (
            x[0::2, 0::2] + x[0::2, 1::2] + x[1::2, 0::2] + x[1::2, 1::2]
        ) * 0.25
        levels[x.shape[0]] = np.rint(x).clip(0, 255).astype(np.uint8)
    return levels


def test_box_downsample_rounds_half_to_even():
    # Means 1.5, 0.5, 2.5, 3.25 round to 2, 0, 2, 3 (np.rint, as StyleGAN).
    img = np.array([[1, 2, 0, 1], [1, 2, 0, 1], [2, 3, 3, 3], [2, 3, 3, 4]])
    img = img.astype(np.uint8)[:, :, None]
    out = tfrecords.box_downsample(img, 2)[:, :, 0]
    np.testing.assert_array_equal(out, [[2, 0], [2, 3]])


def test_lower_levels_are_rounded_block_means_of_the_top(tmp_path):
    # An image whose two-step quantised chain differs from the float chain:
    # each 2x2 mean is 0.5 (rint -> 0), but the 4x4 mean is also 0.5 -> 0,
    # while a half-up chain would give 1 then 1.
    img = np.zeros((16, 16, 3), np.uint8)
    img[::2, ::2] = 2
    imgs = np.concatenate([img[None], random_images(5, 16, seed=1)])
    path = write_dataset(tmp_path / "d", imgs)
    info = tfrecords.find_dataset(path)
    assert info.resolutions == [4, 8, 16]
    for k, top in enumerate(imgs):
        expected = stylegan_levels(top)
        for res in info.resolutions:
            got = list(tfrecords.iterate_images(path, res=res))[k]
            np.testing.assert_array_equal(got, expected[res])
            np.testing.assert_array_equal(
                got, tfrecords.box_downsample(top, 16 // res)
            )
    low = list(tfrecords.iterate_images(path, res=4))[0]
    assert (low == 0).all()


def test_reader_agrees_with_tensorflow(tmp_path):
    imgs = random_images(7, 8, seed=2)
    path = write_dataset(tmp_path / "d", imgs)
    info = tfrecords.find_dataset(path)
    spec = {
        "shape": tf.io.FixedLenFeature([3], tf.int64),
        "data": tf.io.FixedLenFeature([], tf.string),
    }
    for res, file in info.files.items():
        ours = list(tfrecords.iterate_images(file))
        for i, rec in enumerate(tf.data.TFRecordDataset(file)):
            ex = tf.io.parse_single_example(rec, spec)
            assert ex["shape"].numpy().tolist() == [3, res, res]
            chw = np.frombuffer(ex["data"].numpy(), np.uint8)
            hwc = chw.reshape(3, res, res).transpose(1, 2, 0)
            np.testing.assert_array_equal(ours[i], hwc)
    np.testing.assert_array_equal(np.stack(ours), imgs)


def write_like_nvlabs(folder, imgs, labels):
    """An independent writer following NVlabs StyleGAN's documented layout.

    One file per level named `<basename>-rNN.tfrecords`, records with an
    int64 `shape` [C, H, W] and the raw CHW bytes, labels via np.save.
    """
    os.makedirs(folder)
    prefix = os.path.join(folder, os.path.basename(folder))
    res = imgs.shape[1]
    lods = int(np.log2(res)) - 1
    opts = tf.io.TFRecordOptions(compression_type="")
    writers = [
        tf.io.TFRecordWriter(
            f"{prefix}-r{int(np.log2(res)) - lod:02d}.tfrecords", opts
        )
        for lod in range(lods)
    ]
    for img in imgs:
        x = img.transpose(2, 0, 1)
        for lod, w in enumerate(writers):
            if lod:
                x = x.astype(np.float32)
                x = (
                    x[:, 0::2, 0::2]
                    + x[:, 0::2, 1::2]
                    + x[:, 1::2, 0::2]
                    + x[:, 1::2, 1::2]
                ) * 0.25
            q = np.rint(x).clip(0, 255).astype(np.uint8)
            feature = {
                "shape": tf.train.Feature(
                    int64_list=tf.train.Int64List(value=q.shape)
                ),
                "data": tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[q.tobytes()])
                ),
            }
            ex = tf.train.Example(features=tf.train.Features(feature=feature))
            w.write(ex.SerializeToString())
    for w in writers:
        w.close()
    with open(prefix + "-rxx.labels", "wb") as f:
        np.save(f, labels.astype(np.float32))


def test_loads_a_dataset_written_as_nvlabs_stylegan_does(tmp_path):
    imgs = random_images(6, 16, seed=3)
    labels = np.eye(3)[[0, 1, 2, 0, 1, 2]]
    folder = str(tmp_path / "ffhq")
    write_like_nvlabs(folder, imgs, labels)
    info = tfrecords.find_dataset(folder)
    assert (info.name, info.resolution, info.channels) == ("ffhq", 16, 3)
    assert (info.num_images, info.label_dim) == (6, 3)
    np.testing.assert_array_equal(
        np.stack(list(tfrecords.iterate_images(folder))), imgs
    )
    np.testing.assert_array_equal(info.load_labels(), labels)
    # Our writer stores the same pixels at every level.
    ours = tfrecords.find_dataset(write_dataset(tmp_path / "ffhq2", imgs))
    for res in info.resolutions:
        np.testing.assert_array_equal(
            np.stack(list(tfrecords.iterate_images(ours, res=res))),
            np.stack(list(tfrecords.iterate_images(info, res=res))),
        )


def test_find_dataset_describes_the_directory(tmp_path):
    imgs = random_images(5, 32, channels=1, seed=4)
    labels = np.eye(5, dtype=np.float32)
    path = write_dataset(tmp_path / "gray", imgs, labels)
    info = tfrecords.find_dataset(path)
    assert info.name == "gray" and info.path == path
    assert (info.resolution, info.channels, info.num_images) == (32, 1, 5)
    assert info.label_dim == 5 and info.image_shape == (32, 32, 1)
    assert sorted(info.files) == [4, 8, 16, 32]
    assert info.files[32].endswith("gray-r05.tfrecords")
    assert info.labels_file.endswith("gray-rxx.labels")
    # A .tfrecords file or the info itself are accepted too.
    assert tfrecords.find_dataset(info.files[8]) == info
    assert tfrecords.find_dataset(info) is info
    np.testing.assert_array_equal(
        np.stack(list(tfrecords.iterate_images(path, max_images=3))),
        imgs[:3],
    )


@pytest.fixture
def small_dataset(tmp_path):
    return write_dataset(tmp_path / "ds", random_images(4, 16, seed=5))


def test_find_dataset_missing_and_empty(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        tfrecords.find_dataset(tmp_path / "nope")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(UserError, match="not a directory"):
        tfrecords.find_dataset(tmp_path / "file.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no .tfrecords"):
        tfrecords.find_dataset(tmp_path / "empty")


def test_find_dataset_bad_names(small_dataset):
    os.rename(
        os.path.join(small_dataset, "ds-r04.tfrecords"),
        os.path.join(small_dataset, "other-r04.tfrecords"),
    )
    with pytest.raises(UserError, match="mixes file names"):
        tfrecords.find_dataset(small_dataset)
    os.rename(
        os.path.join(small_dataset, "other-r04.tfrecords"),
        os.path.join(small_dataset, "ds16.tfrecords"),
    )
    with pytest.raises(UserError, match="rNN.tfrecords"):
        tfrecords.find_dataset(small_dataset)


def test_find_dataset_missing_level_and_wrong_shape(small_dataset):
    r3 = os.path.join(small_dataset, "ds-r03.tfrecords")
    os.remove(r3)
    with pytest.raises(UserError, match="resolution 8 is missing"):
        tfrecords.find_dataset(small_dataset)
    shutil.copy(os.path.join(small_dataset, "ds-r04.tfrecords"), r3)
    with pytest.raises(
        UserError, match="holds 16x16 images, but its name says 8x8"
    ):
        tfrecords.find_dataset(small_dataset)


def test_find_dataset_truncated_file(small_dataset):
    top = os.path.join(small_dataset, "ds-r04.tfrecords")
    data = open(top, "rb").read()
    with open(top, "wb") as f:
        f.write(data[:-10])
    with pytest.raises(UserError, match="truncated"):
        tfrecords.find_dataset(small_dataset)


def test_find_dataset_labels_mismatch(small_dataset):
    with open(os.path.join(small_dataset, "ds-rxx.labels"), "wb") as f:
        np.save(f, np.zeros((2, 3), np.float32))
    with pytest.raises(UserError, match="2 rows for 4 images"):
        tfrecords.find_dataset(small_dataset)


def test_writer_refuses_existing_output(small_dataset, tmp_path):
    before = open(os.path.join(small_dataset, "ds-r04.tfrecords"), "rb").read()
    with pytest.raises(UserError, match="already holds a dataset.*--overwrite"):
        tfrecords.DatasetWriter(small_dataset)
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="not a dataset"):
        tfrecords.DatasetWriter(other, overwrite=True)
    assert (other / "notes.txt").read_text() == "keep me"
    after = open(os.path.join(small_dataset, "ds-r04.tfrecords"), "rb").read()
    assert before == after
    # With overwrite, the old dataset is replaced as a whole.
    write = tfrecords.DatasetWriter(small_dataset, overwrite=True)
    with write:
        write.add_image(random_images(1, 8)[0])
    info = tfrecords.find_dataset(small_dataset)
    assert (info.resolution, info.num_images) == (8, 1)
    assert sorted(os.listdir(small_dataset)) == [
        "ds-r02.tfrecords",
        "ds-r03.tfrecords",
    ]
    assert leftovers(tmp_path) == []


def test_writer_failure_leaves_nothing(tmp_path):
    imgs = random_images(3, 8)
    with pytest.raises(UserError, match="has shape"):
        with tfrecords.DatasetWriter(tmp_path / "out") as writer:
            writer.add_image(imgs[0])
            assert os.path.isdir(writer.tmp_dir)
            assert ".tmp-" in os.path.basename(writer.tmp_dir)
            assert not (tmp_path / "out").exists()
            writer.add_image(random_images(1, 16)[0])
    assert os.listdir(tmp_path) == []
    with pytest.raises(KeyboardInterrupt):
        with tfrecords.DatasetWriter(tmp_path / "out") as writer:
            writer.add_image(imgs[0])
            raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []


def test_writer_rejects_bad_sizes(tmp_path):
    for shape in [(12, 12, 3), (8, 16, 3), (8, 8, 4)]:
        with pytest.raises(UserError):
            with tfrecords.DatasetWriter(tmp_path / "out") as writer:
                writer.add_image(np.zeros(shape, np.uint8))
    assert os.listdir(tmp_path) == []


def test_writer_bytes_equal_tensorflows(tmp_path):
    # The pure-Python writer frames and serializes exactly as TensorFlow's
    # TFRecordWriter and SerializeToString(deterministic=True) do.
    imgs = random_images(3, 8, seed=7)
    info = tfrecords.find_dataset(write_dataset(tmp_path / "ours", imgs))
    ref = str(tmp_path / "ref.tfrecords")
    with tf.io.TFRecordWriter(ref) as w:
        for img in imgs:
            chw = img.transpose(2, 0, 1)
            feature = {
                "shape": tf.train.Feature(
                    int64_list=tf.train.Int64List(value=chw.shape)
                ),
                "data": tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[chw.tobytes()])
                ),
            }
            ex = tf.train.Example(features=tf.train.Features(feature=feature))
            w.write(ex.SerializeToString(deterministic=True))
    with open(ref, "rb") as a, open(info.files[8], "rb") as b:
        assert a.read() == b.read()


def _flip(path, offset):
    data = bytearray(open(path, "rb").read())
    data[offset] ^= 0x10
    open(path, "wb").write(bytes(data))


def _record_start(path, index):
    buf = open(path, "rb").read()
    return tfrecords.record_offsets(buf, path)[index]


def test_a_flipped_data_byte_is_refused_by_every_reader(
    small_dataset, run_tool
):
    top = os.path.join(small_dataset, "ds-r04.tfrecords")
    start, length = _record_start(top, 2)
    _flip(top, start + length // 2)
    info = tfrecords.find_dataset(small_dataset)  # the framing is intact
    named = r"ds-r04\.tfrecords' is corrupt: record 2 .*checksum"
    # The TensorFlow-free reader (dataset tool, metrics, grids).
    with pytest.raises(UserError, match=named):
        list(tfrecords.iterate_images(info))
    # tf.data, as training reads it.
    from tests.helpers import tiny_config
    from training.backends import tensorflow as tf_backend

    cfg = tiny_config(16, batch=4, data=small_dataset)
    strategy = tf_backend.make_strategy(devices=["/cpu:0"])
    with pytest.raises(UserError, match=named):
        next(tf_backend.make_batches(info, cfg, strategy))
    # The JAX backend's stream.
    from training.backends.jax import BatchStream

    stream = BatchStream(info, 4, mirror=False, seed=0)
    with pytest.raises(UserError, match=named):
        next(stream)
    stream.close()
    # The verify command lists it and exits 2.
    code, out, err = run_tool("info", small_dataset, "--verify")
    last = err.strip().splitlines()[-1]  # after the progress line
    assert code == 2 and "error:" in last and "record 2" in last


def test_a_flipped_length_byte_is_refused_at_start(small_dataset, run_tool):
    top = os.path.join(small_dataset, "ds-r04.tfrecords")
    start, _ = _record_start(top, 1)
    _flip(top, start - 12 + 2)  # inside record 1's length field
    with pytest.raises(
        UserError, match=r"ds-r04\.tfrecords' is corrupt: record 1 .*length"
    ):
        tfrecords.find_dataset(small_dataset)
    code, _, err = run_tool("info", small_dataset, "--verify")
    assert code == 2 and "record 1" in err


def test_truncation_names_the_record(small_dataset):
    top = os.path.join(small_dataset, "ds-r04.tfrecords")
    start, _ = _record_start(top, 3)
    with open(top, "r+b") as f:
        f.truncate(start + 5)
    with pytest.raises(UserError, match=r"ds-r04.* truncated in record 3"):
        tfrecords.find_dataset(small_dataset)


def test_verify_passes_a_good_dataset(small_dataset, run_tool):
    code, out, _ = run_tool("info", small_dataset, "--verify")
    assert code == 0
    assert "12 records in 3 files: checksums and image shapes good" in out
