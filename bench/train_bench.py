"""Training-step throughput: img/s, sec/kimg, memory and achieved TFLOP/s.

Times the real training step (`backend.make_train_step`: D step with R1,
G step, w_avg and Gs update) on a fixed synthetic uint8 batch, so the input
pipeline is not part of the figure (bench/pipeline_bench.py times that).
Per case: warm-up steps (compilation) are excluded, then `--blocks` timed
blocks of `--steps` steps; the step returns its statistics as Python floats,
which waits for the device, so the clock reads after the device is done.
The median block gives img/s. One JSON line per case on stdout (and
appended to `--out`).

FLOPs per image are counted from the layer shapes (one recorded forward
pass at batch 1): a convolution costs 2*k*k*Cin*Cout*H*W at the resolution
it is computed (the upsampled one for up-convs, the input one for
down-convs), a dense layer 2*in*out; blur, noise, norms and activations
are not counted. With Gf and Df the forward FLOPs of G and of D (on its
whole image pyramid) and a backward pass costing 2x its forward:

  D step = Gf (fakes) + 2 Df (D on fakes and reals) + 4 Df (D backward for
           both) + 2 Df / r1_interval (R1's double backward, counted as
           another 2x of D on the reals)
  G step = 3 Gf + 3 Df (forward and backward of both)

achieved TFLOP/s = FLOPs per image * img/s / 1e12. Generation (Gs forward,
const noise) and, with `--inception`, Inception feature extraction are
timed the same way.

`--root` times another checkout's code (e.g. the commit before a change)
and `--turns` times one block per request on stdin: bench/ab_bench.py
uses both to compare two checkouts side by side.

Examples:
  python bench/train_bench.py --backend=jax --res=32 --channels=reduced
  python bench/train_bench.py --backend=tensorflow --res=32 --xla=on,off \
      --precision=fp32,bf16 --channels=reduced --batch=16
  python bench/train_bench.py --res=32,64 --precision=fp32,bf16 \
      --xla=on,elementwise --batch=32          # bf16 on a CPU with AMX
"""

import argparse
import json
import os
import sys
import time
from dataclasses import replace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

CHANNELS = {
    # The paper's network sizes.
    "full": dict(
        z_dim=512, w_dim=512, mapping_layers=8, channel_base=16384,
        channel_max=512,
    ),
    # The CPU demo's sizes (config.py's msg-stylegan-demo).
    "reduced": dict(
        z_dim=64, w_dim=64, mapping_layers=2, channel_base=1024,
        channel_max=64,
    ),
    # The tests' sizes: a smoke test of the benchmark itself.
    "tiny": dict(
        z_dim=16, w_dim=16, mapping_layers=2, channel_base=128,
        channel_max=16,
    ),
}  # fmt: skip


def _list(kind):
    def parse(text):
        return [kind(t) for t in text.split(",") if t]

    return parse


