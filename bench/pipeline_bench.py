"""Input pipeline benchmark: images/s of datasets.pipeline on synthetic data.

Builds the synthetic shapes set at 64x64 and 256x256 in a temporary folder,
then times `make_dataset` (global batch 32, mirror on) after a warm-up and
prints one JSON line per case. Run from the repository root:

    python bench/pipeline_bench.py [--batches 300] [--warmup 20]
"""

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CASES = [
    # (resolution, images); records are read by random access through mmap,
    # so the OS page cache is the only cache.
    (64, 4000),
    (256, 600),
]


def time_case(path, batch, batches, warmup):
    """Images per second over `batches` batches after `warmup` batches."""
    from datasets import pipeline

    ds = pipeline.make_dataset(path, batch, mirror=True, seed=0)
    it = iter(ds)
    for _ in range(warmup):
        next(it)
    start = time.perf_counter()
    total = 0
    for _ in range(batches):
        total += int(next(it).shape[0])
    return total / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--batch",
        type=int,
        metavar="N",
        default=32,
        help="global batch (default: %(default)s)",
    )
    parser.add_argument(
        "--batches",
        type=int,
        metavar="N",
        default=300,
        help="timed batches per case (default: %(default)s)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        metavar="N",
        default=20,
        help="untimed batches first (default: %(default)s)",
    )
    args = parser.parse_args()

    from datasets import dataset_tool, tfrecords

    with tempfile.TemporaryDirectory() as tmp:
        built = {}
        for res, n in CASES:
            path = os.path.join(tmp, f"shapes{res}")
            if res not in built:
                start = time.perf_counter()
                dataset_tool.main(
                    [
                        "create_synthetic",
                        path,
                        "--resolution",
                        str(res),
                        "--num-images",
                        str(n),
                    ]
                )
                built[res] = time.perf_counter() - start
            info = tfrecords.find_dataset(path)
            rate = time_case(path, args.batch, args.batches, args.warmup)
            print(
                json.dumps(
                    {
                        "case": f"synthetic{res}",
                        "resolution": res,
                        "num_images": info.num_images,
                        "global_batch": args.batch,
                        "mirror": True,
                        "timed_batches": args.batches,
                        "images_per_s": round(rate, 1),
                        "create_s": round(built[res], 2),
                        "cpus": os.cpu_count(),
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
