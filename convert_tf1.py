"""Convert a published TF1 network pickle into this project's snapshot format.

python convert_tf1.py karras2019stylegan-ffhq-1024x1024.pkl stylegan-ffhq.pkl
"""

import argparse
import os
import sys

from dnnlib.util import (
    UserError,
    add_verbose_flag,
    quiet_framework_logs,
    run_cli,
)

EPILOG = """examples:
  # NVIDIA's StyleGAN FFHQ network -> a snapshot (config stylegan-ffhq)
  python convert_tf1.py karras2019stylegan-ffhq-1024x1024.pkl ffhq.pkl

  # an MSG-StyleGAN network whose file name names no dataset
  python convert_tf1.py network-final.pkl flowers.pkl \\
      --config=msg-stylegan-flowers

  # then sample and evaluate it like any snapshot (generate.py and
  # run_metrics.py also take the TF1 file directly)
  python generate.py --network=ffhq.pkl --seeds=0-7
  python run_metrics.py --network=ffhq.pkl --data=datasets/ffhq \\
      --metric=fid50k

The pickle is read without TensorFlow 1 and without running anything in
it: only Network states (names, settings, variables) and NumPy arrays are
admitted. Supported: msg-stylegan-tf's G/D/Gs, NVlabs StyleGAN's
(G_style, D_basic) and ProGAN's (G_paper, D_paper), unconditional.
"""


def build_parser():
    p = argparse.ArgumentParser(
        prog="convert_tf1.py",
        description="Convert a TF1 network pickle (MSG-StyleGAN, StyleGAN, "
        "ProGAN) into\na snapshot that generate.py and run_metrics.py load.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = p.add_argument_group("files")
    g.add_argument("source", metavar="IN.pkl", help="the TF1 pickle")
    g.add_argument("dest", metavar="OUT.pkl", help="the snapshot to write")
    g.add_argument(
        "--config",
        metavar="NAME",
        default=None,
        help="named config to start from, e.g. msg-stylegan-flowers "
        "(default: from the file name and resolution)",
    )
    g.add_argument(
        "--force",
        action="store_true",
        help="overwrite OUT.pkl if it exists (default: refuse)",
    )
    add_verbose_flag(g)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if os.path.exists(args.dest) and not args.force:
        raise UserError(f"'{args.dest}' exists; pass --force to overwrite it")
    if os.path.abspath(args.source) == os.path.abspath(args.dest):
        raise UserError("OUT.pkl must differ from IN.pkl")
    quiet_framework_logs(args.verbose)
    # The networks load only now, so --help and flag errors are instant.
    from msg_stylegan import convert_tf1, snapshot, tf1_pickle

    if args.config is not None:
        import config as config_lib

        config_lib.get_config(args.config)  # an unknown name lists them
    if not tf1_pickle.is_tf1_pickle(args.source):
        if not os.path.isfile(args.source):
            raise UserError(f"'{args.source}' does not exist")
        raise UserError(
            f"'{args.source}' is not a TF1 network pickle (no "
            "dnnlib.tflib.network.Network or tfutil.Network in it)"
        )
    data = convert_tf1.convert(args.source, config_name=args.config)
    snapshot.save(args.dest, data)
    print(f"Wrote '{args.dest}'")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
