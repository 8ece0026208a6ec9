"""Inception feature throughput of an installed FID package, one JSON line.

The counterpart of bench/inception_bench.py for the PyTorch packages users
compute FID with, pytorch-fid and torch-fidelity, timed the same way:
uint8 images on the host in, float32 features on the host out, one
untimed call first. It imports the package where it is installed (pip);
none of its code is here.

Neither package downloads anything here: the weights must already be in
torch's hub cache (where the package itself would store them) or be given
with --weights. A package that cannot be imported, or weights that are not
there, exit 3 with one line saying so, so a bench script can log a skip.

Example:
  python bench/peer_inception_bench.py --peer=pytorch-fid --batch=50 --res=64
"""

import argparse
import json
import os
import sys
import tempfile
import time

from inception_bench import add_timing_args

SKIP = 3
FILES = {
    "pytorch-fid": "pt_inception-2015-12-05-6726825d.pth",
    "torch-fidelity": "weights-inception-2015-12-05-6726825d.pth",
}


def skip(why):
    print(f"skipped: {why}", file=sys.stderr)
    sys.exit(SKIP)


def build(peer, weights, device):
    """The peer's FID Inception: a function of a uint8 NCHW tensor."""
    import torch

    if peer == "torch-fidelity":
        from torch_fidelity.feature_extractor_inceptionv3 import (
            FeatureExtractorInceptionV3,
        )

        net = FeatureExtractorInceptionV3(
            "inception-v3-compat",
            ["2048"],
            feature_extractor_weights_path=weights,
        ).to(device)
        return lambda x: net(x)[0]
    # pytorch-fid reads its weights through torch's hub cache only: point
    # the cache at a folder holding the file under the name it asks for.
    home = tempfile.mkdtemp(prefix="peer-inception-")
    os.makedirs(os.path.join(home, "checkpoints"))
    os.symlink(
        os.path.abspath(weights),
        os.path.join(home, "checkpoints", FILES[peer]),
    )
    torch.hub.set_dir(home)
    from pytorch_fid.inception import InceptionV3

    net = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).to(device)
    net.eval()
    return lambda x: net(x.float() / 255)[0]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--peer",
        metavar="NAME",
        choices=sorted(FILES),
        required=True,
        help="%(choices)s",
    )
    p.add_argument(
        "--weights",
        metavar="PATH",
        help="the package's .pth (default: torch's hub cache)",
    )
    add_timing_args(p)
    p.add_argument(
        "--device",
        metavar="DEV",
        default="cuda",
        help="torch device (default: %(default)s)",
    )
    args = p.parse_args(argv)
    module = args.peer.replace("-", "_")
    try:
        import numpy as np
        import torch

        __import__(module)
    except Exception as e:  # a broken install is as good as none here
        skip(f"{args.peer} cannot be imported ({type(e).__name__}: {e})")
    weights = args.weights or os.path.join(
        torch.hub.get_dir(), "checkpoints", FILES[args.peer]
    )
    if not os.path.isfile(weights):
        skip(
            f"{args.peer}'s weights are not at {weights} (nothing is "
            "downloaded here); pass --weights"
        )

    t0 = time.time()
    with torch.no_grad():
        net = build(args.peer, weights, args.device)
        load_s = time.time() - t0
        rng = np.random.default_rng(0)
        imgs = rng.integers(0, 256, (args.batch, 3, args.res, args.res))
        imgs = imgs.astype(np.uint8)

        def features():
            x = torch.from_numpy(imgs).to(args.device)
            return net(x).reshape(args.batch, -1).cpu().numpy()

        t0 = time.time()
        features()
        warmup_s = time.time() - t0
        t0 = time.time()
        for _ in range(args.batches):
            features()
        elapsed = time.time() - t0
    print(
        json.dumps(
            dict(
                peer=args.peer,
                version=getattr(sys.modules[module], "__version__", None),
                torch=torch.__version__,
                device=args.device,
                batch=args.batch,
                res=args.res,
                images=args.batch * args.batches,
                images_per_s=round(args.batch * args.batches / elapsed, 2),
                load_s=round(load_s, 2),
                warmup_s=round(warmup_s, 2),
            )
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
