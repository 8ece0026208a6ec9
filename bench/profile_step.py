"""Where the JAX training step's time goes: XLA's cost, a trace, op kinds.

Builds the real training step the way bench/train_bench.py does (same
configs, same FLOP count, fixed synthetic uint8 batch), compiles and warms
it up, times `--steps` steps, then:

1. prints XLA's cost analysis of the compiled step (`jitted.lower(...)
   .compile().cost_analysis()`): FLOPs and bytes accessed per step, their
   ratio (arithmetic intensity, FLOP/byte), and with `--peak-tflops` and
   `--peak-tbps` the roofline's lower bound on the step time;
2. captures a `jax.profiler.trace` of `--trace-steps` steps into
   `--trace-dir` (TensorBoard/XProf layout: plugins/profile/<run>/
   *.xplane.pb and *.trace.json.gz);
3. reads the trace's *.trace.json.gz (Chrome trace JSON, no extra
   dependencies) and attributes device time to op kinds: convolution
   (cuDNN), conv-grouped (feature_group_count > 1: the depthwise blur
   filters), gemm (cuBLAS, Triton), reduce, copy/transpose, fusion
   (elementwise, XLA's loop fusions), collective, other. The kind comes
   from the optimised HLO instruction a kernel ran for (its opcode, custom
   call target or fusion kind), found by the kernel's name or its
   `args.hlo_op`; kernels not found there are classified by name. Each
   top op also shows its JAX name stack (which layer it came from). The
   HLO text is written beside the trace (train_step.hlo.txt.gz).

Device time is the kernels on the GPU's "Stream" lines. Besides the
per-kind table and the top ops, the report gives the traced window per
step, the time any kernel ran (busy) and the rest (idle: the host between
steps, launch gaps), kernels per step and their median length, and the
TFLOP/s of the counted FLOPs over the convolution and gemm time alone.
On a CPU there is no device: the table then sums the host threads' XLA op
events (they overlap across threads, so shares are only indicative).

The full report goes to `--out` as JSON; stdout has the text tables.

Examples:
  python bench/profile_step.py --res=64 --precision=bf16 --batch=32 \
      --peak-tflops=989 --peak-tbps=4.8 --out=/tmp/profile.json
  python bench/profile_step.py --res=16 --channels=tiny --batch=8
  JAX_DEFAULT_MATMUL_PRECISION=highest python bench/profile_step.py
"""

import argparse
import collections
import glob
import gzip
import json
import math
import os
import re
import statistics
import sys
import tempfile
import time
from dataclasses import replace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from train_bench import (  # noqa: E402
    CHANNELS,
    _log,
    _timed,
    count_flops,
    step_flops,
)

# Op kinds, first match wins, tested on "<hlo op> <kernel name>" in lower
# case. Convolutions before gemm (cuDNN's kernels are "implicit_gemm"s);
# "conv" not followed by "ert" (XLA's "loop_convert_fusion" is elementwise);
# reduce and copy before fusion ("input_reduce_fusion",
# "loop_transpose_fusion").
KINDS = (
    ("collective", r"all-reduce|all-gather|reduce-scatter|collective|nccl"),
    ("convolution", r"conv(?!ert)|cudnn|fprop|dgrad|wgrad"),
    ("gemm", r"gemm|cublas|matmul|\bdot|_dot|nvjet"),
    ("reduce", r"reduc"),
    (
        "copy/transpose",
        r"copy|transpose|memcpy|memset|concatenate|slice|pad|"
        r"nchwtonhwc|nhwctonchw|bitcast",
    ),
    ("fusion", r"fusion|loop_|wrapped_|elementwise|convert"),
)
KIND_NAMES = [k for k, _ in KINDS] + ["conv-grouped", "other"]
_KIND_RE = [(k, re.compile(p)) for k, p in KINDS]
_HLO_LINE = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*(.*)$")
_OPCODE = re.compile(r"(?:^|\s)([a-z][a-z0-9\-]*)\(")
_OP_NAME = re.compile(r'op_name="([^"]*)"')
_GROUPS = re.compile(r"feature_group_count=(\d+)")
_COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all")
_MOVES = (
    "copy",
    "copy-start",
    "transpose",
    "concatenate",
    "slice",
    "dynamic-slice",
    "dynamic-update-slice",
    "pad",
)

