"""Build G and D from a config, move weights by variable path, print the table.

`python -m msg_stylegan.networks --resolution 1024 --summary` prints a
per-layer table with parameter counts and output shapes, like NVIDIA's
network printout, and the totals for G and D.
"""

import argparse
import sys

import numpy as np

import config as config_lib
from msg_stylegan.discriminator import Discriminator, combine_names
from msg_stylegan.generator import Generator
from msg_stylegan.progan import ProGANDiscriminator, ProGANGenerator

# How each of config.ARCHITECTURES is built: architecture -> (generator
# family, the discriminator's own architecture).
FAMILIES = {
    "msg": ("stylegan", "msg"),  # MSG-StyleGAN
    "stylegan": ("stylegan", "stylegan"),  # StyleGAN (single-input D)
    "msg-progan": ("progan", "msg"),  # MSG-ProGAN (SPEC section 11)
    "msg-progan-bmsg": ("progan", "bmsg"),  # BMSG-GAN's code, exactly
    "progan": ("progan", "progan"),  # ProGAN
}


def architecture_names():
    return sorted(config_lib.ARCHITECTURES)


def _family(cfg):
    if cfg.architecture not in FAMILIES:
        raise ValueError(
            f"unknown architecture '{cfg.architecture}'; valid: "
            + ", ".join(architecture_names())
        )
    return FAMILIES[cfg.architecture]


def build_networks(cfg, name_g="G", name_d="D", dtype=None):
    """Return built (G, D) for a `config.Config` (or anything with its fields).

    Building happens on shapes, with no forward pass, so this is cheap at
    1024x1024 too.
    """
    G = build_generator(cfg, name=name_g, dtype=dtype)
    family, d_arch = _family(cfg)
    common = dict(
        img_resolution=cfg.img_resolution,
        img_channels=cfg.img_channels,
        channel_base=cfg.channel_base,
        channel_max=cfg.channel_max,
        architecture=d_arch,
        combine=cfg.combine,
        mbstd_group_size=cfg.mbstd_group_size,
        mbstd_num_features=cfg.mbstd_num_features,
        mbstd=cfg.mbstd,
        progressive=cfg.progressive,
        name=name_d,
        dtype=dtype,
    )
    if family == "progan":
        D = ProGANDiscriminator(spectral_norm=cfg.spectral_norm, **common)
    else:
        D = Discriminator(**common)
    D.build([(None, r, r, cfg.img_channels) for r in d_input_resolutions(D)])
    return G, D


def build_generator(cfg, name="G", dtype=None):
    family, _ = _family(cfg)
    common = dict(
        img_resolution=cfg.img_resolution,
        img_channels=cfg.img_channels,
        z_dim=cfg.z_dim,
        channel_base=cfg.channel_base,
        channel_max=cfg.channel_max,
        progressive=cfg.progressive,
        name=name,
        dtype=dtype,
    )
    if family == "progan":
        G = ProGANGenerator(
            pixel_norm=cfg.pixel_norm,
            equalized_lr=cfg.equalized_lr,
            bmsg=cfg.architecture == "msg-progan-bmsg",
            **common,
        )
    else:
        G = Generator(
            w_dim=cfg.w_dim,
            mapping_layers=cfg.mapping_layers,
            mapping_lr_multiplier=cfg.mapping_lr_multiplier,
            w_avg_beta=cfg.w_avg_beta,
            truncation_cutoff=cfg.truncation_cutoff,
            **common,
        )
    G.build((None, cfg.z_dim))
    return G


def d_input_resolutions(D):
    """The image sizes D takes, coarse to fine."""
    return D.resolutions[-D.num_inputs :]


def variable_key(variable):
    """A variable's path without the model name: `synthesis/b64/conv0/...`.

    G and Gs share keys, so snapshots and EMA copy by key.
    """
    return variable.path.split("/", 1)[1]


def get_state(model):
    """{key: numpy array} for every variable of `model`."""
    return {variable_key(v): np.asarray(v.numpy()) for v in model.variables}


def set_state(model, state, what=None):
    """Assign `state` ({key: array}) to `model`'s variables, checking shapes.

    Every variable must be present with its exact shape; the message names
    the first key that is missing, extra or of the wrong shape.
    """
    what = what or model.name
    variables = {variable_key(v): v for v in model.variables}
    missing = sorted(set(variables) - set(state))
    extra = sorted(set(state) - set(variables))
    if missing or extra:
        raise ValueError(
            f"{what}: weights do not match the network "
            f"(missing {missing[:3]}, unexpected {extra[:3]})"
        )
    for key, v in variables.items():
        value = np.asarray(state[key])
        if tuple(value.shape) != tuple(v.shape):
            raise ValueError(
                f"{what}: '{key}' has shape {tuple(value.shape)}, the network "
                f"needs {tuple(v.shape)}"
            )
        v.assign(value.astype(v.dtype))


