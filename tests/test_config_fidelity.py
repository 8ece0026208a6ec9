"""Every published config against its original, number by number.

The values below are written out by hand from the originals (file and line
in the README's "Each config against its original"), not read back from
config.py, so a config that drifts from its original fails here. The same
rows must appear in that README table.

msg-stylegan-tf: train.py (HEAD 41fb4eb) L33-38 mirror, L46-47 presets
(4 GPUs 16, 8 GPUs 32), L50-52 kimg and lr; README L132-136 GPUs per
dataset; history: flowers at 2 GPUs batch 32 (c50608e train.py L39, L49),
indian_celebs at 4 GPUs batch 16 (90cdb06 train.py L34, L45).
NVlabs/stylegan: train.py L37-43 mirror, L49 8-GPU minibatch, L52-55 kimg,
start and lr; training/training_loop.py L59-71 schedule defaults.
progressive_growing_of_gans: config.py L53/L55/L72 mirror (celebahq on,
cifar10 off, lsun on), L103 preset-v2-8gpus; train.py L90-101 schedule
defaults, L134 G_smoothing; loss.py L44-45 WGAN-GP.
BMSG-GAN: sourcecode/train.py L64-66 flip on, L118-132 lr and Adam, L142-144
EMA 0.999.
"""

import re
from pathlib import Path

import pytest

import config as config_lib

ROOT = Path(__file__).resolve().parents[1]

# NVlabs' StyleGAN, 8 GPUs (train.py L49, L54; training_loop.py L71).
NVLABS_MINIBATCH = ((4, 512), (8, 256), (16, 128), (32, 64), (64, 32))
NVLABS_LR = ((128, 0.0015), (256, 0.002), (512, 0.003), (1024, 0.003))
NVLABS_TICK = (
    (4, 160),
    (8, 140),
    (16, 120),
    (32, 100),
    (64, 80),
    (128, 60),
    (256, 40),
    (512, 30),
    (1024, 20),
)
# ProGAN's preset-v2-8gpus (config.py L103; train.py L101).
PROGAN_MINIBATCH = ((4, 512), (8, 256), (16, 128), (32, 64), (64, 32))
PROGAN_LR = ((128, 0.0015), (256, 0.002), (512, 0.003), (1024, 0.003))
PROGAN_TICK = (
    (4, 160),
    (8, 140),
    (16, 120),
    (32, 100),
    (64, 80),
    (128, 60),
    (256, 40),
    (512, 20),
    (1024, 10),
)

FIXED = "fixed"
NVLABS = "NVlabs 8-GPU, from 8x8"
PROGAN = "ProGAN v2 8-GPU, from 4x4"

