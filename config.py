"""Named training configurations as typed data, and their CLI overrides.

Every config is `dataclasses.replace(BASE, ...)` changing only what differs
from the MSG-StyleGAN defaults of SPEC sections 1-4. A resolved config is saved
as `config.json` in the run directory and stored in every snapshot.
"""

import dataclasses
import json
from dataclasses import dataclass, replace

from dnnlib.util import UserError


@dataclass(frozen=True)
class Config:
    """Everything that defines a training run.

    Network fields keep NVIDIA's names so StyleGAN users recognise them;
    `architecture` is `msg` (multi-scale D, the default), `stylegan` (the
    single-input baseline D with minibatch stddev at 4x4 only), `msg-progan`
    or `progan` (SPEC section 11; `spectral_norm`, `pixel_norm` and
    `equalized_lr` are their MSG-GAN v1 switches).
    `progressive` trains the published StyleGAN with progressive growing
    (SPEC section 10); the `*_schedule` fields are ((res, value), ...)
    pairs, and a resolution they do not list uses `batch`, `lr` or
    `kimg_per_tick`.
    """

    name: str = "msg-stylegan"
    # Data.
    data: str = ""
    mirror: bool = False
    img_resolution: int = 1024
    img_channels: int = 3
    # Networks (SPEC sections 1 and 2).
    architecture: str = "msg"
    z_dim: int = 512
    w_dim: int = 512
    mapping_layers: int = 8
    mapping_lr_multiplier: float = 0.01
    channel_base: int = 16384
    channel_max: int = 512
    w_avg_beta: float = 0.995
    truncation_cutoff: int = 8
    mbstd_group_size: int = 4
    mbstd_num_features: int = 1
    combine: str = "cat_lin"
    mbstd: str = "auto"  # one of MBSTD_PLACEMENTS
    spectral_norm: bool = False
    pixel_norm: bool = True
    equalized_lr: bool = True
    # Progressive growing and style mixing (SPEC section 10).
    progressive: bool = False
    lod_initial_resolution: int = 8
    lod_training_kimg: float = 600.0
    lod_transition_kimg: float = 600.0
    minibatch_schedule: tuple = ()
    lr_schedule: tuple = ()
    tick_kimg_schedule: tuple = ()
    style_mixing_prob: float = 0.0
    # Loss (SPEC section 3).
    loss: str = "logistic"
    r1_gamma: float = 10.0
    r1_interval: int = 1
    wgan_lambda: float = 10.0
    wgan_epsilon: float = 0.001
    # Optimisation (SPEC section 4).
    batch: int = 32
    lr: float = 0.003
    adam_beta1: float = 0.0
    adam_beta2: float = 0.99
    adam_epsilon: float = 1e-8
    ema_kimg: float = 10.0
    ema_beta: float = 0.0  # > 0: a fixed per-step Gs decay instead
    # Schedule and outputs (SPEC section 6).
    total_kimg: float = 25000.0
    kimg_per_tick: float = 10.0
    image_snapshot_ticks: int = 1
    network_snapshot_ticks: int = 10
    grid_size: int = 8
    metrics: tuple = ()
    fid_resize: str = "tf1"  # resize mode of --metrics (metrics/__init__.py)
    max_skipped_steps: int = 20
    # Execution.
    seed: int = 0
    gpus: int = 0
    xla: str = "on"  # one of XLA_MODES; True/False read as "on"/"off"
    mixed_precision: str = "off"

    def __post_init__(self):
        # Configs and snapshots written before the "elementwise" mode hold
        # a boolean; tests and callers may still pass one.
        if isinstance(self.xla, bool):
            object.__setattr__(self, "xla", "on" if self.xla else "off")

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @staticmethod
    def from_json(text):
        """Rebuild a config from its JSON form, refusing unknown keys."""
        raw = json.loads(text) if isinstance(text, str) else dict(text)
        known = {f.name: f for f in dataclasses.fields(Config)}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise UserError(f"config has unknown keys {unknown}")
        if "metrics" in raw:
            raw["metrics"] = tuple(raw["metrics"])
        for key in ("minibatch_schedule", "lr_schedule", "tick_kimg_schedule"):
            if key in raw:
                raw[key] = tuple(tuple(pair) for pair in raw[key])
        return Config(**raw)


BASE = Config()

