"""metric_main end to end: tiny snapshot, tiny dataset, real Inception."""

import glob
import math
import os
import re

import numpy as np
import pytest

from datasets import dataset_tool
from dnnlib.util import UserError
from metrics import metric_main
from tests.helpers import make_tiny_snapshot, tiny_config

RES = 16
NUM = 10  # images per side: the Inception net runs at a few img/s here
LINE = re.compile(
    r"^(\S+) time (\d+s|\d+m \d\ds) (\w+) (-?\d+\.\d+) resize=(\S+)$"
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "shapes16"
    dataset_tool.main(
        [
            "create_synthetic",
            str(path),
            "--resolution",
            str(RES),
            "--num-images",
            "40",
        ]
    )
    return str(path)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A folder with one snapshot whose config names no dataset."""
    path = tmp_path_factory.mktemp("run")
    make_tiny_snapshot(path / "network-snapshot-000000.pkl", res=RES)
    return path


@pytest.fixture(scope="module")
def module_extractor(weights_npz):
    """Loaded once; batch NUM so no pass is padded."""
    return metric_main.get_extractor(str(weights_npz), batch_size=NUM)


@pytest.fixture
def tiny_kid():
    """A registered metric small enough for the training-loop hook."""

    def kid_tiny(opts):
        return metric_main.compute_kid(opts, NUM)

    metric_main.register_metric(kid_tiny)
    yield "kid_tiny"
    metric_main._METRICS.pop("kid_tiny")


def test_registry():
    names = metric_main.metric_names()
    for name in ("fid50k", "fid10k", "fid2k", "fid1k", "kid50k", "kid10k"):
        assert name in names
    metric_main.check_metric_names(["fid50k", "kid10k"])
    with pytest.raises(UserError, match="unknown metric 'fid5k'.*fid50k"):
        metric_main.check_metric_names(["fid50k", "fid5k"])


def test_draw_reals():
    uses, flips = metric_main.draw_reals(40, 90)
    assert len(uses) == 90 and not flips.any()
    # Every pass is a permutation; the first is not the stored order.
    assert sorted(uses[:40]) == list(range(40))
    assert sorted(uses[40:80]) == list(range(40))
    assert list(uses[:40]) != list(range(40))
    assert len(set(uses[80:])) == 10
    again, _ = metric_main.draw_reals(40, 90)
    np.testing.assert_array_equal(uses, again)  # a fixed seed
    # Mirroring flips about half, the same ones each time, and does not
    # change which images are drawn.
    muses, flips = metric_main.draw_reals(40, 90, mirror=True)
    np.testing.assert_array_equal(muses, uses)
    assert 25 < flips.sum() < 65
    np.testing.assert_array_equal(
        flips, metric_main.draw_reals(40, 90, mirror=True)[1]
    )


def test_reals_are_drawn_shuffled_and_mirrored(dataset):
    from datasets.tfrecords import iterate_images

    stored = np.stack(list(iterate_images(dataset)))  # [40, 16, 16, 3]
    batches = list(metric_main.iterate_reals(dataset, 90, 32, mirror=True))
    assert [len(b) for b in batches] == [32, 32, 26]
    got = np.concatenate(batches)
    # The same images and flips as draw_reals, in stored order.
    uses, flips = metric_main.draw_reals(40, 90, mirror=True)
    order = np.argsort(uses, kind="stable")
    want = [
        stored[uses[i]][:, ::-1] if flips[i] else stored[uses[i]] for i in order
    ]
    np.testing.assert_array_equal(got, np.stack(want))
    # Fewer images than stored: a shuffled subset, not the first ones.
    some = np.concatenate(list(metric_main.iterate_reals(dataset, 10, 32)))
    picked = sorted(metric_main.draw_reals(40, 10)[0])
    np.testing.assert_array_equal(some, stored[picked])
    assert picked != list(range(10))


def test_fakes_repeat(run_dir):
    G, _ = metric_main.get_network(run_dir / "network-snapshot-000000.pkl")
    a = np.concatenate(list(metric_main.iterate_fakes(G, 6, 4)))
    b = np.concatenate(list(metric_main.iterate_fakes(G, 6, 4)))
    assert a.shape == (6, RES, RES, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert a.std() > 0


@pytest.mark.large
def test_fid_line_file_and_cache(
    run_dir, dataset, module_extractor, capsys, tmp_path
):
    snap = run_dir / "network-snapshot-000000.pkl"
    result = metric_main.evaluate_snapshot(
        "fid1k",
        snap,
        data=dataset,
        run_dir=str(run_dir),
        inception=module_extractor,
        num=NUM,
    )
    out, err = capsys.readouterr()
    m = LINE.match(out.strip())
    assert m, out
    assert m.group(1) == "network-snapshot-000000"
    assert m.group(3) == "fid1k" and m.group(5) == "tf1"
    assert result.resize == "tf1"
    assert math.isfinite(result.value) and result.value > 0
    assert float(m.group(4)) == pytest.approx(result.value, abs=1e-4)
    assert (result.num_real, result.num_fake) == (NUM, NUM)
    assert "reals" in err and "fakes" in err  # progress bars
    lines = (run_dir / "metric-fid1k.txt").read_text().splitlines()
    assert lines == [out.strip()]
    # The real statistics went to the cache and are read back, not redone.
    cached = glob.glob(str(tmp_path / "cache" / "fid-stats" / "*.npz"))
    assert len(cached) == 1
    opts = metric_main.MetricOptions(
        G=None, data=dataset, mirror=False, extractor=module_extractor
    )
    stamp = os.stat(cached[0]).st_mtime_ns
    again = metric_main.real_stats(opts, NUM)
    assert "reals" not in capsys.readouterr().err
    assert os.stat(cached[0]).st_mtime_ns == stamp
    assert again.num_items == NUM


def test_training_loop_hook(
    run_dir, dataset, weights_npz, tiny_kid, tmp_path, monkeypatch
):
    """train.py's `--metrics` path: run_snapshot_metrics writes the line."""
    from training.stats import StatsCollector
    from training.training_loop import run_snapshot_metrics

    monkeypatch.setenv("MSG_STYLEGAN_INCEPTION", str(weights_npz))
    snap = run_dir / "network-snapshot-000000.pkl"
    cfg = tiny_config(RES, data=dataset, metrics=(tiny_kid,))
    out_dir = tmp_path / "run"
    out_dir.mkdir()
    run_snapshot_metrics(cfg, str(snap), str(out_dir), StatsCollector(None), 0)
    lines = (out_dir / f"metric-{tiny_kid}.txt").read_text().splitlines()
    assert len(lines) == 1
    m = LINE.match(lines[0])
    assert m and m.group(1) == "network-snapshot-000000", lines
    assert m.group(3) == tiny_kid and m.group(5) == cfg.fid_resize == "tf1"
    assert math.isfinite(float(m.group(4)))


@pytest.mark.large
def test_training_measures_start_and_end(
    dataset, weights_npz, tiny_kid, tmp_path, monkeypatch
):
    """`--metrics` also measures the initial network (snapshot 000000)."""
    from training import training_loop

    monkeypatch.setenv("MSG_STYLEGAN_INCEPTION", str(weights_npz))
    cfg = tiny_config(RES, data=dataset, metrics=(tiny_kid,), total_kimg=0.008)
    final = training_loop.training_loop(cfg, str(tmp_path))
    assert os.path.basename(final) == "network-final.pkl"
    assert (tmp_path / "network-snapshot-000000.pkl").is_file()
    lines = (tmp_path / f"metric-{tiny_kid}.txt").read_text().splitlines()
    names = [LINE.match(line).group(1) for line in lines]
    assert names == ["network-snapshot-000000", "network-final"], lines


def test_bad_inputs(run_dir, dataset, tmp_path):
    snap = run_dir / "network-snapshot-000000.pkl"
    with pytest.raises(UserError, match="unknown metric 'fid3k'"):
        metric_main.evaluate_snapshot("fid3k", snap, data=dataset)
    with pytest.raises(UserError, match="does not exist"):
        metric_main.evaluate_snapshot("fid1k", tmp_path / "no.pkl")
    with pytest.raises(UserError, match="names no dataset; pass --data"):
        metric_main.evaluate_snapshot("fid1k", snap)
    with pytest.raises(UserError, match="does not exist"):
        metric_main.evaluate_snapshot("fid1k", snap, data=tmp_path / "none")
    other = tmp_path / "shapes8"
    dataset_tool.main(
        ["create_synthetic", str(other), "--resolution", "8"]
        + ["--num-images", "4"]
    )
    with pytest.raises(UserError, match="8x8x3 images but the network"):
        metric_main.evaluate_snapshot("fid1k", snap, data=other)
    with pytest.raises(UserError, match="not found"):
        metric_main.evaluate_snapshot(
            "fid1k", snap, data=dataset, inception=tmp_path / "w.npz"
        )


def test_extractor_mode_must_match(module_extractor):
    assert module_extractor.resize == "tf1"  # the default
    got = metric_main.get_extractor(module_extractor, resize="tf1")
    assert got is module_extractor
    with pytest.raises(UserError, match="resizes in tf1 mode, not half-pixel"):
        metric_main.get_extractor(module_extractor, resize="half-pixel")
    with pytest.raises(UserError, match="valid modes: tf1, half-pixel"):
        metric_main.get_extractor(None, resize="bicubic")


def test_train_flag_sets_the_config(dataset):
    """train.py --fid-resize reaches cfg.fid_resize (default tf1)."""
    import train

    argv = ["--config=msg-stylegan-demo", f"--data={dataset}"]
    cfg = train.resolve_config(train.build_parser().parse_args(argv))
    assert cfg.fid_resize == "tf1"
    args = train.build_parser().parse_args(argv + ["--fid-resize=half-pixel"])
    assert train.resolve_config(args).fid_resize == "half-pixel"


@pytest.mark.large
def test_fid_on_two_devices_equals_one(run_dir, dataset, weights_npz, tmp_path):
    """--gpus=N's path on the two logical CPUs: the reals' and the fakes'
    batches alternate between the devices, the value is one device's."""
    import shutil

    snap = run_dir / "network-snapshot-000000.pkl"
    extractor = metric_main.get_extractor(str(weights_npz), batch_size=NUM // 2)
    kw = dict(data=dataset, inception=extractor, num=NUM, progress=False)
    one = metric_main.evaluate_snapshot("fid1k", snap, **kw)
    shutil.rmtree(tmp_path / "cache")  # compute the reals again, too
    devices = ["cpu:0", "cpu:1"]
    two = metric_main.evaluate_snapshot("fid1k", snap, devices=devices, **kw)
    assert (two.num_real, two.num_fake) == (NUM, NUM)
    assert two.value == pytest.approx(one.value, rel=1e-5)
    # Each device has its own copy of Gs and of the Inception network.
    for kind in ("copy_generator", "copy_extractor"):
        copy = metric_main._replicas[(kind, "cpu:1")][1]
        model = copy.model if kind == "copy_extractor" else copy
        assert model.weights[0].value.device.endswith("CPU:1")


@pytest.mark.large
def test_fid_full_uses_every_real_once(
    run_dir, dataset, module_extractor, capsys, monkeypatch
):
    """fid10k_full: NUM fakes (--num) against all 40 reals, each once and
    unflipped even when the config mirrors; the reals' statistics are
    cached once and equal those of the 40 stored images."""
    from datasets.tfrecords import iterate_images
    from metrics.fid import fid_from_stats

    assert {"fid10k_full", "fid50k_full"} <= set(metric_main.metric_names())
    snap = run_dir / "network-snapshot-000000.pkl"
    kw = dict(data=dataset, inception=module_extractor, progress=False)
    result = metric_main.evaluate_snapshot(
        "fid10k_full", snap, mirror=True, num=NUM, **kw
    )
    assert (result.num_real, result.num_fake) == (40, NUM)
    assert LINE.match(capsys.readouterr().out.strip())
    # The same value from the stored images in stored order, no flips.
    stored = np.stack(list(iterate_images(dataset)))
    real = np.concatenate(
        [module_extractor(stored[i : i + NUM]) for i in range(0, 40, NUM)]
    )
    G, _ = metric_main.get_network(snap)
    fake = np.concatenate(
        [module_extractor(b) for b in metric_main.iterate_fakes(G, NUM, NUM)]
    )
    want = fid_from_stats(
        real.mean(0),
        np.cov(real, rowvar=False),
        fake.mean(0),
        np.cov(fake, rowvar=False),
    )
    assert result.value == pytest.approx(want, rel=1e-4)
    # A second metric on the same dataset reads the reals from the cache.
    calls = []

    def reads(*args, **kwargs):  # records only when the reals are read
        calls.append(args)
        yield from ()

    monkeypatch.setattr(metric_main, "iterate_reals", reads)
    opts = metric_main.MetricOptions(
        G=None, data=dataset, mirror=True, extractor=module_extractor
    )
    again = metric_main.full_real_stats(opts)
    assert calls == [] and again.num_items == 40
