"""Shared test helpers: tiny configs, shared data paths, layer checks."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import config as config_lib

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

# How long a subprocess may run before a test calls it hung and kills it.
# Generous on purpose: tests wait for states, and a loaded 2-core machine
# may be many times slower than an idle one; this only catches hangs.
SUBPROCESS_DEADLINE = 3600


def shared_data(*parts):
    """Path into ../shared/data, skipping the test when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not found: {path}")
    return path


def tiny_config(res=32, **changes):
    """A CPU-sized config: small channels, short mapping, batch 8."""
    base = replace(
        config_lib.BASE,
        name="test",
        img_resolution=res,
        z_dim=16,
        w_dim=16,
        mapping_layers=2,
        channel_base=128,
        channel_max=16,
        batch=8,
    )
    return replace(base, **changes)


def check_layer(layer, inputs, expected_shape, expected_trainable=None):
    """Eager call, compiled-style call, config round trip for one layer.

    Returns the eager output so the caller can check values.
    """
    out = layer(*inputs) if isinstance(inputs, tuple) else layer(inputs)
    assert tuple(out.shape) == tuple(expected_shape)
    if expected_trainable is not None:
        n = int(sum(np.prod(v.shape) for v in layer.trainable_variables))
        assert n == expected_trainable
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    return out


def make_tiny_snapshot(path, res=16, **changes):
    """Write an untrained tiny snapshot in train.py's format; returns cfg.

    G, D and Gs are built from `tiny_config(res, **changes)`. Gs gets
    non-zero noise strengths so the noise modes give different images.
    The optimizer state (only resume needs it) is left out.
    """
    from msg_stylegan import networks, snapshot

    cfg = tiny_config(res, **changes)
    G, D = networks.build_networks(cfg)
    Gs = networks.build_generator(cfg, name="Gs")
    gs_state = networks.get_state(G)
    for key, value in gs_state.items():
        if key.endswith("noise/strength"):
            gs_state[key] = np.full_like(value, 0.5)
    networks.set_state(Gs, gs_state)
    snapshot.save(
        path,
        {
            "kimg": 0.0,
            "cur_nimg": 0,
            "step": 0,
            "config": cfg.to_json(),
            "G": networks.get_state(G),
            "D": networks.get_state(D),
            "Gs": networks.get_state(Gs),
            "rng": {"seed": int(cfg.seed), "step": 0},
        },
    )
    return cfg
