"""The machine's measured compute limit: matmul and 3x3 conv FLOP/s.

train_bench.py reports achieved TFLOP/s of the training step; this probe
gives the figure to hold it against, measured on the same machine with the
same libraries: a large matmul and a 3x3 convolution shaped like the
networks' middle layers, in float32 and bfloat16, through TensorFlow's own
kernels (oneDNN on the CPU) and through XLA (`jit_compile`). Per case:
warm-up calls, then `--blocks` timed blocks of `--reps` calls; the median
block gives FLOP/s. One JSON line per case on stdout (and appended to
`--out`).

FLOPs: matmul 2*n^3; convolution 2*3*3*C*C*H*W*N (stride 1, 'SAME').

  python bench/flops_probe.py
  python bench/flops_probe.py --dtypes=float32 --paths=eager --n=2048
"""

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dnnlib.util import run_cli  # noqa: E402


def parse_args(argv):
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--n", type=int, default=1024, help="matmul size n x n")
    p.add_argument(
        "--conv",
        default="32,32,64",
        help="convolution batch,resolution,channels (NHWC, 3x3, C to C)",
    )
    p.add_argument("--dtypes", default="float32,bfloat16")
    p.add_argument(
        "--paths",
        default="eager,xla",
        help="eager: TensorFlow's kernels (oneDNN on CPU); xla: jit_compile",
    )
    p.add_argument("--reps", type=int, default=5, help="calls per block")
    p.add_argument("--blocks", type=int, default=5)
    p.add_argument("--out", default=None, help="also append JSON lines here")
    args = p.parse_args(argv)
    try:
        args.conv = tuple(int(x) for x in args.conv.split(","))
        assert len(args.conv) == 3 and min(args.conv) > 0
    except (ValueError, AssertionError):
        p.error(f"--conv must be three positive integers, got '{args.conv}'")
    args.dtypes = args.dtypes.split(",")
    args.paths = args.paths.split(",")
    for d in args.dtypes:
        if d not in ("float32", "bfloat16", "float16"):
            p.error(f"unknown dtype '{d}' (float32, bfloat16, float16)")
    for path in args.paths:
        if path not in ("eager", "xla"):
            p.error(f"unknown path '{path}' (eager, xla)")
    return args


def _time(fn, reps, blocks):
    """Median seconds per call; the result is read back, so the clock
    stops after the work is done."""
    for _ in range(2):
        fn().numpy()
    times = []
    for _ in range(blocks):
        start = time.perf_counter()
        for _ in range(reps):
            out = fn()
        out.numpy()
        times.append((time.perf_counter() - start) / reps)
    return statistics.median(times)


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    rows = []
    n = args.n
    batch, res, ch = args.conv
    for dtype in args.dtypes:
        a = tf.random.stateless_normal([n, n], [0, 1], dtype=tf.float32)
        x = tf.random.stateless_normal([batch, res, res, ch], [0, 2])
        k = tf.random.stateless_normal([3, 3, ch, ch], [0, 3])
        a, x, k = (tf.cast(t, dtype) for t in (a, x, k))
        cases = {
            "matmul": (lambda a=a: tf.matmul(a, a), 2.0 * n**3),
            "conv3x3": (
                lambda x=x, k=k: tf.nn.conv2d(x, k, 1, "SAME"),
                2.0 * 9 * ch * ch * res * res * batch,
            ),
        }
        for path in args.paths:
            for op, (fn, flops) in cases.items():
                call = (
                    tf.function(fn, jit_compile=True) if path == "xla" else fn
                )
                sec = _time(call, args.reps, args.blocks)
                row = {
                    "op": op,
                    "dtype": dtype,
                    "path": path,
                    "shape": [n, n]
                    if op == "matmul"
                    else [batch, res, res, ch],
                    "ms": round(sec * 1e3, 4),
                    "gflops": round(flops / sec / 1e9, 3),
                    "threads": os.cpu_count(),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    if args.out:
        with open(args.out, "a") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
