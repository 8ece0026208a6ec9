"""generate.py end to end on a tiny untrained snapshot, and its bad inputs."""

import os
import pickle

import numpy as np
import pytest
from PIL import Image

import generate
from tests.helpers import make_tiny_snapshot

RES = 16  # scales 4, 8, 16; num_ws = 6


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    path = tmp_path_factory.mktemp("snap") / "network-final.pkl"
    make_tiny_snapshot(path, res=RES)
    return str(path)


def run(*argv):
    """generate's main in-process, as the command line runs it."""
    return generate.run_cli(generate.main, [str(a) for a in argv])


def read(path):
    return np.asarray(Image.open(path))


def fails(capsys, *argv):
    """Run, expect exit 2, return the single error line."""
    with pytest.raises(SystemExit) as e:
        run(*argv)
    assert e.value.code == 2
    errors = [ln for ln in capsys.readouterr().err.splitlines() if ln]
    errors = [ln for ln in errors if "error:" in ln]
    assert len(errors) == 1, errors
    return errors[0]


def test_seed_files(network, tmp_path, capsys):
    outdir = tmp_path / "new" / "out"  # created, parents too
    assert run("--network", network, "--seeds=0-2,5", "--outdir", outdir) == 0
    names = sorted(os.listdir(outdir))
    assert names == [f"seed000{s}.png" for s in (0, 1, 2, 5)]
    img = read(outdir / "seed0005.png")
    assert img.shape == (RES, RES, 3) and img.dtype == np.uint8
    assert img.std() > 0  # an image, not a blank
    assert "Wrote 4 images" in capsys.readouterr().out


def test_default_seeds_are_0_to_7(network, tmp_path):
    run("--network", network, "--outdir", tmp_path)
    assert len(os.listdir(tmp_path)) == 8


@pytest.mark.parametrize("noise_mode", ["const", "random"])
def test_same_seed_same_image(network, tmp_path, noise_mode):
    # Seed 3 in a batch of four, and alone: the same pixels both times.
    a, b = tmp_path / "a", tmp_path / "b"
    common = ["--network", network, "--noise-mode", noise_mode]
    run(*common, "--seeds=0-3", "--batch=4", "--outdir", a)
    run(*common, "--seeds=3", "--batch=1", "--outdir", b)
    # The same command twice: the same bytes.
    c = tmp_path / "c"
    run(*common, "--seeds=3", "--batch=1", "--outdir", c)
    np.testing.assert_array_equal(
        read(b / "seed0003.png"), read(c / "seed0003.png")
    )
    # In a batch of four or alone: the same image up to the last bit of the
    # conv kernels (which may round differently per batch size).
    diff = np.abs(
        read(a / "seed0003.png").astype(int) - read(b / "seed0003.png")
    )
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01
    assert not np.array_equal(
        read(a / "seed0002.png"), read(a / "seed0003.png")
    )


def test_noise_modes_differ(network, tmp_path):
    # The tiny snapshot has non-zero noise strengths, so each mode shows.
    imgs = {}
    for mode in ("const", "random", "none"):
        run(
            "--network",
            network,
            "--seeds=1",
            "--noise-mode",
            mode,
            "--outdir",
            tmp_path / mode,
        )
        imgs[mode] = read(tmp_path / mode / "seed0001.png")
    assert not np.array_equal(imgs["const"], imgs["random"])
    assert not np.array_equal(imgs["const"], imgs["none"])


def test_scales_all_strip(network, tmp_path):
    run("--network", network, "--seeds=4", "--scales=all", "--outdir", tmp_path)
    strip = read(tmp_path / "seed0004-scales.png")
    assert strip.shape == (RES, 3 * RES, 3)
    # Coarse to fine: the 4x4 scale is nearest-upsampled in 4x4 blocks and
    # the last panel is the full-size image itself.
    coarse = strip[:, :RES].reshape(4, 4, 4, 4, 3)
    assert (coarse == coarse[:, :1, :, :1]).all()
    run("--network", network, "--seeds=4", "--outdir", tmp_path)
    np.testing.assert_array_equal(
        strip[:, 2 * RES :], read(tmp_path / "seed0004.png")
    )