# The names a config field may take, each kind listed here once. The
# framework modules that implement them register exactly these names
# (msg_stylegan/networks.py, msg_stylegan/discriminator.py, training/loss.py,
# training/precision.py), checked when they register and by
# tests/test_registries.py; keeping the lists here lets train.py offer and
# validate them without importing Keras.
ARCHITECTURES = ("msg", "stylegan", "msg-progan", "msg-progan-bmsg", "progan")
COMBINES = ("cat_lin", "lin_cat", "simple")
# Where D's minibatch stddev goes: the architecture's own place ("auto":
# every block in MSG-StyleGAN's D, 4x4 only in StyleGAN's and ProGAN's), in
# "every" block, or in the "4x4" block only; the last two are ablations.
MBSTD_PLACEMENTS = ("auto", "every", "4x4")
LOSSES = ("logistic", "wgan-gp", "hinge", "relativistic-hinge", "lsgan")
PRECISIONS = ("off", "bf16", "fp16")  # fp16 with dynamic loss scaling
# How the TensorFlow step is compiled (JAX compiles it whole): "on" the whole
# step by XLA; "off" TensorFlow's kernels op by op; "elementwise" XLA fuses
# the elementwise ops while TensorFlow's own kernels (oneDNN on the CPU) run
# the convolutions and matmuls, the path on which bf16 uses a CPU's AMX or
# AVX512-BF16 units (XLA's CPU convolutions compute bf16 at fp32 speed).
XLA_MODES = ("on", "off", "elementwise")

# Reduced channel counts keep CPU runs (demo, tests, CPU real-data checks)
# to minutes; the architecture and every other default are unchanged.
_CPU = dict(
    z_dim=64,
    w_dim=64,
    mapping_layers=2,
    channel_base=1024,
    channel_max=64,
    batch=16,
    kimg_per_tick=1.0,
    network_snapshot_ticks=5,
)

# Per dataset: resolution, MSG-StyleGAN's global batch and mirroring as the
# StyleGAN-lineage originals set them (msg-stylegan-tf's train.py and README
# and its history, NVlabs' train.py, ProGAN's config.py); the README's "Each
# config against its original" gives the file and line of every value.
# Batch: the author's GPU count per dataset (msg-stylegan-tf README) with the
# presets' 16 on 4 GPUs and 32 on 2 (flowers, from the run in the history)
# or on 8. Mirror: on for faces and flowers, off for LSUN as NVlabs' LSUN
# lines, off for CIFAR-10 as ProGAN's cifar10 line (no original has it on).
_DATASETS = {
    "ffhq": dict(img_resolution=1024, batch=16, mirror=True),
    "celebahq": dict(img_resolution=1024, batch=32, mirror=True),
    "lsun-churches": dict(img_resolution=256, batch=32, mirror=False),
    "flowers": dict(img_resolution=256, batch=32, mirror=True),
    "indian-celebs": dict(img_resolution=256, batch=16, mirror=True),
    "cifar10": dict(img_resolution=32, batch=32, mirror=False),
    # About five CPU minutes that end in recognisable shapes (README "Demo";
    # tuned on 2 cores, on `create_synthetic --simple` images): 16x16 so 20
    # kimg fit; batch 8 for twice the steps of 16 in the same images; R1
    # gamma 1 (10 kept D ahead of G at this size); lr 0.005 and the mapping
    # at the full lr (its 0.01 barely moves it in 2,500 steps); a 0.5 kimg
    # Gs half-life so the grids keep up.
    "demo": dict(
        img_resolution=16,
        total_kimg=20.0,
        ema_kimg=0.5,
        **{
            **_CPU,
            "batch": 8,
            "r1_gamma": 1.0,
            "lr": 0.005,
            "mapping_lr_multiplier": 1.0,
            "network_snapshot_ticks": 10,
        },
    ),
}


# The published StyleGAN (NVlabs' defaults for 8 GPUs): progressive growing
# from 8x8, per-resolution minibatch, learning rate and tick length, Adam
# reset at each new lod, style mixing 0.9, lr 0.001 below 128.
_PROGRESSIVE = dict(
    architecture="stylegan",
    progressive=True,
    lr=0.001,
    batch=32,
    minibatch_schedule=((4, 512), (8, 256), (16, 128), (32, 64), (64, 32)),
    lr_schedule=((128, 0.0015), (256, 0.002), (512, 0.003), (1024, 0.003)),
    kimg_per_tick=160.0,
    tick_kimg_schedule=(
        (4, 160),
        (8, 140),
        (16, 120),
        (32, 100),
        (64, 80),
        (128, 60),
        (256, 40),
        (512, 30),
        (1024, 20),
    ),
    style_mixing_prob=0.9,
)

# On a CPU: one batch size and tick length throughout, and short phases from
# 8x8 so that a few kimg pass through every resolution.
_PROGRESSIVE_CPU = dict(
    minibatch_schedule=(),
    tick_kimg_schedule=(),
    lod_initial_resolution=8,
)

