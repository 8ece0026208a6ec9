"""Evaluate metrics (FID, KID) of snapshots: one .pkl or a whole run directory.

python run_metrics.py --metric=fid50k --network=results/00000-run
"""

import argparse
import glob
import os
import re
import sys

from dnnlib import hardware
from dnnlib.util import (
    UserError,
    add_verbose_flag,
    arg_bool,
    arg_positive,
    quiet_framework_logs,
    run_cli,
)
from metrics import DEFAULT_RESIZE, RESIZE_MODES, metric_main

EPILOG = """examples:
  # fid50k of one snapshot against the dataset it was trained on
  python run_metrics.py --network=results/00000-run/network-final.pkl

  # every snapshot of a run, in kimg order; lines go to metric-<name>.txt
  python run_metrics.py --network=results/00000-run --metric=fid10k,kid10k

  # a quick check on 500 images per side (not comparable to fid50k)
  python run_metrics.py --network=network-final.pkl --metric=fid1k \\
      --num=500 --data=data/ffhq --inception=fid_inception_2015_12_05.npz

Results are appended to <run dir>/metric-<name>.txt when --network is a run
directory, or a .pkl in a folder holding config.json (a run directory).
Real statistics are cached in $MSG_STYLEGAN_CACHE (~/.cache/msg_stylegan).
--gpus=N generates images and extracts features on the first N visible GPUs,
a batch on each at a time (the value does not depend on N); the default runs
on one device, the first visible GPU or the CPU (CUDA_VISIBLE_DEVICES
chooses which).
"""

_SNAPSHOT_RE = re.compile(r"network-snapshot-(\d+)\.pkl")


def _metric_list(text):
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("no metric named")
    try:
        metric_main.check_metric_names(names)
    except UserError as e:
        raise argparse.ArgumentTypeError(str(e))
    return names


def build_parser():
    p = argparse.ArgumentParser(
        prog="run_metrics.py",
        description="Compute FID/KID of MSG-StyleGAN snapshots and print "
        "one line per\nsnapshot and metric: "
        "`<network> time <t> <metric> <value>`.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = p.add_argument_group("what to evaluate")
    g.add_argument(
        "--network",
        metavar="PATH",
        required=True,
        help="a snapshot .pkl, or a run directory: all its "
        "network-snapshot-*.pkl and network-final.pkl (required)",
    )
    g.add_argument(
        "--metric",
        metavar="LIST",
        type=_metric_list,
        default=["fid50k"],
        help=f"comma separated, from {', '.join(metric_main.metric_names())}"
        " (default: fid50k)",
    )
    g.add_argument(
        "--data",
        metavar="DIR",
        default=None,
        help="TFRecords dataset of the reals (default: the snapshot config's)",
    )
    g.add_argument(
        "--mirror",
        metavar="BOOL",
        type=arg_bool,
        default=None,
        help="flip every second pass over a dataset smaller than the "
        "metric's count (default: the snapshot config's)",
    )
    c = p.add_argument_group("computation")
    c.add_argument(
        "--inception",
        metavar="PATH",
        default=None,
        help="Inception weights, .npz or pytorch-fid .pth (default: "
        "$MSG_STYLEGAN_INCEPTION, then ~/.cache/msg_stylegan, then download)",
    )
    c.add_argument(
        "--fid-resize",
        metavar="MODE",
        choices=RESIZE_MODES,
        default=DEFAULT_RESIZE,
        help="resize to 299x299: tf1 (TF1's legacy bilinear, as the "
        "published FIDs) or half-pixel (pytorch-fid's) "
        "(default: %(default)s)",
    )
    c.add_argument(
        "--num",
        metavar="N",
        type=arg_positive(int),
        default=None,
        help="images per side instead of the metric's count, for quick "
        "checks (default: the metric's)",
    )
    c.add_argument(
        "--batch",
        metavar="N",
        type=arg_positive(int),
        default=50,
        help="images per Inception and generator pass (default: %(default)s)",
    )
    c.add_argument(
        "--gpus",
        metavar="N",
        type=arg_positive(int),
        default=1,
        help="GPUs that generate and extract features, a batch each "
        "(default: %(default)s)",
    )
    add_verbose_flag(c)
    return p


def find_snapshots(network):
    """(snapshot paths in kimg order, run dir to log into or None).

    The order comes from the 6-digit kimg in the names train.py writes,
    `network-final.pkl` last; it only orders the output lines.
    """
    if os.path.isdir(network):
        found = []
        for path in glob.glob(os.path.join(glob.escape(network), "*.pkl")):
            m = _SNAPSHOT_RE.fullmatch(os.path.basename(path))
            if m:
                found.append((int(m.group(1)), path))
        paths = [path for _, path in sorted(found)]
        final = os.path.join(network, "network-final.pkl")
        if os.path.isfile(final):
            paths.append(final)
        if not paths:
            raise UserError(
                f"run directory '{network}' holds no network-snapshot-*.pkl "
                "or network-final.pkl"
            )
        return paths, network
    if not os.path.isfile(network):
        raise UserError(f"--network '{network}' does not exist")
    folder = os.path.dirname(os.path.abspath(network))
    is_run = os.path.isfile(os.path.join(folder, "config.json"))
    return [network], (folder if is_run else None)


def main(argv=None):
    args = build_parser().parse_args(argv)
    quiet_framework_logs(args.verbose)
    paths, run_dir = find_snapshots(args.network)
    if args.inception is not None and not os.path.isfile(args.inception):
        raise UserError(f"Inception weights '{args.inception}' not found")
    hardware.require_backend(hardware.keras_backend())
    from training import backends

    # --gpus=1 (the default) may run on the CPU; more must exist.
    devices = backends.select_devices(args.gpus, required=args.gpus > 1)
    print("\n".join(devices.lines))
    # Keras device names; select_devices checked that these GPUs exist.
    used = [f"gpu:{i}" for i in range(args.gpus)] if args.gpus > 1 else None
    for path in paths:
        for name in args.metric:
            metric_main.evaluate_snapshot(
                name,
                path,
                data=args.data,
                mirror=args.mirror,
                run_dir=run_dir,
                inception=args.inception,
                num=args.num,
                batch_size=args.batch,
                resize=args.fid_resize,
                devices=used,
            )
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
