"""Throughput of the FID Inception port (Heusel et al. 2017), one JSON line.

Examples:
  python bench/inception_bench.py --inception=weights.npz --batch=50 --res=32
  python bench/inception_bench.py --random-weights --batch=50 --res=64

`--random-weights` builds the network with its initial values instead of
loading the 87 MB weights (a device call carries at most 64 MiB): the work,
and so the throughput, is the same; the features mean nothing.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from dnnlib.util import run_cli  # noqa: E402


def add_timing_args(p):
    """--batch, --batches, --res: shared with peer_inception_bench.py."""
    p.add_argument(
        "--batch",
        metavar="B",
        type=int,
        default=50,
        help="images per batch (default: %(default)s)",
    )
    p.add_argument(
        "--batches",
        metavar="N",
        type=int,
        default=4,
        help="timed batches after one warm-up (default: %(default)s)",
    )
    p.add_argument(
        "--res",
        metavar="R",
        type=int,
        default=32,
        help="input resolution before the resize to 299 (default: %(default)s)",
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--inception",
        metavar="PATH",
        default=None,
        help="weights .npz or .pth (default: the usual search)",
    )
    p.add_argument(
        "--random-weights",
        action="store_true",
        help="time the network with initial values, no weights file "
        "(default: off)",
    )
    add_timing_args(p)
    args = p.parse_args(argv)

    import keras

    from metrics import DEFAULT_RESIZE
    from metrics.inception import (
        FeatureExtractor,
        build_inception,
        feature_extractor,
    )

    t0 = time.time()
    if args.random_weights:
        model = build_inception(DEFAULT_RESIZE)
        model.weights_id = "random"
        ext = FeatureExtractor(model, batch_size=args.batch)
    else:
        ext = feature_extractor(args.inception, batch_size=args.batch)
    load_s = time.time() - t0
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (args.batch, args.res, args.res, 3), np.uint8)
    t0 = time.time()
    ext(imgs)  # trace and compile
    warmup_s = time.time() - t0
    t0 = time.time()
    for _ in range(args.batches):
        ext(imgs)
    elapsed = time.time() - t0
    result = dict(
        backend=keras.backend.backend(),
        batch=args.batch,
        res=args.res,
        images=args.batch * args.batches,
        images_per_s=round(args.batch * args.batches / elapsed, 2),
        weights=ext.weights_id,
        load_s=round(load_s, 2),
        warmup_s=round(warmup_s, 2),
        cpus=os.cpu_count(),
        loadavg_1m=round(os.getloadavg()[0], 2),
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