# The CPU-sized CIFAR-10 runs used for real-data checks on this machine.
_CIFAR_SMALL = {**_CPU, "channel_base": 2048, "channel_max": 128, "batch": 32}

# SPEC section 11. MSG-ProGAN: combine simple, WGAN-GP, lr 0.003, Gs EMA
# beta 0.999 per step, no style mixing (ProGAN has no styles).
_MSG_PROGAN = dict(
    architecture="msg-progan",
    combine="simple",
    loss="wgan-gp",
    lr=0.003,
    ema_beta=0.999,
)
_PROGAN_FAMILIES = {
    "msg-progan": _MSG_PROGAN,
    # BMSG-GAN's code defaults: its networks exactly (image features
    # concatenated as in lin_cat, see progan.BMSGDiscriminatorBlock),
    # relativistic hinge.
    "msg-progan-bmsg": {
        **_MSG_PROGAN,
        "architecture": "msg-progan-bmsg",
        "combine": "lin_cat",
        "loss": "relativistic-hinge",
    },
    # ProGAN as published: its code's 8-GPU preset (preset-v2-8gpus) from
    # 4x4, 600 + 600 kimg per resolution, per-resolution minibatch and
    # learning rate, its tick lengths, 12,000 kimg; WGAN-GP; Gs beta 0.999.
    "progan": {
        **_PROGRESSIVE,
        "architecture": "progan",
        "loss": "wgan-gp",
        "lod_initial_resolution": 4,
        "tick_kimg_schedule": (
            (4, 160),
            (8, 140),
            (16, 120),
            (32, 100),
            (64, 80),
            (128, 60),
            (256, 40),
            (512, 20),
            (1024, 10),
        ),
        "total_kimg": 12000.0,
        "style_mixing_prob": 0.0,
        "ema_beta": 0.999,
    },
    # MSG-GAN v1: spectral norm in D, no equalized lr, no pixel norm, no
    # EMA, relativistic hinge, lr 0.0003 for G and D.
    "msg-gan-v1": {
        **_MSG_PROGAN,
        "spectral_norm": True,
        "pixel_norm": False,
        "equalized_lr": False,
        "ema_kimg": 0.0,
        "ema_beta": 0.0,
        "loss": "relativistic-hinge",
        "lr": 0.0003,
    },
}
# Mirroring where a family's original differs from `_DATASETS`: BMSG-GAN's
# train.py flips every dataset (--flip_augment defaults to True); ProGAN's
# config.py mirrors its LSUN sets. The CPU demo never mirrors.
_BMSG_MIRROR = {
    d: True for d in ("ffhq", "celebahq", "lsun-churches", "flowers", "cifar10")
}
_FAMILY_MIRROR = {
    "msg-progan": _BMSG_MIRROR,
    "msg-progan-bmsg": _BMSG_MIRROR,
    "msg-gan-v1": _BMSG_MIRROR,
    "progan": {"lsun-churches": True},
}
_PROGAN_DATASETS = (
    "flowers",
    "celebahq",
    "ffhq",
    "lsun-churches",
    "cifar10",
    "demo",
)


def _named_configs():
    configs = {}
    for dataset, fields in _DATASETS.items():
        cpu = dataset == "demo"
        name = f"msg-stylegan-{dataset}"
        configs[name] = replace(BASE, name=name, **fields)
        name = f"stylegan-noprog-{dataset}"
        configs[name] = replace(
            BASE, name=name, architecture="stylegan", **fields
        )
        name = f"stylegan-{dataset}"
        prog = {**fields, **_PROGRESSIVE}
        if cpu:
            prog.update(
                _PROGRESSIVE_CPU,
                batch=fields["batch"],
                kimg_per_tick=fields["kimg_per_tick"],
                lod_training_kimg=1.0,
                lod_transition_kimg=1.0,
            )
        configs[name] = replace(BASE, name=name, **prog)
    for family, settings in _PROGAN_FAMILIES.items():
        for dataset in _PROGAN_DATASETS:
            fields = _DATASETS[dataset]
            name = f"{family}-{dataset}"
            prog = {**fields, **settings}
            prog["mirror"] = _FAMILY_MIRROR.get(family, {}).get(
                dataset, fields.get("mirror", False)
            )
            if settings.get("progressive") and dataset == "demo":
                prog.update(
                    _PROGRESSIVE_CPU,
                    batch=fields["batch"],
                    kimg_per_tick=fields["kimg_per_tick"],
                    total_kimg=fields["total_kimg"],
                    lod_training_kimg=1.0,
                    lod_transition_kimg=1.0,
                )
            configs[name] = replace(BASE, name=name, **prog)
    families = ("msg-stylegan", "stylegan-noprog", "stylegan")
    for family in families + ("msg-progan", "progan"):
        small = dict(_CIFAR_SMALL)
        if family in ("stylegan", "progan"):
            # 8x8 to 32x32 in 4 kimg: a CPU-sized check, not NVlabs' 600.
            small.update(
                _PROGRESSIVE_CPU, lod_training_kimg=1.0, lod_transition_kimg=1.0
            )
        name = f"{family}-cifar10-small"
        configs[name] = replace(
            configs[f"{family}-cifar10"], name=name, **small
        )
    return configs