# Trace lines on a device that are derived from the kernels (op and module
# spans), not kernels themselves: left out of the sums.
_DERIVED_LINES = ("xla modules", "xla ops", "steps", "tensorflow", "source")


def op_kind(op, kernel=""):
    """The op kind of one device event from its names (see KINDS)."""
    text = f"{op} {kernel}".lower()
    for kind, pattern in _KIND_RE:
        if pattern.search(text):
            return kind
    return "other"


def hlo_index(text):
    """{instruction name: (kind, op_name)} of a compiled module's HLO text.

    The kind comes from the instruction itself: its opcode, a custom call's
    target (cuDNN convolutions, cuBLAS gemms), a fusion's kind (kInput:
    reductions; kCustom: Triton or cuDNN gemms). A convolution with
    feature_group_count > 1 (the blur filters, depthwise) is
    "conv-grouped". op_name is the JAX name stack, which says which layer
    the op came from.
    """
    index = {}
    for line in text.splitlines():
        m = _HLO_LINE.match(line)
        if not m or line.lstrip().startswith(("ENTRY", "//")):
            continue
        name, rest = m.groups()
        op = _OPCODE.search(rest)
        opcode = op.group(1) if op else ""
        source = _OP_NAME.search(rest)
        source = source.group(1) if source else ""
        index[name] = (_instruction_kind(name, opcode, rest), source)
    return index


def _instruction_kind(name, opcode, rest):
    if opcode.startswith(_COLLECTIVES) or "collective-permute" in opcode:
        return "collective"
    if opcode == "convolution" or "__cudnn$conv" in rest:
        groups = _GROUPS.search(rest)
        return (
            "conv-grouped" if groups and int(groups[1]) > 1 else "convolution"
        )
    if opcode == "dot" or "__cublas" in rest:
        return "gemm"
    if opcode == "fusion" and "kind=kCustom" in rest:
        if re.search(r"conv(?!ert)", rest):
            return "convolution"
        return "gemm"
    if opcode == "reduce" or (opcode == "fusion" and "kind=kInput" in rest):
        # kInput fusions are reductions, or transposes read through shared
        # memory: the name tells.
        return "copy/transpose" if "transpose" in name else "reduce"
    if opcode in _MOVES:
        return "copy/transpose"
    kind = op_kind(name, opcode)
    return "fusion" if opcode == "fusion" and kind == "other" else kind


