"""Tests for build_networks, weights by path, and the summary CLI."""

import numpy as np
import pytest

import config as config_lib
from msg_stylegan import networks
from tests.helpers import tiny_config


def test_full_size_networks_build_at_1024():
    cfg = config_lib.get_config("msg-stylegan-ffhq")
    G, D = networks.build_networks(cfg)
    assert G.num_ws == 18
    fcs = G.mapping.fcs
    assert len(fcs) == 8
    for fc in fcs:
        # 512 * 512 weights + 512 biases.
        assert sum(int(np.prod(v.shape)) for v in fc.trainable_variables) == (
            262_656
        )
    # The StyleGAN synthesis at 1024 with its toRGBs, as NVIDIA's printout.
    assert networks.count_params(G) == 26_219_627
    assert D.num_inputs == 9


def test_state_round_trip_and_shape_check():
    cfg = tiny_config(16)
    G1, _ = networks.build_networks(cfg)
    G2, _ = networks.build_networks(cfg)
    networks.set_state(G2, networks.get_state(G1))
    for a, b in zip(G1.variables, G2.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    state = networks.get_state(G1)
    key = "synthesis/b8/torgb/kernel"
    state[key] = np.zeros((1, 1, 3, 3), "float32")
    with pytest.raises(ValueError, match="torgb/kernel' has shape"):
        networks.set_state(G2, state)
    del state[key]
    with pytest.raises(ValueError, match="missing"):
        networks.set_state(G2, state)


def test_summary_cli_prints_table_and_totals(capsys):
    networks._main(
        ["--config", "msg-stylegan-cifar10", "--resolution", "32", "--summary"]
    )
    out = capsys.readouterr().out
    assert "mapping/fc0" in out and "262,656" in out
    assert "synthesis/b32/torgb" in out and "b16/combine" in out
    assert "G " in out and "D " in out and "parameters" in out


def test_summary_cli_bad_input(capsys):
    with pytest.raises(SystemExit) as e:
        networks._main(["--resolution", "48"])
    assert e.value.code == 2
    assert "power of two" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        networks._main(["--config", "nope"])
    assert "valid configs" in capsys.readouterr().err


@pytest.mark.parametrize(
    "name, rows",
    [
        ("msg-progan-demo", ["b4/dense", "b16/torgb", "b8/combine", "b4/fc"]),
        ("progan-demo", ["b8/fromrgb", "b4/fromrgb", "b16/pool"]),
        ("stylegan-demo", ["synthesis/b16/torgb", "b8/fromrgb", "b4/mbstd"]),
    ],
)
def test_summary_cli_prints_every_architecture(name, rows, capsys):
    networks._main(["--config", name, "--summary"])
    out = capsys.readouterr().out
    for row in rows:
        assert row in out, row
    assert f"{name} at 16x16: G " in out


def test_summary_cli_architecture_override(capsys):
    networks._main(
        ["--config", "msg-stylegan-demo", "--architecture", "progan"]
    )
    # The ProGAN G at the demo's channels (the msg-progan-demo table's).
    assert "G 250,825 parameters" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        networks._main(["--architecture", "nope"])
    assert e.value.code == 2
