"""Tests of the tf.data training input, one device and two mirrored replicas."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from datasets import pipeline, synthetic, tfrecords
from dnnlib.util import UserError
from tests.datasets.dataset_helpers import ROOT, write_dataset
from tests.helpers import SUBPROCESS_DEADLINE

N = 50


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """50 distinct 16x16 synthetic images with one-hot labels."""
    imgs, kinds = synthetic.make_images(N, 16, seed=3)
    assert len({a.tobytes() for a in imgs}) == N
    labels = np.eye(3, dtype=np.float32)[kinds]
    path = tmp_path_factory.mktemp("pipe") / "shapes"
    write_dataset(path, imgs, labels)
    return str(path), imgs, labels


def batches(ds, n=None):
    out = []
    for i, b in enumerate(ds):
        if n is not None and i >= n:
            break
        out.append(
            tuple(x.numpy() for x in b) if isinstance(b, tuple) else b.numpy()
        )
    return out


def test_one_epoch_covers_every_image_once(dataset):
    path, imgs, _ = dataset
    ds = pipeline.make_dataset(path, 8, repeat=False, seed=1)
    out = batches(ds)
    assert len(out) == N // 8  # drop_remainder: 6 full batches
    for b in out:
        assert b.shape == (8, 16, 16, 3) and b.dtype == np.uint8
    seen = [a.tobytes() for b in out for a in b]
    assert len(set(seen)) == len(seen) == 48
    assert set(seen) <= {a.tobytes() for a in imgs}
    # Shuffled: not the stored order.
    assert not np.array_equal(np.concatenate(out), imgs[:48])


def test_unshuffled_order_matches_the_reader(dataset):
    path, imgs, _ = dataset
    ds = pipeline.make_dataset(path, 10, repeat=False, shuffle=False)
    np.testing.assert_array_equal(np.concatenate(batches(ds)), imgs)


def test_repeat_reshuffles_each_epoch_and_is_seeded(dataset):
    path, _, _ = dataset
    a = batches(pipeline.make_dataset(path, 25, seed=5), 4)
    b = batches(pipeline.make_dataset(path, 25, seed=5), 4)
    c = batches(pipeline.make_dataset(path, 25, seed=6), 4)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(a, c))
    epoch1 = np.concatenate(a[:2])
    epoch2 = np.concatenate(a[2:])
    assert {x.tobytes() for x in epoch1} == {x.tobytes() for x in epoch2}
    assert not np.array_equal(epoch1, epoch2)


def test_mirror_flips_about_half_reproducibly(dataset):
    path, imgs, _ = dataset
    kw = dict(repeat=False, shuffle=False, mirror=True, seed=2)
    out = np.concatenate(batches(pipeline.make_dataset(path, 10, **kw)))
    again = np.concatenate(batches(pipeline.make_dataset(path, 10, **kw)))
    np.testing.assert_array_equal(out, again)
    flipped = [
        not np.array_equal(o, a) and np.array_equal(o, a[:, ::-1])
        for o, a in zip(out, imgs)
    ]
    same = [np.array_equal(o, a) for o, a in zip(out, imgs)]
    assert all(f or s for f, s in zip(flipped, same))
    assert 10 <= sum(flipped) <= 40


def test_labels_stay_with_their_images(dataset):
    path, imgs, labels = dataset
    by_image = {a.tobytes(): lab for a, lab in zip(imgs, labels)}
    ds = pipeline.make_dataset(path, 5, with_labels=True, seed=4, mirror=False)
    for x, y in batches(ds, 20):
        assert x.shape == (5, 16, 16, 3) and y.shape == (5, 3)
        assert y.dtype == np.float32
        for img, lab in zip(x, y):
            np.testing.assert_array_equal(by_image[img.tobytes()], lab)


def test_errors(dataset, tmp_path):
    path, _, _ = dataset
    with pytest.raises(UserError, match="batch 0"):
        pipeline.make_dataset(path, 0)
    with pytest.raises(UserError, match="larger than the 50 images"):
        pipeline.make_dataset(path, 64, repeat=False)
    unlabelled = write_dataset(tmp_path / "u", synthetic.make_images(4, 8)[0])
    with pytest.raises(UserError, match="has no labels"):
        pipeline.make_dataset(unlabelled, 2, with_labels=True)
    with pytest.raises(UserError, match="does not exist"):
        pipeline.make_dataset(tmp_path / "nope", 2)


def test_to_float_and_load_images(dataset):
    path, imgs, labels = dataset
    x = pipeline.to_float(tf.constant([[0, 255, 128]], tf.uint8)).numpy()
    np.testing.assert_allclose(x, [[-1.0, 1.0, 128 / 127.5 - 1]], atol=1e-6)
    got = pipeline.load_images(path, 8)
    assert got.dtype == np.uint8 and got.shape == (8, 16, 16, 3)
    np.testing.assert_array_equal(got, imgs[:8])
    got, lab = pipeline.load_images(path, 60, with_labels=True)
    np.testing.assert_array_equal(got[50:], imgs[:10])  # cycled
    np.testing.assert_array_equal(lab[50:], labels[:10])
    low = pipeline.load_images(path, 3, res=4)
    np.testing.assert_array_equal(
        low, [tfrecords.box_downsample(a, 4) for a in imgs[:3]]
    )


MIRRORED = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from datasets import pipeline
    from dnnlib.util import UserError
    path = sys.argv[1]
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    result = {"replicas": strategy.num_replicas_in_sync}
    ds = pipeline.make_dataset(path, 8, strategy=strategy, repeat=False,
                               mirror=True, with_labels=True, seed=1)
    shapes, seen = [], []
    for imgs, labels in ds:
        local = strategy.experimental_local_results(imgs)
        local_labels = strategy.experimental_local_results(labels)
        shapes.append([list(x.shape) for x in local + local_labels])
        for x in local:
            for a in x.numpy():
                seen.append(min(a.tobytes(), a[:, ::-1].tobytes()).hex())
    result["shapes"] = shapes
    result["seen"] = seen
    try:
        pipeline.make_dataset(path, 7, strategy=strategy)
    except UserError as e:
        result["odd_batch"] = str(e)
    print("RESULT " + json.dumps(result))
    """
)