def build_parser():
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="\n".join(__doc__.splitlines()[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = p.add_argument_group("case")
    g.add_argument(
        "--res",
        metavar="N",
        type=int,
        default=64,
        help="resolution (default: %(default)s)",
    )
    g.add_argument(
        "--batch",
        metavar="N",
        type=int,
        default=32,
        help="global batch (default: %(default)s)",
    )
    g.add_argument(
        "--precision",
        metavar="NAME",
        choices=["fp32", "bf16", "fp16"],
        default="bf16",
        help="fp32, bf16 or fp16 (mixed) (default: %(default)s)",
    )
    g.add_argument(
        "--matmul-precision",
        metavar="NAME",
        choices=["default", "high", "highest"],
        help="jax_default_matmul_precision for convs and matmuls; "
        "highest is true fp32 on a GPU, default lets fp32 use TF32 "
        "(default: JAX's, or $JAX_DEFAULT_MATMUL_PRECISION)",
    )
    g.add_argument(
        "--channels",
        metavar="SIZE",
        choices=sorted(CHANNELS),
        default="full",
        help="network widths: %(choices)s (default: %(default)s)",
    )
    g = p.add_argument_group("timing and trace")
    g.add_argument(
        "--warmup",
        metavar="N",
        type=int,
        default=2,
        help="untimed steps first, compilation included (default: %(default)s)",
    )
    g.add_argument(
        "--steps",
        metavar="N",
        type=int,
        default=5,
        help="timed steps, untraced (default: %(default)s)",
    )
    g.add_argument(
        "--trace-steps",
        metavar="N",
        type=int,
        default=3,
        help="steps inside the trace (default: %(default)s)",
    )
    g.add_argument(
        "--trace-dir",
        metavar="DIR",
        help="where jax.profiler writes (default: a new temporary folder)",
    )
    g.add_argument(
        "--top",
        metavar="N",
        type=int,
        default=15,
        help="ops listed by device time (default: %(default)s)",
    )
    g.add_argument(
        "--peak-tflops",
        metavar="X",
        type=float,
        help="the device's peak TFLOP/s at this precision, for the "
        "roofline (H200 dense: 989 bf16, 494 TF32, 67 fp32) (default: none)",
    )
    g.add_argument(
        "--peak-tbps",
        metavar="X",
        type=float,
        help="the device's memory bandwidth in TB/s for the roofline "
        "(H200: 4.8) (default: none)",
    )
    g.add_argument(
        "--out",
        metavar="FILE",
        help="write the whole report as JSON to FILE (default: none)",
    )
    return p


def make_config(args):
    """The benchmark config of one case, as train_bench.run_case makes it."""
    import config as config_lib

    cfg = replace(
        config_lib.BASE,
        name="bench",
        img_resolution=args.res,
        batch=args.batch,
        mixed_precision={"fp32": "off", "bf16": "bf16", "fp16": "fp16"}[
            args.precision
        ],
        xla=True,
        **CHANNELS[args.channels],
    )
    return config_lib.validate(cfg)


def make_recorded_step(backend, state, cfg, strategy):
    """`make_train_step`, plus its jitted function and latest arguments.

    jax.jit is wrapped while the step is made, so that the step's one
    jitted function can be lowered again with the arguments the step last
    passed it (the cost analysis) without copying the step's code.
    """
    import jax

    real_jit, records = jax.jit, []

    def recording_jit(fn, *a, **kw):
        jitted = real_jit(fn, *a, **kw)
        record = {"jitted": jitted, "args": None}
        records.append(record)

        def call(*args, **kwargs):
            record["args"], record["kwargs"] = args, kwargs
            return jitted(*args, **kwargs)

        return call

    jax.jit = recording_jit
    try:
        step, _ = backend.make_train_step(state, cfg, strategy)
    finally:
        jax.jit = real_jit
    if len(records) != 1:
        raise RuntimeError(
            f"make_train_step made {len(records)} jitted functions, "
            "expected one"
        )
    return step, records[0]


def compile_step(record):
    """The step's compiled executable, from the arguments of its last call.

    Lowering with those arguments finds the executable the step already
    compiled (no second compilation).
    """
    return record["jitted"].lower(*record["args"], **record["kwargs"]).compile()


def cost_analysis(compiled):
    """XLA's cost analysis of a compiled step, as plain numbers."""
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):  # older JAX: one dict per device
        cost = cost[0] if cost else {}
    cost = {
        k: float(v)
        for k, v in (cost or {}).items()
        if isinstance(v, (int, float))
    }
    flops = cost.get("flops", 0.0)
    nbytes = cost.get("bytes accessed", 0.0)
    return {
        "flops": flops,
        "bytes_accessed": nbytes,
        "transcendentals": cost.get("transcendentals", 0.0),
        "intensity_flop_per_byte": flops / nbytes if nbytes else None,
        "optimal_seconds": cost.get("optimal_seconds"),
    }


def find_trace(trace_dir):
    """The newest *.trace.json.gz under trace_dir, else None."""
    paths = glob.glob(
        os.path.join(trace_dir, "**", "*.trace.json.gz"), recursive=True
    )
    return max(paths, key=os.path.getmtime) if paths else None


def _union_length(intervals):
    """Total length of the union of (start, end) intervals."""
    total, end = 0.0, -math.inf
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def read_trace(path, steps, top, hlo=None):
    """Device time by op kind and the top ops, per step, from a trace.

    Events are Chrome-trace "X" events (ts, dur in microseconds). Device
    processes are named "/device:..."; their kernels are on "Stream" lines
    (or, where no line is named so, on every line but the derived ones).
    With no device process (a CPU run) the host's XLA op events, those
    carrying an `hlo_op`, stand in. `hlo` (from `hlo_index`) gives each
    op's kind and source; ops it lacks are classified by name.
    """
    hlo = hlo or {}
    with gzip.open(path, "rt") as f:
        events = json.load(f).get("traceEvents", [])
    procs, threads = {}, {}
    for e in events:
        if e.get("ph") != "M":
            continue
        name = (e.get("args") or {}).get("name", "")
        if e.get("name") == "process_name":
            procs[e["pid"]] = name
        elif e.get("name") == "thread_name":
            threads[(e["pid"], e.get("tid"))] = name
    spans = [e for e in events if e.get("ph") == "X" and "dur" in e]
    devices = {p for p, n in procs.items() if n.startswith("/device:")}
    on_device = [e for e in spans if e["pid"] in devices]
    if on_device:
        names = {
            (e["pid"], e.get("tid")): threads.get((e["pid"], e.get("tid")), "")
            for e in on_device
        }
        streams = {
            k for k, n in names.items() if n.lower().startswith("stream")
        }
        if streams:
            kernels = [
                e for e in on_device if (e["pid"], e.get("tid")) in streams
            ]
            mode = "device (Stream lines)"
        else:
            kernels = [
                e
                for e in on_device
                if not names[(e["pid"], e.get("tid"))]
                .lower()
                .startswith(_DERIVED_LINES)
            ]
            mode = "device (all but derived lines)"
    else:
        kernels = [e for e in spans if "hlo_op" in (e.get("args") or {})]
        mode = "host (no device in the trace; XLA op events on host threads)"
    report = {
        "path": path,
        "mode": mode,
        "devices": sorted(procs[p] for p in devices),
        "steps": steps,
        "events": len(kernels),
    }
    if not kernels:
        report["note"] = "no op events found in the trace"
        return report

    kinds = {k: [0.0, 0] for k in KIND_NAMES}
    ops = {}
    found = 0
    for e in kernels:
        args = e.get("args") or {}
        kernel = e.get("name", "")
        op = args.get("hlo_op") or kernel
        # XLA names a fusion's kernel after it, "." written "_". Try that
        # first: kernels run from a command buffer (a CUDA graph) may carry
        # the buffer's hlo_op, or none.
        for name in (re.sub(r"_(\d+)$", r".\1", kernel), kernel, op):
            if name in hlo:
                op, (kind, source) = name, hlo[name]
                found += 1
                break
        else:
            kind, source = op_kind(op, kernel), ""
        dur = float(e["dur"])
        kinds[kind][0] += dur
        kinds[kind][1] += 1
        if op not in ops:
            ops[op] = [0.0, 0, collections.Counter(), kind, source]
        entry = ops[op]
        entry[0] += dur
        entry[1] += 1
        entry[2][kernel] += dur
    if hlo:
        report["events_found_in_hlo"] = round(found / len(kernels), 4)
    total_us = sum(t for t, _ in kinds.values())
    start = min(float(e["ts"]) for e in kernels)
    end = max(float(e["ts"]) + float(e["dur"]) for e in kernels)
    busy_us = _union_length(
        [(float(e["ts"]), float(e["ts"]) + float(e["dur"])) for e in kernels]
    )
    window_us = end - start

    def per_step_ms(us):
        return round(us / steps / 1e3, 4)

    report.update(
        window_ms_per_step=per_step_ms(window_us),
        kernel_ms_per_step=per_step_ms(total_us),
        busy_ms_per_step=per_step_ms(busy_us),
        idle_fraction=round(1 - busy_us / window_us, 4) if window_us else 0,
        kernels_per_step=round(len(kernels) / steps, 1),
        median_kernel_us=round(
            statistics.median(float(e["dur"]) for e in kernels), 2
        ),
        kinds=[
            {
                "kind": k,
                "ms_per_step": per_step_ms(t),
                "share": round(t / total_us, 4) if total_us else 0,
                "count_per_step": round(n / steps, 1),
            }
            for k, (t, n) in sorted(kinds.items(), key=lambda kv: -kv[1][0])
        ],
        top_ops=[
            {
                "op": op,
                "kind": kind,
                "ms_per_step": per_step_ms(t),
                "share": round(t / total_us, 4) if total_us else 0,
                "count_per_step": round(n / steps, 1),
                "kernel": kernels_.most_common(1)[0][0][:160],
                "source": source[-160:],
            }
            for op, (t, n, kernels_, kind, source) in sorted(
                ops.items(), key=lambda kv: -kv[1][0]
            )[:top]
        ],
    )
    return report


def print_report(rep):
    """The report as text tables on stdout."""
    case = rep["case"]
    print(
        f"\n== {case['device']} res {case['res']} batch {case['batch']} "
        f"{case['precision']} matmul_precision="
        f"{case['matmul_precision']} ({case['channels']} channels)"
    )
    print(
        f"step {rep['step_ms']:.2f} ms, {rep['img_per_s']:.1f} img/s, "
        f"counted {rep['counted_gflop_per_step']:.1f} GFLOP/step -> "
        f"{rep['achieved_tflops']:.2f} TFLOP/s"
    )
    cost = rep["xla_cost"]
    if cost:
        intensity = cost["intensity_flop_per_byte"]
        print(
            f"XLA cost analysis: {cost['flops'] / 1e9:.1f} GFLOP, "
            f"{cost['bytes_accessed'] / 1e9:.2f} GB accessed per step, "
            f"intensity {intensity or 0:.1f} FLOP/byte "
            f"(XLA/counted FLOPs {rep['xla_over_counted_flops']})"
        )
    roof = rep.get("roofline")
    if roof:
        print(
            f"roofline: compute {roof['compute_ms']:.2f} ms, memory "
            f"{roof['memory_ms']:.2f} ms -> bound {roof['bound_ms']:.2f} ms "
            f"({roof['bound']}), machine balance "
            f"{roof['balance_flop_per_byte']:.0f} FLOP/byte; the step takes "
            f"{rep['step_ms'] / roof['bound_ms']:.1f}x the bound"
        )
    tr = rep.get("trace") or {}
    print(f"trace: {tr.get('path')}\n  mode: {tr.get('mode')}")
    if "events_found_in_hlo" in tr:
        print(f"  events matched to HLO ops: {tr['events_found_in_hlo']:.1%}")
    if "kinds" not in tr:
        print(f"  {tr.get('note', 'no trace')}")
        return
    print(
        f"  per step: window {tr['window_ms_per_step']:.2f} ms, kernels "
        f"{tr['kernel_ms_per_step']:.2f} ms, busy "
        f"{tr['busy_ms_per_step']:.2f} ms, idle {tr['idle_fraction']:.1%}; "
        f"{tr['kernels_per_step']:.0f} kernels, median "
        f"{tr['median_kernel_us']:.1f} us"
    )
    if rep.get("conv_gemm_tflops") is not None:
        print(
            f"  counted FLOPs over convolution+gemm time: "
            f"{rep['conv_gemm_tflops']:.1f} TFLOP/s"
        )
    print(f"  {'kind':<16}{'ms/step':>10}{'share':>8}{'count/step':>12}")
    for k in tr["kinds"]:
        print(
            f"  {k['kind']:<16}{k['ms_per_step']:>10.3f}"
            f"{k['share']:>8.1%}{k['count_per_step']:>12.1f}"
        )
    print(f"  top {len(tr['top_ops'])} ops (source: the JAX name stack):")
    print(f"  {'ms/step':>9}{'share':>7}{'n':>5}  {'kind':<15}{'op':<32}source")
    for o in tr["top_ops"]:
        source = o["source"].removeprefix("jit(train_step)/")
        print(
            f"  {o['ms_per_step']:>9.3f}{o['share']:>7.1%}"
            f"{o['count_per_step']:>5.0f}  {o['kind']:<15}{o['op'][:31]:<32}"
            f"{source[-60:]}"
        )
        if o["kernel"] != o["op"]:
            print(f"  {'':>23}kernel {o['kernel'][:90]}")


def main(argv=None):
    args = build_parser().parse_args(argv)
    os.environ["KERAS_BACKEND"] = "jax"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import jax
    import numpy as np

    if args.matmul_precision:
        jax.config.update("jax_default_matmul_precision", args.matmul_precision)
    from training import backends

    backend = backends.get()
    t0 = time.perf_counter()
    cfg = make_config(args)
    strategy = backend.make_strategy()
    state = backend.build_state(cfg, strategy)
    _log("state built", t0)
    g_flops, d_flops = count_flops(state.G, state.D, cfg)
    flops_img = step_flops(g_flops, d_flops, cfg.r1_interval)
    step, record = make_recorded_step(backend, state, cfg, strategy)
    shape = (args.batch, args.res, args.res, cfg.img_channels)
    reals = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)

    def one(i):
        step(reals, i)
        if i < args.warmup:
            _log(f"warm-up step {i} done", t0)

    sec, _ = _timed(one, args.warmup, 1, args.steps, math.inf)
    _log(f"{args.steps} timed steps: {sec * 1e3:.2f} ms/step", t0)
    compiled = compile_step(record)
    cost = cost_analysis(compiled)
    hlo_text = compiled.as_text()
    hlo = hlo_index(hlo_text)
    _log(f"cost analysis done; {len(hlo)} HLO instructions", t0)

    trace_dir = args.trace_dir or tempfile.mkdtemp(prefix="profile_step_")
    os.makedirs(trace_dir, exist_ok=True)
    # The optimised HLO beside the trace: op names in the trace are its
    # instruction names.
    with gzip.open(os.path.join(trace_dir, "train_step.hlo.txt.gz"), "wt") as f:
        f.write(hlo_text)
    options = jax.profiler.ProfileOptions()
    if hasattr(options, "python_tracer_level"):
        options.python_tracer_level = 0  # Python frames: noise here
    first = args.warmup + args.steps
    jax.profiler.start_trace(trace_dir, profiler_options=options)
    try:
        for i in range(first, first + args.trace_steps):
            step(reals, i)
    finally:
        jax.profiler.stop_trace()
    _log(f"traced {args.trace_steps} steps into {trace_dir}", t0)
    path = find_trace(trace_dir)
    if path:
        trace = read_trace(path, args.trace_steps, args.top, hlo)
    else:
        files = glob.glob(os.path.join(trace_dir, "**", "*"), recursive=True)
        trace = {"path": None, "note": f"no *.trace.json.gz in {files}"}
    _log("trace read", t0)

    counted = flops_img * args.batch
    rep = {
        "what": "profile_step",
        "case": {
            "backend": backend.NAME,
            "device": backend.device_name(),
            "res": args.res,
            "batch": args.batch,
            "channels": args.channels,
            "precision": args.precision,
            "jax": jax.__version__,
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "matmul_precision": str(
                jax.config.jax_default_matmul_precision or "default"
            ),
        },
        "step_ms": round(sec * 1e3, 3),
        "img_per_s": round(args.batch / sec, 2),
        "counted_gflop_per_step": round(counted / 1e9, 3),
        "achieved_tflops": round(counted / sec / 1e12, 3),
        "xla_cost": cost,
        "xla_over_counted_flops": round(cost["flops"] / counted, 3)
        if counted
        else None,
        "peak_mem_gb": round(backend.peak_memory_gb(), 3),
        "trace": trace,
    }
    if args.peak_tflops and args.peak_tbps:
        compute_ms = cost["flops"] / (args.peak_tflops * 1e12) * 1e3
        memory_ms = cost["bytes_accessed"] / (args.peak_tbps * 1e12) * 1e3
        rep["roofline"] = {
            "peak_tflops": args.peak_tflops,
            "peak_tbps": args.peak_tbps,
            "balance_flop_per_byte": args.peak_tflops / args.peak_tbps,
            "compute_ms": round(compute_ms, 4),
            "memory_ms": round(memory_ms, 4),
            "bound_ms": round(max(compute_ms, memory_ms), 4),
            "bound": "compute" if compute_ms >= memory_ms else "memory",
        }
    kinds = {k["kind"]: k["ms_per_step"] for k in trace.get("kinds", [])}
    mm_ms = kinds.get("convolution", 0) + kinds.get("gemm", 0)
    if mm_ms and trace.get("mode", "").startswith("device"):
        rep["conv_gemm_tflops"] = round(counted / (mm_ms / 1e3) / 1e12, 2)
    print_report(rep)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rep, f, indent=1)
        print(f"report: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
