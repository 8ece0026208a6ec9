"""The training schedule: lod and per-resolution minibatch, lr and tick length.

SPEC section 10 (NVlabs' `training_schedule`): from `lod_initial_resolution`
each phase trains `lod_training_kimg` at a resolution, then fades the next
one in over `lod_transition_kimg`. A non-progressive config has one phase:
lod 0 at full resolution with the config's batch, lr and tick length.
"""

import math
from dataclasses import dataclass

import numpy as np

from msg_stylegan.progressive import resolution_and_alpha
from training import precision


@dataclass(frozen=True)
class Phase:
    """Where training stands at one kimg.

    Attributes:
        lod: level of detail (0 = full resolution; fractional in a fade-in).
        resolution: the current (finer, in a fade-in) resolution, `res`.
        alpha: the coarser level's weight in a fade-in, else 0.
        batch: global minibatch. lr: learning rate of G and D.
        tick_kimg: kimg per tick.
    """

    lod: float
    resolution: int
    alpha: float
    batch: int
    lr: float
    tick_kimg: float


def compute_lod(cfg, kimg):
    """SPEC section 10's lod at `kimg` thousand images (0 if not growing)."""
    if not cfg.progressive:
        return 0.0
    phase_kimg = cfg.lod_training_kimg + cfg.lod_transition_kimg
    index = math.floor(kimg / phase_kimg) if phase_kimg > 0 else 0
    t = kimg - index * phase_kimg
    lod = math.log2(cfg.img_resolution) - math.log2(cfg.lod_initial_resolution)
    lod -= index
    if cfg.lod_transition_kimg > 0:
        lod -= max(t - cfg.lod_training_kimg, 0.0) / cfg.lod_transition_kimg
    return max(lod, 0.0)


def phase_at(cfg, cur_nimg):
    """The `Phase` after `cur_nimg` training images."""
    lod = compute_lod(cfg, cur_nimg / 1000.0)
    res, alpha = resolution_and_alpha(lod, cfg.img_resolution)
    return Phase(
        lod=lod,
        resolution=res,
        alpha=alpha,
        batch=int(dict(cfg.minibatch_schedule).get(res, cfg.batch)),
        lr=float(dict(cfg.lr_schedule).get(res, cfg.lr)),
        tick_kimg=float(
            dict(cfg.tick_kimg_schedule).get(res, cfg.kimg_per_tick)
        ),
    )


def resets_optimizer(prev_lod, lod):
    """NVlabs' `reset_opt_for_new_lod`: floor or ceil of lod changed.

    That is the start of a fade-in (a new resolution starts) and its end.
    """
    return math.floor(lod) != math.floor(prev_lod) or math.ceil(
        lod
    ) != math.ceil(prev_lod)


def reset_optimizer(opt):
    """Zero Adam's moments and step count; keep the learning rate (and an
    fp16 loss scale, as NVlabs did)."""
    adam = precision.inner(opt)
    for v in adam.variables:
        if v.path != adam.learning_rate.path:
            v.assign(np.zeros(v.shape, v.dtype))


def set_learning_rate(opt, lr):
    opt.learning_rate.assign(lr)