CONFIGS = _named_configs()


def config_names():
    return sorted(CONFIGS)


def get_config(name):
    """The named config; an unknown name lists the valid ones."""
    if name not in CONFIGS:
        raise UserError(
            f"unknown config '{name}'; valid configs: "
            + ", ".join(config_names())
        )
    return CONFIGS[name]


def override(cfg, **changes):
    """Return `cfg` with the non-None `changes` applied and validated."""
    changes = {k: v for k, v in changes.items() if v is not None}
    known = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise UserError(f"unknown config fields {unknown}")
    cfg = replace(cfg, **changes)
    validate(cfg)
    return cfg


# The fields that make the networks (their weights' shapes, or what the
# weights mean): a snapshot resumes only into a config that agrees on them.
NETWORK_FIELDS = (
    "architecture",
    "img_resolution",
    "img_channels",
    "z_dim",
    "w_dim",
    "mapping_layers",
    "channel_base",
    "channel_max",
    "mbstd_num_features",
    "combine",
    "mbstd",
    "spectral_norm",
    "pixel_norm",
    "equalized_lr",
    "progressive",
)


def network_differences(cfg, other):
    """The NETWORK_FIELDS on which two configs differ, as 'field=value'
    of `other` (e.g. a snapshot's) against `cfg`'s value."""
    return [
        f"{f}={getattr(other, f)!r} (here {getattr(cfg, f)!r})"
        for f in NETWORK_FIELDS
        if getattr(cfg, f) != getattr(other, f)
    ]


def check_name(field, name, names):
    """A UserError unless `name` is one of `names`, listing the valid ones."""
    if name not in names:
        raise UserError(f"unknown {field} '{name}'; valid: " + ", ".join(names))


def validate(cfg):
    """Cross-field checks, each a one-line UserError naming the field."""
    res = cfg.img_resolution
    if res < 8 or res > 1024 or res & (res - 1):
        raise UserError(
            f"img_resolution must be a power of two in 8..1024, got {res}"
        )
    check_name("architecture", cfg.architecture, ARCHITECTURES)
    check_name("combine", cfg.combine, COMBINES)
    check_name("mbstd", cfg.mbstd, MBSTD_PLACEMENTS)
    if cfg.mbstd != "auto" and cfg.architecture == "msg-progan-bmsg":
        raise UserError(
            "mbstd placement does not apply to msg-progan-bmsg (BMSG-GAN's "
            "own D); use 'auto'"
        )
    check_name("loss", cfg.loss, LOSSES)
    check_name("mixed_precision", cfg.mixed_precision, PRECISIONS)
    check_name("xla", cfg.xla, XLA_MODES)
    if cfg.batch < 1:
        raise UserError(f"batch must be positive, got {cfg.batch}")
    if cfg.lr <= 0:
        raise UserError(f"lr must be positive, got {cfg.lr}")
    if cfg.total_kimg <= 0:
        raise UserError(f"kimg must be positive, got {cfg.total_kimg}")
    if cfg.progressive and cfg.architecture not in ("stylegan", "progan"):
        raise UserError(
            "progressive growing needs architecture 'stylegan' or 'progan', "
            f"got '{cfg.architecture}'"
        )
    if cfg.architecture in ("msg", "stylegan") and not (
        cfg.pixel_norm and cfg.equalized_lr and not cfg.spectral_norm
    ):
        raise UserError(
            "spectral_norm, pixel_norm and equalized_lr switches apply to "
            "the ProGAN architectures only"
        )
    start = cfg.lod_initial_resolution
    if cfg.progressive and (start < 4 or start > res or start & (start - 1)):
        raise UserError(
            "lod_initial_resolution must be a power of two in 4.."
            f"{res}, got {start}"
        )
    if not 0 <= cfg.style_mixing_prob <= 1:
        raise UserError(
            f"style_mixing_prob must be in [0, 1], got {cfg.style_mixing_prob}"
        )
    if cfg.r1_interval < 1:
        raise UserError(f"r1_interval must be >= 1, got {cfg.r1_interval}")
    return cfg