def test_grid(network, tmp_path):
    run("--network", network, "--seeds=0-4", "--outdir", tmp_path)
    run("--network", network, "--seeds=0-4", "--grid", "--outdir", tmp_path)
    grid = read(tmp_path / "grid.png")
    assert grid.shape == (2 * RES, 3 * RES, 3)  # 5 seeds: 3 x 2, near square
    np.testing.assert_array_equal(
        grid[RES:, :RES], read(tmp_path / "seed0003.png")
    )
    assert (grid[RES:, 2 * RES :] == 0).all()  # the unused cell
    run("--network", network, "--seeds=0-4", "--grid=5x1", "--outdir", tmp_path)
    assert read(tmp_path / "grid.png").shape == (RES, 5 * RES, 3)
    run(
        "--network",
        network,
        "--seeds=0-4",
        "--grid",
        "--scales=all",
        "--outdir",
        tmp_path,
    )
    assert read(tmp_path / "grid.png").shape == (5 * RES, 3 * RES, 3)


def test_mix(network, tmp_path):
    run("--network", network, "--seeds=0-4", "--outdir", tmp_path)
    run(
        "--network",
        network,
        "--mix-rows=0-1",
        "--mix-cols=2-4",
        "--outdir",
        tmp_path / "mix",
    )
    fig = read(tmp_path / "mix" / "mix.png")
    assert fig.shape == (3 * RES, 4 * RES, 3)
    assert sorted(os.listdir(tmp_path / "mix")) == ["mix.png"]
    assert (fig[:RES, :RES] == 0).all()  # empty corner

    def cell(r, c):
        return fig[r * RES : (r + 1) * RES, c * RES : (c + 1) * RES]

    def seed(s):
        return read(tmp_path / f"seed{s:04d}.png")

    # Equal up to one grey level: the figure and the seed files are made in
    # batches of different sizes, whose conv kernels may round differently.
    def same(a, b):
        assert np.abs(a.astype(int) - b).max() <= 1

    same(cell(0, 1), seed(2))  # top row: columns
    same(cell(2, 0), seed(1))  # left: rows
    assert not np.array_equal(cell(2, 2), seed(1))
    assert not np.array_equal(cell(2, 2), seed(3))
    # Copying every layer from the column seed gives the column's image.
    run(
        "--network",
        network,
        "--mix-rows=0-1",
        "--mix-cols=2-4",
        "--mix-layers=0-5",
        "--outdir",
        tmp_path / "mix",
    )
    fig = read(tmp_path / "mix" / "mix.png")
    same(cell(2, 2), seed(3))


def test_interp_gif(network, tmp_path, capsys):
    run(
        "--network",
        network,
        "--interp=0-2",
        "--frames=4",
        "--trunc=1",
        "--outdir",
        tmp_path,
    )
    gif = Image.open(tmp_path / "interp.gif")
    assert gif.size == (RES, RES)
    assert gif.n_frames == 2 * 4 + 1  # two transitions + the last seed
    out = capsys.readouterr().out
    assert "interp.gif" in out and "9 frames" in out
    assert sorted(os.listdir(tmp_path)) == ["interp.gif"]  # no --seeds files


def test_load_network(network):
    from msg_stylegan import inference, snapshot

    Gs, cfg = inference.load_network(network)
    assert Gs.name == "Gs" and cfg.img_resolution == RES
    stored = snapshot.load(network)["Gs"]
    w_avg = Gs.mapping.w_avg
    np.testing.assert_array_equal(w_avg.numpy(), stored["mapping/w_avg"])
    key = "synthesis/b16/torgb/kernel"
    got = {v.path.split("/", 1)[1]: v for v in Gs.variables}[key]
    np.testing.assert_array_equal(got.numpy(), stored[key])


# Bad input: one line on stderr, exit 2, nothing written.


def test_missing_pkl(tmp_path, capsys):
    err = fails(
        capsys, "--network", tmp_path / "nope.pkl", "--outdir", tmp_path
    )
    assert "nope.pkl" in err and "does not exist" in err


def test_corrupt_pkl(tmp_path, capsys):
    path = tmp_path / "corrupt.pkl"
    path.write_bytes(np.random.RandomState(0).bytes(4096))
    err = fails(capsys, "--network", path, "--outdir", tmp_path / "out")
    assert "corrupt.pkl" in err
    assert not (tmp_path / "out").exists()  # no empty outdir left behind


class _Hostile:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_hostile_pkl(tmp_path, capsys):
    marker = tmp_path / "pwned"
    path = tmp_path / "hostile.pkl"
    path.write_bytes(pickle.dumps({"G": _Hostile(f"echo pwned > {marker}")}))
    err = fails(capsys, "--network", path, "--outdir", tmp_path / "out")
    assert "refus" in err and f"{os.system.__module__}.system" in err
    assert not marker.exists()


