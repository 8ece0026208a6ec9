"""Host time per JAX training step spent on the Keras variables.

The JAX step reads every Keras variable, runs the jitted step on their
arrays and writes the results back, so that the loop, snapshots and
`set_state` see plain Keras models. That host work does not overlap the
device: each step returns its statistics as floats. This script times it
for the real state (G, D, Gs, both Adams) without running the step:

- `all_moved_ms`: every array moved to the step's devices, as the first
  step (or one after every variable was reassigned) does;
- `reuse_ms`: the steady state, where the arrays the last step returned
  are reused and only reassigned ones move (none here);

each with the write-back. One JSON line per resolution.

Example:
  KERAS_BACKEND=jax python bench/host_overhead.py --res=64,256
"""

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import replace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from train_bench import CHANNELS  # noqa: E402


def measure(res, channels, repeats):
    import config as config_lib
    from training.backends import jax as jax_backend

    cfg = replace(
        config_lib.BASE,
        name="bench",
        img_resolution=res,
        batch=32,
        **CHANNELS[channels],
    )
    cfg = config_lib.validate(cfg)
    strategy = jax_backend.make_strategy()
    state = jax_backend.build_state(cfg, strategy)
    variables = jax_backend._Vars(state)
    sharding = strategy.replicated
    every, reuse = [], []
    for _ in range(repeats):
        variables.written = {}  # as before the first step: move them all
        t0 = time.perf_counter()
        last, moved_all = variables.placed(sharding)
        variables.write(last)
        t1 = time.perf_counter()
        values, moved = variables.placed(sharding)
        variables.write(values)
        t2 = time.perf_counter()
        every.append(t1 - t0)
        reuse.append(t2 - t1)
    return dict(
        what="host_overhead",
        res=res,
        channels=channels,
        arrays=moved_all,
        moved_on_reuse=moved,
        all_moved_ms=round(1000 * statistics.median(every), 2),
        reuse_ms=round(1000 * statistics.median(reuse), 2),
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--res", default="64,256", help="resolutions, comma list")
    p.add_argument(
        "--channels", choices=sorted(CHANNELS), default="full",
        help="network widths (default: full)",
    )  # fmt: skip
    p.add_argument("--repeats", type=int, default=10)
    args = p.parse_args(argv)
    if os.environ.get("KERAS_BACKEND") != "jax":
        sys.exit("error: run with KERAS_BACKEND=jax (the JAX step's state)")
    for res in [int(r) for r in args.res.split(",") if r]:
        print(json.dumps(measure(res, args.channels, args.repeats)))


if __name__ == "__main__":
    main()