def build_parser():
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="\n".join(__doc__.splitlines()[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--backend",
        metavar="NAME",
        choices=["tensorflow", "tf", "jax"],
        default="tensorflow",
        help="Keras backend: tensorflow (tf) or jax (default: %(default)s)",
    )
    p.add_argument(
        "--res",
        metavar="LIST",
        type=_list(int),
        default=[32, 64, 128, 256],
        help="resolutions, comma separated (default: 32,64,128,256)",
    )
    p.add_argument(
        "--batch",
        metavar="N",
        type=int,
        default=32,
        help="global batch (default: %(default)s)",
    )
    p.add_argument(
        "--precision",
        metavar="LIST",
        type=_list(str),
        default=["fp32"],
        help="fp32, bf16 and/or fp16 (loss scaled), comma separated "
        "(default: fp32)",
    )
    p.add_argument(
        "--xla",
        metavar="LIST",
        type=_list(str),
        default=["on"],
        help="on, off and/or elementwise (TensorFlow; JAX always compiles "
        "whole) (default: on)",
    )
    p.add_argument(
        "--channels",
        metavar="SIZE",
        choices=sorted(CHANNELS),
        default="full",
        help="network widths: %(choices)s (default: %(default)s)",
    )
    p.add_argument(
        "--warmup",
        metavar="N",
        type=int,
        default=2,
        help="untimed steps first, compilation included (default: %(default)s)",
    )
    p.add_argument(
        "--blocks",
        metavar="N",
        type=int,
        default=3,
        help="timed blocks; the median counts (default: %(default)s)",
    )
    p.add_argument(
        "--steps",
        metavar="N",
        type=int,
        default=5,
        help="steps per timed block (default: %(default)s)",
    )
    p.add_argument(
        "--max-seconds",
        metavar="S",
        type=float,
        default=120.0,
        help="stop adding timed blocks to a case after S seconds (at "
        "least one block runs) (default: %(default)s)",
    )
    p.add_argument(
        "--generation",
        action="store_true",
        help="also time Gs generation (default: off)",
    )
    p.add_argument(
        "--inception",
        metavar="PATH",
        help="also time Inception features with these weights (default: off)",
    )
    p.add_argument(
        "--out",
        metavar="FILE",
        help="append each JSON line to FILE too (default: stdout only)",
    )
    p.add_argument(
        "--root",
        metavar="DIR",
        help="time the code of another checkout of this project, e.g. the "
        "commit before a change (default: this one)",
    )
    p.add_argument(
        "--turns",
        action="store_true",
        help="one case; after the warm-up, time one block per 'go' line on "
        "stdin (bench/ab_bench.py drives it) (default: off)",
    )
    return p


def count_flops(G, D, cfg):
    """Forward FLOPs per image of G and of D, from one recorded pass.

    Patches the call of every equalized conv and dense layer (ToRGB and
    FromRGB included) to add its multiply-adds, then runs G and D once on
    one image.
    """
    import keras
    import numpy as np

    from msg_stylegan import layers, ops

    counted = {"n": 0}

    def conv_call(self, x, _orig=layers.EqualizedConv2D.call):
        k, _, cin, cout = self.kernel.shape
        h, w = x.shape[1], x.shape[2]
        if self.up:
            h, w = 2 * h, 2 * w
        counted["n"] += 2 * k * k * cin * cout * h * w
        return _orig(self, x)

    def dense_call(self, x, _orig=layers.EqualizedDense.call):
        cin, cout = self.kernel.shape
        rows = int(np.prod(x.shape[1:-1])) if len(x.shape) > 2 else 1
        counted["n"] += 2 * cin * cout * rows
        return _orig(self, x)

    saved = layers.EqualizedConv2D.call, layers.EqualizedDense.call
    layers.EqualizedConv2D.call = conv_call
    layers.EqualizedDense.call = dense_call

    def run(fn, *xs):
        # On JAX, trace only (shapes are all the count needs): eager JAX
        # would compile every op for the GPU.
        if keras.backend.backend() == "jax":
            import jax

            return jax.eval_shape(fn, *xs)
        return fn(*xs)

    try:
        z = np.zeros((1, cfg.z_dim), "float32")
        imgs = run(lambda z: G(z, noise_mode="const"), z)
        g_flops = counted["n"]
        counted["n"] = 0
        real = np.zeros((1, *imgs[-1].shape[1:]), "float32")
        run(lambda x: D(ops.image_pyramid(x, D.num_inputs)), real)
        d_flops = counted["n"]
    finally:
        layers.EqualizedConv2D.call, layers.EqualizedDense.call = saved
    return g_flops, d_flops


def step_flops(g_flops, d_flops, r1_interval=1):
    """FLOPs per image of one training step (see the module docstring)."""
    d_step = g_flops + 6 * d_flops + 2 * d_flops / r1_interval
    g_step = 3 * g_flops + 3 * d_flops
    return d_step + g_step


def _block(fn, i, steps):
    """Wall and process-CPU seconds per call of calls i .. i + steps - 1."""
    t0, c0 = time.perf_counter(), time.process_time()
    for k in range(steps):
        fn(i + k)
    wall = time.perf_counter() - t0
    return wall / steps, (time.process_time() - c0) / steps


def _timed(fn, warmup, blocks, steps, max_seconds, turns=False):
    """Median seconds per call over timed blocks, after warm-up calls."""
    import statistics

    for i in range(warmup):
        fn(i)
    if turns:
        return _take_turns(fn, warmup, steps)
    times, start, i = [], time.perf_counter(), warmup
    for _ in range(blocks):
        times.append(_block(fn, i, steps)[0])
        i += steps
        if time.perf_counter() - start > max_seconds:
            break
    return statistics.median(times), len(times)


def _take_turns(fn, i, steps):
    """Time one block per "go" line on stdin, until "stop" or its end.

    The protocol of bench/ab_bench.py, which alternates two checkouts'
    workers: "ready" once compiled, then one JSON line per block.
    """
    import statistics

    print(json.dumps({"turn": "ready"}), flush=True)
    times = []
    for line in sys.stdin:
        if line.strip() != "go":
            break
        sec, cpu = _block(fn, i, steps)
        i += steps
        times.append(sec)
        row = {"turn": "block", "sec_per_step": sec, "cpu_per_step": cpu}
        print(json.dumps(row), flush=True)
    if not times:
        raise SystemExit("--turns: stdin ended before the first block")
    return statistics.median(times), len(times)


def _log(what, t0):
    """Progress on stderr: where a bounded run spent its time."""
    print(f"[{time.perf_counter() - t0:7.1f}s] {what}", file=sys.stderr)
    sys.stderr.flush()


def _emit(row, out):
    line = json.dumps(row)
    print(line, flush=True)
    if out:
        with open(out, "a") as f:
            f.write(line + "\n")


def run_case(args, backend, res, precision, xla):
    import numpy as np

    import config as config_lib

    t_case = time.perf_counter()
    _log(f"case res={res} {precision} xla={xla}", t_case)
    cfg = replace(
        config_lib.BASE,
        name="bench",
        img_resolution=res,
        batch=args.batch,
        mixed_precision={"fp32": "off", "bf16": "bf16", "fp16": "fp16"}[
            precision
        ],
        # As a boolean where it is one: a --root checkout from before the
        # "elementwise" mode reads a bool (and "off" would be true there).
        xla={"on": True, "off": False}.get(xla, xla),
        **CHANNELS[args.channels],
    )
    config_lib.validate(cfg)
    strategy = backend.make_strategy()
    state = backend.build_state(cfg, strategy)
    _log("state built", t_case)
    g_flops, d_flops = count_flops(state.G, state.D, cfg)
    flops = step_flops(g_flops, d_flops, cfg.r1_interval)
    _log(f"{flops / 1e9:.2f} GFLOP per image counted", t_case)
    rng = np.random.default_rng(0)
    shape = (args.batch, res, res, cfg.img_channels)
    reals = rng.integers(0, 256, shape, dtype=np.uint8)
    if backend.NAME == "tensorflow":
        import tensorflow as tf

        n = len(reals) // strategy.num_replicas_in_sync
        reals = strategy.experimental_distribute_values_from_function(
            lambda ctx: tf.constant(
                reals[ctx.replica_id_in_sync_group * n :][:n]
            )
        )
    step, _ = backend.make_train_step(state, cfg, strategy)
    t0 = time.perf_counter()
    warm = {"s": 0.0}

    def one(i):
        out = step(reals, i)
        if i < args.warmup:
            # Compilation lands here: reported apart from the timed blocks.
            warm["s"] = time.perf_counter() - t0
            _log(f"warm-up step {i} done", t_case)
        return out

    sec, blocks = _timed(
        one,
        args.warmup,
        args.blocks,
        args.steps,
        args.max_seconds,
        turns=args.turns,
    )
    total = time.perf_counter() - t0
    img_s = args.batch / sec
    row = dict(
        what="train_step",
        backend=backend.NAME,
        device=backend.device_name(),
        replicas=strategy.num_replicas_in_sync,
        res=res,
        batch=args.batch,
        channels=args.channels,
        precision=precision,
        xla="on" if backend.NAME == "jax" else xla,
        img_per_s=round(img_s, 3),
        sec_per_kimg=round(1000.0 / img_s, 2),
        peak_mem_gb=round(backend.peak_memory_gb(), 3),
        gflops_per_img=round(flops / 1e9, 3),
        g_fwd_gflops=round(g_flops / 1e9, 3),
        d_fwd_gflops=round(d_flops / 1e9, 3),
        achieved_tflops=round(flops * img_s / 1e12, 3),
        timed_blocks=blocks,
        steps_per_block=args.steps,
        warmup_s=round(warm["s"], 1),
        case_s=round(total, 1),
        g_params=int(sum(np.prod(v.shape) for v in state.G.trainable_weights)),
        d_params=int(sum(np.prod(v.shape) for v in state.D.trainable_weights)),
        loadavg_1m=round(os.getloadavg()[0], 2),
    )
    _emit(row, args.out)
    if args.generation:
        time_generation(args, backend, state, cfg, precision, g_flops)


def time_generation(args, backend, state, cfg, precision, g_flops):
    """Gs images per second (const noise), compiled on either backend."""
    import keras
    import numpy as np

    Gs = state.Gs
    z = np.random.default_rng(0).normal(size=(args.batch, cfg.z_dim))
    z = z.astype("float32")
    if keras.backend.backend() == "jax":
        import jax

        tv = [v.value for v in Gs.trainable_variables]
        ntv = [v.value for v in Gs.non_trainable_variables]
        fwd = jax.jit(
            lambda z: Gs.stateless_call(tv, ntv, z, noise_mode="const")[0][-1]
        )

        def run(_):
            fwd(z).block_until_ready()
    else:
        import tensorflow as tf

        fwd = tf.function(
            lambda z: Gs(z, noise_mode="const")[-1],
            jit_compile=cfg.xla in (True, "on"),
        )

        def run(_):
            fwd(z).numpy()

    sec, blocks = _timed(run, 2, args.blocks, args.steps, args.max_seconds)
    img_s = args.batch / sec
    row = dict(
        what="generation",
        backend=backend.NAME,
        device=backend.device_name(),
        res=cfg.img_resolution,
        batch=args.batch,
        channels=args.channels,
        precision=precision,
        img_per_s=round(img_s, 2),
        achieved_tflops=round(g_flops * img_s / 1e12, 3),
        timed_blocks=blocks,
    )
    _emit(row, args.out)


def time_inception(args, backend):
    import numpy as np

    from metrics.inception import feature_extractor

    ext = feature_extractor(args.inception, batch_size=args.batch)
    imgs = np.random.default_rng(0).integers(
        0, 256, (args.batch, 299, 299, 3), np.uint8
    )
    sec, blocks = _timed(
        lambda _: ext(imgs), 1, args.blocks, args.steps, args.max_seconds
    )
    row = dict(
        what="inception",
        backend=backend.NAME,
        device=backend.device_name(),
        batch=args.batch,
        img_per_s=round(args.batch / sec, 2),
        timed_blocks=blocks,
    )
    _emit(row, args.out)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.turns and (
        len(args.res) * len(args.precision) * len(args.xla) != 1
        or args.generation
        or args.inception
    ):
        parser.error("--turns times one case: one --res, --precision, --xla")
    bad = [x for x in args.xla if x not in ("on", "off", "elementwise")]
    if bad:
        parser.error(f"--xla: unknown {bad}; valid: on, off, elementwise")
    if args.root:
        if not os.path.isfile(os.path.join(args.root, "config.py")):
            parser.error(
                f"--root {args.root!r} is not a checkout of this project"
            )
        # Ahead of this checkout: the other one's modules are imported.
        sys.path.insert(0, os.path.abspath(args.root))
    name = {"tf": "tensorflow"}.get(args.backend, args.backend)
    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() != name:
            raise SystemExit(f"keras already uses {keras.backend.backend()}")
    os.environ["KERAS_BACKEND"] = name
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from training import backends

    backend = backends.get()
    xlas = args.xla if name == "tensorflow" else ["on"]
    for res in args.res:
        for precision in args.precision:
            for xla in xlas:
                run_case(args, backend, res, precision, xla)
    if args.inception:
        time_inception(args, backend)
    return 0


if __name__ == "__main__":
    sys.exit(main())