def count_params(model, trainable=True):
    variables = (
        model.trainable_variables
        if trainable
        else model.non_trainable_variables
    )
    return int(sum(np.prod(v.shape) for v in variables))


def _params(layer):
    return int(sum(np.prod(v.shape) for v in layer.trainable_variables))


def _shapes(layer):
    return ", ".join(str(tuple(v.shape)) for v in layer.trainable_variables)


def layer_table(G, D):
    """Rows (network, layer, params, output shape, weight shapes).

    Each network lists its own layers (`summary_rows`), so every
    architecture prints the same way.
    """
    rows = [("G", *row) for row in G.summary_rows()]
    rows += [("D", *row) for row in D.summary_rows()]
    table = []
    for net, name, layer, shape in rows:
        if layer is None:
            params, weights = 0, ""
        elif hasattr(layer, "trainable_variables"):
            params, weights = _params(layer), _shapes(layer)
        else:  # a bare variable such as the 4x4 constant
            params, weights = int(np.prod(layer.shape)), str(tuple(layer.shape))
        shape = "(" + ", ".join(str(s) for s in shape) + ")"
        table.append((net, name, params, shape, weights))
    return table


def format_summary(G, D):
    """NVIDIA-style printout of both networks with totals."""
    lines = []
    table = layer_table(G, D)
    for net, model in (("G", G), ("D", D)):
        header = (
            f"{'Layer name':<28} {'Params':>11}  {'Output shape':<22} Weights"
        )
        lines += [f"{model.name}: {type(model).__name__}", header]
        lines.append("-" * len(header))
        for row_net, name, params, shape, weights in table:
            if row_net == net:
                lines.append(f"{name:<28} {params:>11,}  {shape:<22} {weights}")
        lines.append("-" * len(header))
        total = count_params(model)
        fixed = count_params(model, trainable=False)
        lines.append(
            f"{'Total':<28} {total:>11,}  (+{fixed:,} non-trainable)"
            if fixed
            else f"{'Total':<28} {total:>11,}"
        )
        lines.append("")
    return "\n".join(lines)


def _main(argv=None):
    from dnnlib.util import UserError, run_cli

    def main(argv):
        parser = argparse.ArgumentParser(
            prog="python -m msg_stylegan.networks",
            description="Build MSG-StyleGAN networks and print their layers.",
            epilog="example: python -m msg_stylegan.networks "
            "--resolution 1024 --summary",
        )
        parser.add_argument(
            "--config",
            metavar="NAME",
            default="msg-stylegan-ffhq",
            help="named config whose network settings are used "
            "(default: %(default)s)",
        )
        parser.add_argument(
            "--resolution",
            metavar="RES",
            type=int,
            default=None,
            help="override img_resolution (default: the config's)",
        )
        parser.add_argument(
            "--channel-base",
            metavar="N",
            type=int,
            default=None,
            help="override channel_base (default: the config's)",
        )
        parser.add_argument(
            "--channel-max",
            metavar="N",
            type=int,
            default=None,
            help="override channel_max (default: the config's)",
        )
        parser.add_argument(
            "--combine",
            metavar="NAME",
            choices=combine_names(),
            default=None,
            help="override combine: %(choices)s (default: the config's)",
        )
        parser.add_argument(
            "--architecture",
            metavar="ARCH",
            choices=architecture_names(),
            default=None,
            help="%(choices)s (default: the config's)",
        )
        parser.add_argument(
            "--summary",
            action="store_true",
            help="print the per-layer table (default: totals only)",
        )
        args = parser.parse_args(argv)
        cfg = config_lib.override(
            config_lib.get_config(args.config),
            img_resolution=args.resolution,
            channel_base=args.channel_base,
            channel_max=args.channel_max,
            combine=args.combine,
            architecture=args.architecture,
        )
        try:
            G, D = build_networks(cfg)
        except ValueError as e:
            raise UserError(str(e))
        if args.summary:
            print(format_summary(G, D))
        print(
            f"{cfg.name} at {cfg.img_resolution}x{cfg.img_resolution}: "
            f"G {count_params(G):,} parameters, D {count_params(D):,} "
            "parameters"
        )

    return run_cli(main, argv)


if __name__ == "__main__":
    sys.exit(_main())