def test_weights_do_not_fit(network, tmp_path, capsys):
    from msg_stylegan import snapshot

    data = snapshot.load(network)
    data["Gs"] = dict(data["Gs"])
    data["Gs"]["synthesis/b16/torgb/kernel"] = np.zeros((1, 1, 7, 3), "f4")
    bad = tmp_path / "misfit.pkl"
    snapshot.save(bad, {k: v for k, v in data.items() if k != "format"})
    err = fails(capsys, "--network", bad, "--outdir", tmp_path / "out")
    assert "does not fit" in err and "synthesis/b16/torgb/kernel" in err


@pytest.mark.parametrize(
    "args, expect",
    [
        (["--seeds=1-x"], "bad range '1-x'"),
        (["--seeds=5-2"], "end is before start"),
        (["--grid=3by2"], "bad grid"),
        (["--seeds=0-9", "--grid=3x3"], "holds 9 images"),
        (["--mix-rows=0-3"], "--mix-cols"),
        (["--interp=3"], "at least two seeds"),
        (["--frames=0"], "must be positive"),
        (["--noise-mode=loud"], "invalid choice"),
    ],
)
def test_bad_flags(network, tmp_path, capsys, args, expect):
    err = fails(capsys, "--network", network, "--outdir", tmp_path, *args)
    assert expect in err
    assert os.listdir(tmp_path) == []


def test_mix_layer_out_of_range(network, tmp_path, capsys):
    err = fails(
        capsys,
        "--network",
        network,
        "--mix-rows=0",
        "--mix-cols=1",
        "--mix-layers=4-9",
        "--outdir",
        tmp_path,
    )
    assert "layer 9" in err and "0-5" in err


def test_unwritable_outdir(network, tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("a regular file")
    err = fails(capsys, "--network", network, "--outdir", blocker / "out")
    assert "cannot create outdir" in err and "file.txt" in err


def test_outdir_checked_before_loading(tmp_path, capsys):
    # The outdir is checked before the slow network load.
    blocker = tmp_path / "file.txt"
    blocker.write_text("a regular file")
    missing = tmp_path / "nope.pkl"
    err = fails(capsys, "--network", missing, "--outdir", blocker / "a" / "b")
    assert "is not a directory" in err


@pytest.fixture(scope="module")
def progan_network(tmp_path_factory):
    path = tmp_path_factory.mktemp("snap") / "progan.pkl"
    make_tiny_snapshot(path, res=RES, architecture="msg-progan")
    return str(path)


def test_progan_generates_scales_and_interpolates(progan_network, tmp_path):
    run("--network", progan_network, "--seeds=0-1", "--outdir", tmp_path)
    assert read(tmp_path / "seed0001.png").shape == (RES, RES, 3)
    run(
        "--network",
        progan_network,
        "--seeds=2",
        "--scales=all",
        "--outdir",
        tmp_path,
    )
    assert read(tmp_path / "seed0002-scales.png").shape == (RES, 3 * RES, 3)
    # Interpolation walks in z for a generator without a w space.
    run(
        "--network",
        progan_network,
        "--interp=0-1",
        "--frames=2",
        "--outdir",
        tmp_path,
    )
    assert Image.open(tmp_path / "interp.gif").n_frames == 3


def test_progan_has_no_style_mixing(progan_network, tmp_path, capsys):
    line = fails(
        capsys,
        "--network",
        progan_network,
        "--mix-rows=0-1",
        "--mix-cols=2-3",
        "--outdir",
        tmp_path,
    )
    assert "style mixing needs a StyleGAN generator" in line


def test_progressive_snapshot_generates_at_its_lod(tmp_path):
    from msg_stylegan import snapshot

    path = tmp_path / "prog.pkl"
    make_tiny_snapshot(path, res=RES, architecture="stylegan", progressive=True)
    data = snapshot.load(path)
    data["Gs"]["lod"] = np.asarray(1.0, np.float32)  # 8x8 of 16x16
    snapshot.save(path, {k: v for k, v in data.items() if k != "format"})
    run("--network", path, "--seeds=3", "--outdir", tmp_path)
    run("--network", path, "--seeds=3", "--scales=all", "--outdir", tmp_path)
    img = read(tmp_path / "seed0003.png")
    assert img.shape == (RES, RES, 3)
    # At lod 1 the image is the 8x8 output nearest-upsampled: 2x2 blocks
    # (up to one grey level of rounding in the runtime blend).
    blocks = img.astype(int).reshape(8, 2, 8, 2, 3)
    assert np.abs(blocks - blocks[:, :1, :, :1]).max() <= 1
    assert read(tmp_path / "seed0003-scales.png").shape == (RES, RES, 3)