def test_mirrored_strategy_two_replicas(dataset, tmp_path):
    path, imgs, _ = dataset
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED)
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [sys.executable, str(script), path],
        capture_output=True,
        text=True,
        env=env,
        timeout=SUBPROCESS_DEADLINE,
    )
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    result = json.loads(lines[0][len("RESULT ") :])
    assert result["replicas"] == 2
    # Each replica gets global_batch / 2 = 4 images (and their labels).
    assert result["shapes"] == [
        [[4, 16, 16, 3], [4, 16, 16, 3], [4, 3], [4, 3]]
    ] * (N // 8)
    canon = {min(a.tobytes(), a[:, ::-1].tobytes()).hex() for a in imgs}
    seen = result["seen"]
    assert len(seen) == len(set(seen)) == 48  # no duplicates in the epoch
    assert set(seen) <= canon
    assert "multiple of the 2 replicas" in result["odd_batch"]


def test_skip_batches_resumes_the_same_stream(dataset):
    path, _, _ = dataset
    kw = dict(mirror=True, seed=7, with_labels=True)
    full = batches(pipeline.make_dataset(path, 8, **kw), 14)
    resumed = batches(pipeline.make_dataset(path, 8, skip_batches=9, **kw), 5)
    for (x, y), (a, b) in zip(full[9:], resumed):
        np.testing.assert_array_equal(x, a)
        np.testing.assert_array_equal(y, b)


class _Workers:
    """A stand-in strategy: `workers` input pipelines of `local` replicas;
    `distribute_datasets_from_function` returns every worker's dataset."""

    def __init__(self, workers, local):
        self.workers, self.local = workers, local
        self.num_replicas_in_sync = workers * local

    def distribute_datasets_from_function(self, fn):
        return [
            fn(
                tf.distribute.InputContext(
                    num_input_pipelines=self.workers,
                    input_pipeline_id=w,
                    num_replicas_in_sync=self.num_replicas_in_sync,
                )
            )
            for w in range(self.workers)
        ]


def test_each_worker_reads_its_rows_of_the_one_global_batch(dataset):
    # 2 workers x 2 replicas, global batch 8: worker w's replica i gets rows
    # [(2w + i) * 2, (2w + i + 1) * 2) of the global batch one device reads,
    # and over an epoch the workers read disjoint images.
    path, _, labels = dataset
    kw = dict(mirror=True, seed=3, with_labels=True, repeat=False)
    whole = batches(pipeline.make_dataset(path, 8, **kw))
    per_worker = pipeline.make_dataset(path, 8, strategy=_Workers(2, 2), **kw)
    got = [batches(ds) for ds in per_worker]
    assert [len(g) for g in got] == [2 * len(whole)] * 2
    for b, (x, y) in enumerate(whole):
        for w in range(2):
            for i in range(2):
                r = 2 * w + i
                part, lab = got[w][2 * b + i]
                np.testing.assert_array_equal(part, x[2 * r : 2 * r + 2])
                np.testing.assert_array_equal(lab, y[2 * r : 2 * r + 2])
    seen = [
        [img.tobytes() for part, _ in g for img in part.copy()] for g in got
    ]
    assert not set(seen[0]) & set(seen[1])
    assert len(seen[0]) + len(seen[1]) == 48


def test_the_stream_is_the_jax_backends(dataset):
    # One data order for both backends: the same images, flips included.
    from datasets import tfrecords
    from training.backends.jax import BatchStream

    path, _, _ = dataset
    info = tfrecords.find_dataset(path)
    stream = BatchStream(info, 8, mirror=True, seed=5, skip_batches=4)
    try:
        want = [next(stream) for _ in range(5)]
    finally:
        stream.close()
    ds = pipeline.make_dataset(path, 8, mirror=True, seed=5, skip_batches=4)
    for a, b in zip(want, batches(ds, 5)):
        np.testing.assert_array_equal(a, b)
