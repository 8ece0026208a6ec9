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
    `architecture` is `msg` (multi-scale D, the default) or `stylegan` (the
    single-input baseline D with minibatch stddev at 4x4 only).
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
    # Schedule and outputs (SPEC section 6).
    total_kimg: float = 25000.0
    kimg_per_tick: float = 10.0
    image_snapshot_ticks: int = 1
    network_snapshot_ticks: int = 10
    grid_size: int = 8
    metrics: tuple = ()
    max_skipped_steps: int = 20
    # Execution.
    seed: int = 0
    gpus: int = 0
    xla: bool = True
    mixed_precision: str = "off"

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
        return Config(**raw)


BASE = Config()

# Reduced channel counts keep CPU runs (demo, tests, CPU real-data checks)
# to minutes; the architecture and every other default are unchanged. XLA is
# off: at these sizes it made the CPU step slower (bench/train_bench.py).
_CPU = dict(
    xla=False,
    z_dim=64,
    w_dim=64,
    mapping_layers=2,
    channel_base=1024,
    channel_max=64,
    batch=16,
    kimg_per_tick=1.0,
    network_snapshot_ticks=5,
)

_DATASETS = {
    "ffhq": dict(img_resolution=1024, batch=16),
    "celebahq": dict(img_resolution=1024, batch=16),
    "lsun-churches": dict(img_resolution=256, batch=32),
    "flowers": dict(img_resolution=256, batch=32, mirror=True),
    "indian-celebs": dict(img_resolution=256, batch=32, mirror=True),
    "cifar10": dict(img_resolution=32, batch=32, mirror=True),
    # A few CPU minutes: a short Gs half-life so the grids show progress.
    "demo": dict(img_resolution=32, total_kimg=6.0, ema_kimg=1.0, **_CPU),
}


def _named_configs():
    configs = {}
    for dataset, fields in _DATASETS.items():
        name = f"msg-stylegan-{dataset}"
        configs[name] = replace(BASE, name=name, **fields)
        name = f"stylegan-{dataset}"
        configs[name] = replace(
            BASE, name=name, architecture="stylegan", **fields
        )
    # The CPU-sized CIFAR-10 run used for real-data checks on this machine.
    configs["msg-stylegan-cifar10-small"] = replace(
        configs["msg-stylegan-cifar10"],
        name="msg-stylegan-cifar10-small",
        **{**_CPU, "channel_base": 2048, "channel_max": 128, "batch": 32},
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


def validate(cfg):
    """Cross-field checks, each a one-line UserError naming the field."""
    res = cfg.img_resolution
    if res < 8 or res > 1024 or res & (res - 1):
        raise UserError(
            f"img_resolution must be a power of two in 8..1024, got {res}"
        )
    if cfg.architecture not in ("msg", "stylegan"):
        raise UserError(
            f"architecture must be 'msg' or 'stylegan', "
            f"got '{cfg.architecture}'"
        )
    if cfg.batch < 1:
        raise UserError(f"batch must be positive, got {cfg.batch}")
    if cfg.lr <= 0:
        raise UserError(f"lr must be positive, got {cfg.lr}")
    if cfg.total_kimg <= 0:
        raise UserError(f"kimg must be positive, got {cfg.total_kimg}")
    if cfg.mixed_precision not in ("off", "bf16"):
        raise UserError(
            f"mixed_precision must be off or bf16, got '{cfg.mixed_precision}'"
        )
    if cfg.r1_interval < 1:
        raise UserError(f"r1_interval must be >= 1, got {cfg.r1_interval}")
    return cfg