# config: (dataset, res, batch, mirror, lr, loss, penalty, kimg, schedule)
R1, GP, NONE = "R1 10", "GP 10, drift 0.001", "none"
NS, WGAN, RH = "logistic", "wgan-gp", "relativistic-hinge"
ORIGINALS = {
    # msg-stylegan-tf as the author ran it.
    "msg-stylegan-ffhq": ("ffhq", 1024, 16, True, 0.003, NS, R1, 25000, FIXED),
    "msg-stylegan-celebahq": (
        "celebahq",
        1024,
        32,
        True,
        0.003,
        NS,
        R1,
        25000,
        FIXED,
    ),
    "msg-stylegan-lsun-churches": (
        "lsun-churches",
        256,
        32,
        False,
        0.003,
        NS,
        R1,
        25000,
        FIXED,
    ),
    "msg-stylegan-flowers": (
        "flowers",
        256,
        32,
        True,
        0.003,
        NS,
        R1,
        25000,
        FIXED,
    ),
    "msg-stylegan-indian-celebs": (
        "indian-celebs",
        256,
        16,
        True,
        0.003,
        NS,
        R1,
        25000,
        FIXED,
    ),
    "msg-stylegan-cifar10": (
        "cifar10",
        32,
        32,
        False,
        0.003,
        NS,
        R1,
        25000,
        FIXED,
    ),
    # NVlabs' StyleGAN, progressive, 8 GPUs.
    "stylegan-ffhq": ("ffhq", 1024, 32, True, 0.001, NS, R1, 25000, NVLABS),
    "stylegan-celebahq": (
        "celebahq",
        1024,
        32,
        True,
        0.001,
        NS,
        R1,
        25000,
        NVLABS,
    ),
    "stylegan-lsun-churches": (
        "lsun-churches",
        256,
        32,
        False,
        0.001,
        NS,
        R1,
        25000,
        NVLABS,
    ),
    "stylegan-flowers": (
        "flowers",
        256,
        32,
        True,
        0.001,
        NS,
        R1,
        25000,
        NVLABS,
    ),
    "stylegan-indian-celebs": (
        "indian-celebs",
        256,
        32,
        True,
        0.001,
        NS,
        R1,
        25000,
        NVLABS,
    ),
    "stylegan-cifar10": (
        "cifar10",
        32,
        32,
        False,
        0.001,
        NS,
        R1,
        25000,
        NVLABS,
    ),
    # The fixed-resolution StyleGAN ablation: MSG-StyleGAN's recipe.
    "stylegan-noprog-ffhq": (
        "ffhq",
        1024,
        16,
        True,
        0.003,
        NS,
        R1,
        25000,
        FIXED,
    ),
    "stylegan-noprog-celebahq": (
        "celebahq",
        1024,
        32,
        True,
        0.003,
        NS,
        R1,
        25000,
        FIXED,
    ),
    "stylegan-noprog-lsun-churches": (
        "lsun-churches",
        256,
        32,
        False,
        0.003,
        NS,
        R1,
        25000,
        FIXED,
    ),
    "stylegan-noprog-flowers": (
        "flowers",
        256,
        32,
        True,
        0.003,
        NS,
        R1,
        25000,
        FIXED,
    ),
    "stylegan-noprog-indian-celebs": (
        "indian-celebs",
        256,
        16,
        True,
        0.003,
        NS,
        R1,
        25000,
        FIXED,
    ),
    "stylegan-noprog-cifar10": (
        "cifar10",
        32,
        32,
        False,
        0.003,
        NS,
        R1,
        25000,
        FIXED,
    ),
    # BMSG-GAN's code (flip on, lr 0.003); the paper's WGAN-GP.
    "msg-progan-ffhq": ("ffhq", 1024, 16, True, 0.003, WGAN, GP, 25000, FIXED),
    "msg-progan-celebahq": (
        "celebahq",
        1024,
        32,
        True,
        0.003,
        WGAN,
        GP,
        25000,
        FIXED,
    ),
    "msg-progan-lsun-churches": (
        "lsun-churches",
        256,
        32,
        True,
        0.003,
        WGAN,
        GP,
        25000,
        FIXED,
    ),
    "msg-progan-flowers": (
        "flowers",
        256,
        32,
        True,
        0.003,
        WGAN,
        GP,
        25000,
        FIXED,
    ),
    "msg-progan-cifar10": (
        "cifar10",
        32,
        32,
        True,
        0.003,
        WGAN,
        GP,
        25000,
        FIXED,
    ),
    # BMSG-GAN's code defaults, relativistic hinge.
    "msg-progan-bmsg-ffhq": (
        "ffhq",
        1024,
        16,
        True,
        0.003,
        RH,
        NONE,
        25000,
        FIXED,
    ),
    "msg-progan-bmsg-celebahq": (
        "celebahq",
        1024,
        32,
        True,
        0.003,
        RH,
        NONE,
        25000,
        FIXED,
    ),
    "msg-progan-bmsg-lsun-churches": (
        "lsun-churches",
        256,
        32,
        True,
        0.003,
        RH,
        NONE,
        25000,
        FIXED,
    ),
    "msg-progan-bmsg-flowers": (
        "flowers",
        256,
        32,
        True,
        0.003,
        RH,
        NONE,
        25000,
        FIXED,
    ),
    "msg-progan-bmsg-cifar10": (
        "cifar10",
        32,
        32,
        True,
        0.003,
        RH,
        NONE,
        25000,
        FIXED,
    ),
    # ProGAN as published.
    "progan-ffhq": ("ffhq", 1024, 32, True, 0.001, WGAN, GP, 12000, PROGAN),
    "progan-celebahq": (
        "celebahq",
        1024,
        32,
        True,
        0.001,
        WGAN,
        GP,
        12000,
        PROGAN,
    ),
    "progan-lsun-churches": (
        "lsun-churches",
        256,
        32,
        True,
        0.001,
        WGAN,
        GP,
        12000,
        PROGAN,
    ),
    "progan-flowers": (
        "flowers",
        256,
        32,
        True,
        0.001,
        WGAN,
        GP,
        12000,
        PROGAN,
    ),
    "progan-cifar10": (
        "cifar10",
        32,
        32,
        False,
        0.001,
        WGAN,
        GP,
        12000,
        PROGAN,
    ),
    # MSG-GAN v1 (BMSG-GAN's first version): spectral norm, lr 0.0003.
    "msg-gan-v1-ffhq": ("ffhq", 1024, 16, True, 0.0003, RH, NONE, 25000, FIXED),
    "msg-gan-v1-celebahq": (
        "celebahq",
        1024,
        32,
        True,
        0.0003,
        RH,
        NONE,
        25000,
        FIXED,
    ),
    "msg-gan-v1-lsun-churches": (
        "lsun-churches",
        256,
        32,
        True,
        0.0003,
        RH,
        NONE,
        25000,
        FIXED,
    ),
    "msg-gan-v1-flowers": (
        "flowers",
        256,
        32,
        True,
        0.0003,
        RH,
        NONE,
        25000,
        FIXED,
    ),
    "msg-gan-v1-cifar10": (
        "cifar10",
        32,
        32,
        True,
        0.0003,
        RH,
        NONE,
        25000,
        FIXED,
    ),
}


@pytest.mark.parametrize("name", sorted(ORIGINALS))
def test_config_matches_its_original(name):
    dataset, res, batch, mirror, lr, loss, penalty, kimg, sched = ORIGINALS[
        name
    ]
    cfg = config_lib.get_config(name)
    assert name.endswith(dataset)
    assert (cfg.img_resolution, cfg.batch, cfg.mirror) == (res, batch, mirror)
    assert (cfg.lr, cfg.loss, cfg.total_kimg) == (lr, loss, kimg)
    # Adam (0, 0.99, 1e-8) in every original.
    assert (cfg.adam_beta1, cfg.adam_beta2, cfg.adam_epsilon) == (0, 0.99, 1e-8)
    if penalty == R1:
        assert (cfg.r1_gamma, cfg.r1_interval) == (10, 1)
    elif penalty == GP:
        assert (cfg.wgan_lambda, cfg.wgan_epsilon) == (10, 0.001)
    if sched == FIXED:
        assert not cfg.progressive
    elif sched == NVLABS:
        assert cfg.progressive and cfg.lod_initial_resolution == 8
        assert cfg.minibatch_schedule == NVLABS_MINIBATCH
        assert cfg.lr_schedule == NVLABS_LR
        assert cfg.tick_kimg_schedule == NVLABS_TICK
        assert cfg.style_mixing_prob == 0.9
    else:
        assert cfg.progressive and cfg.lod_initial_resolution == 4
        assert cfg.minibatch_schedule == PROGAN_MINIBATCH
        assert cfg.lr_schedule == PROGAN_LR
        assert cfg.tick_kimg_schedule == PROGAN_TICK
        assert cfg.style_mixing_prob == 0.0
    if sched != FIXED:
        assert (cfg.lod_training_kimg, cfg.lod_transition_kimg) == (600, 600)


@pytest.mark.parametrize("name", sorted(ORIGINALS))
def test_generator_average(name):
    cfg = config_lib.get_config(name)
    if name.startswith("msg-gan-v1"):
        assert (cfg.ema_kimg, cfg.ema_beta) == (0, 0)  # v1: Gs = G
    elif name.startswith(("msg-progan", "progan")):
        assert cfg.ema_beta == 0.999  # BMSG ema_decay, ProGAN G_smoothing
    else:
        assert (cfg.ema_kimg, cfg.ema_beta) == (10, 0)  # half-life 10 kimg


def readme_cells(name):
    """The README table's first ten cells for a row of ORIGINALS."""
    dataset, res, batch, mirror, lr, loss, penalty, kimg, sched = ORIGINALS[
        name
    ]
    per_res = " by res" if sched != FIXED else ""
    return [
        f"`{name}`",
        dataset,
        str(res),
        f"{batch}{per_res}",
        "yes" if mirror else "no",
        f"{lr:g}{per_res}",
        loss,
        penalty,
        f"{kimg:,}",
        sched,
    ]


def test_readme_table_states_the_same_values():
    text = (ROOT / "README.md").read_text()
    start = text.index("## Each config against its original")
    section = text[start : text.index("\n## ", start + 1)]
    links = dict(re.findall(r"^\[(\w+)\]: (https://\S+)$", section, re.M))
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) >= 12:
            rows[cells[0].strip("`")] = cells
    assert sorted(rows) == sorted(ORIGINALS)
    for name, cells in rows.items():
        assert cells[:10] == readme_cells(name), name
        # Every row cites its original by file and line (reference links
        # defined below the table), except where none exists.
        used = re.findall(r"\[(\w+)\]", cells[10] + cells[11])
        assert set(used) <= set(links), (name, set(used) - set(links))
        assert used or cells[10].startswith("none"), name
    for url in links.values():
        assert "#L" in url, url
