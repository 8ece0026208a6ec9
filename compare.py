"""Compare training runs: metric curves, a summary table, samples, scales.

python compare.py results/00000-msg-stylegan-1gpu \\
    results/00001-stylegan-1gpu --outdir=out/compare
"""

import argparse
import dataclasses
import glob
import json
import math
import os
import re
import statistics
import sys
from dataclasses import dataclass, field

import numpy as np

import config as config_lib
from dnnlib.util import (
    UserError,
    add_verbose_flag,
    arg_positive,
    atomic_write,
    parse_range,
    quiet_framework_logs,
    run_cli,
)
from msg_stylegan import snapshot
from training import stats

EPILOG = """examples:
  # MSG-StyleGAN against the StyleGAN baseline, on the first metric both
  # runs have (e.g. fid10k from train.py --metrics=fid10k)
  python compare.py results/00000-msg-stylegan-1gpu \\
      results/00001-stylegan-1gpu --outdir=out/compare

  # a chosen metric, 16 sample seeds with truncation psi 0.7
  python compare.py results/0000[0-3]-* --outdir=out/compare \\
      --metric=kid10k --seeds=0-15 --trunc=0.7

Writes into --outdir: fid_vs_kimg.png and fid_vs_time.png (the --metric per
snapshot, against kimg and against training hours), comparison.md (a table
of kimg, best and final metric, speed, memory and parameter counts),
samples.png (the same seeds from each run's latest Gs, one row per run),
losses.png (D's and G's losses, D's penalty and scores against kimg: who
wins the game; their late means are in comparison.md), r1_scales.png (the
squared norm of R1's gradient per D input scale: which scales D reads) and
scale_consistency.png (mean |scale - downsampled full-res| per scale, for
runs whose stats.jsonl has Consistency/* entries). Metrics are read from
metric-<name>.txt; compute them with run_metrics.py, or train.py --metrics.
Lower metric values are better (FID, KID). For a run continued with
--resume, give its latest directory: the earlier legs (named in each log.txt)
are joined in.
"""

_METRIC_FILE_RE = re.compile(r"^metric-(.+)\.txt$")
# The line training_loop prints (into log.txt) when a run resumes.
_RESUMED_RE = re.compile(r"^Resumed from '(.+)' at kimg [\d.]+$")
# (file, statistic prefix, y label, log y): per-scale plots, a panel a run.
SCALE_PLOTS = (
    (
        "scale_consistency.png",
        stats.CONSISTENCY,
        "mean |scale - downsampled top|",
        False,
    ),
    (
        "r1_scales.png",
        stats.R1_SCALES,
        "mean |d sum D(reals) / d scale|^2",
        True,
    ),
)
# losses.png: (title, [statistic names]), a second name dashed.
LOSS_PANELS = (
    ("D loss, its penalty included", ("Loss/D/loss",)),
    ("D penalty (R1 or gradient penalty)", ("Loss/D/reg",)),
    ("G loss", ("Loss/G/loss",)),
    (
        "D scores: real solid, fake dashed",
        ("Loss/scores/real", "Loss/scores/fake"),
    ),
)
LABEL_PAD = 6  # pixels either side of a row label in samples.png
# Config fields that do not change a run's training (labels ignore them).
_BOOKKEEPING = {
    "metrics",
    "fid_resize",
    "grid_size",
    "image_snapshot_ticks",
    "network_snapshot_ticks",
    "total_kimg",
}


def _range(text):
    try:
        return parse_range(text)
    except UserError as e:
        raise argparse.ArgumentTypeError(str(e))


def build_parser():
    p = argparse.ArgumentParser(
        prog="compare.py",
        description="Compare MSG-StyleGAN training runs: metric vs kimg and "
        "vs time,\na summary table, samples of the same seeds and the "
        "per-scale consistency.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "runs",
        metavar="RUN_DIR",
        nargs="*",
        help="run directories written by train.py (one or more)",
    )
    g = p.add_argument_group("output")
    g.add_argument(
        "--outdir",
        metavar="DIR",
        required=True,
        help="output folder, created if needed (required)",
    )
    g.add_argument(
        "--metric",
        metavar="NAME",
        default=None,
        help="metric to plot and tabulate (default: the first metric-*.txt "
        "that every run has, in name order)",
    )
    s = p.add_argument_group("samples.png")
    s.add_argument(
        "--seeds",
        metavar="LIST",
        type=_range,
        default=list(range(8)),
        help="seeds like 0-7,12, one column each (default: 0-7)",
    )
    s.add_argument(
        "--trunc",
        metavar="PSI",
        type=float,
        default=1.0,
        help="truncation psi, 1 = off (default: %(default)s)",
    )
    s.add_argument(
        "--batch",
        metavar="N",
        type=arg_positive(int),
        default=8,
        help="images per forward pass (default: %(default)s)",
    )
    add_verbose_flag(s)
    return p


def check_args(args):
    """Cross-option checks."""
    if not args.runs:
        raise UserError(
            "give at least one run directory, e.g. python compare.py "
            "results/00000-msg-stylegan-1gpu --outdir=out/compare"
        )
    seen = set()
    for path in args.runs:
        key = os.path.realpath(path)
        if key in seen:
            raise UserError(f"run directory '{path}' is given twice")
        seen.add(key)
    if args.trunc < 0:
        raise UserError(f"--trunc must be 0 or more, got {args.trunc}")
    if not args.seeds:
        raise UserError("--seeds is empty")
    return args


# --------------------------------------------------------------------------
# Reading runs


@dataclass
class Run:
    """What compare needs from one run directory.

    Args:
        path: the directory as given on the command line.
        cfg: the run's `config.Config`, from config.json.
        rows: stats.jsonl, one dict per tick, in order, the earlier legs'
            ticks first (see `earlier_legs`).
        label: the name in legends, the table and samples.png.
        legs: [(directory, kimg)] of the runs this one resumed from, oldest
            first, each with the kimg of the snapshot the next one resumed
            from: their metric values and ticks up to that kimg count as
            this run's.
    """

    path: str
    cfg: object
    rows: list
    label: str = ""
    legs: list = field(default_factory=list)
    points: list = field(default_factory=list)  # [(kimg, value)] of --metric
    resize: str = ""  # the --fid-resize mode of those values

    @property
    def last_kimg(self):
        return float(self.rows[-1]["Progress/kimg"])


def read_run(path):
    """A Run from `path`, or a UserError saying why it is not one."""
    if not os.path.exists(path):
        raise UserError(f"run directory '{path}' does not exist")
    if not os.path.isdir(path):
        raise UserError(f"'{path}' is not a directory")
    config_path = os.path.join(path, "config.json")
    stats_path = os.path.join(path, "stats.jsonl")
    if not os.path.isfile(config_path):
        raise UserError(
            f"'{path}' is not a training run: it has no config.json"
        )
    if not os.path.isfile(stats_path):
        raise UserError(
            f"'{path}' is not a training run (or has not finished its first "
            "tick): it has no stats.jsonl"
        )
    try:
        with open(config_path) as f:
            cfg = config_lib.Config.from_json(f.read())
    except UserError as e:
        raise UserError(f"'{config_path}': {e}")
    except (OSError, TypeError, ValueError) as e:
        raise UserError(f"'{config_path}' is unreadable: {e}")
    legs = earlier_legs(path)
    rows = []
    for leg, upto in legs:
        rows += [
            row
            for row in read_stats(os.path.join(leg, "stats.jsonl"))
            if float(row["Progress/kimg"]) <= upto + 1e-6
        ]
    rows += read_stats(stats_path)
    return Run(path=path, cfg=cfg, rows=rows, legs=legs)


def resumed_from(path):
    """The snapshot path run `path` resumed from, per its log.txt, or None
    (a run from scratch, or no log)."""
    try:
        with open(os.path.join(path, "log.txt"), errors="replace") as f:
            for line in f:
                if line.startswith("tick "):
                    break  # the resume line comes before the first tick
                m = _RESUMED_RE.match(line.rstrip("\n"))
                if m:
                    return m.group(1)
    except OSError:
        pass
    return None


def _leg_directory(snapshot_path, path):
    """The run directory of a snapshot named in `path`'s log: as logged
    (absolute, or relative to here), else the sibling of `path` with that
    name (a results folder moved or read from elsewhere); None if neither
    is a run with stats."""
    logged = os.path.dirname(snapshot_path)
    sibling = os.path.join(
        os.path.dirname(os.path.normpath(path)), os.path.basename(logged)
    )
    for leg in (logged, sibling):
        if leg and os.path.isfile(os.path.join(leg, "stats.jsonl")):
            return leg
    return None


def earlier_legs(path):
    """[(directory, kimg)] of the runs `path` continued, oldest first.

    A run resumed with --resume is a new run directory: the curve of one
    training is split over the directories of its legs. Each leg's log.txt
    names the snapshot it resumed from; the chain is followed back while
    those directories are here. A leg's ticks and metric values after the
    snapshot the next leg took (a branch abandoned by resuming from an
    earlier snapshot) are not part of the training and are left out.
    """
    legs, seen = [], {os.path.realpath(path)}
    while (snap := resumed_from(path)) is not None:
        kimg = snapshot.snapshot_kimg(snap)
        leg = _leg_directory(snap, path)
        if leg is None or kimg is None:
            print(
                f"note: '{path}' resumed from '{snap}', whose run is not "
                "here: its curve starts there"
            )
            break
        if os.path.realpath(leg) in seen:
            break
        seen.add(os.path.realpath(leg))
        legs.append((leg, kimg))
        path = leg
    return legs[::-1]


def read_stats(path):
    """The tick rows of a stats.jsonl that have `Progress/kimg`.

    The last line of a run still training may be half-written (appends are
    not atomic), so a bad last line is dropped; a bad line elsewhere is an
    error naming it.
    """
    try:
        with open(path) as f:
            lines = [ln for ln in f.read().splitlines() if ln.strip()]
    except OSError as e:
        raise UserError(f"cannot read '{path}': {e.strerror}")
    rows = []
    for i, line in enumerate(lines):
        try:
            row = json.loads(line)
        except ValueError:
            if i == len(lines) - 1:
                continue
            raise UserError(f"'{path}' line {i + 1} is not JSON")
        if isinstance(row, dict) and "Progress/kimg" in row:
            rows.append(row)
    if not rows:
        raise UserError(f"'{path}' has no tick rows yet")
    return rows


def metric_names(paths):
    """Names `<name>` of the `metric-<name>.txt` files in any of the
    directories `paths` (a run's legs), sorted."""
    names = set()
    for path in paths:
        pattern = os.path.join(glob.escape(path), "metric-*.txt")
        for file in glob.glob(pattern):
            m = _METRIC_FILE_RE.match(os.path.basename(file))
            if m:
                names.add(m.group(1))
    return sorted(names)


def choose_metric(runs, metric):
    """--metric, checked against every run, or the first common one."""
    names = {
        run.path: metric_names([leg for leg, _ in run.legs] + [run.path])
        for run in runs
    }
    for run in runs:
        if not names[run.path]:
            raise UserError(
                f"run '{run.path}' has no metric-*.txt files; compute them "
                f"with python run_metrics.py --network={run.path} "
                "--metric=fid10k (or train with --metrics=fid10k)"
            )
    if metric is not None:
        for run in runs:
            if metric not in names[run.path]:
                raise UserError(
                    f"run '{run.path}' has no metric-{metric}.txt (it has "
                    f"{', '.join(names[run.path])}); compute it with python "
                    f"run_metrics.py --network={run.path} --metric={metric}"
                )
        return metric
    common = sorted(set.intersection(*(set(n) for n in names.values())))
    if not common:
        have = "; ".join(f"{p}: {', '.join(n)}" for p, n in names.items())
        raise UserError(
            f"no metric is common to all runs ({have}); compute one with "
            "run_metrics.py --metric=NAME"
        )
    return common[0]


def network_kimg(network, last_kimg):
    """kimg of a network name from a metric line, None if not a snapshot.

    Snapshot names carry the kimg (`network-snapshot-000140`); the final
    network is at `last_kimg`, the run's last `Progress/kimg`.
    """
    if network == "network-final":
        return last_kimg
    return snapshot.snapshot_kimg(network)


def read_metric(run, metric):
    """[(kimg, value)] sorted by kimg from `metric-<metric>.txt` of the run
    and of its earlier legs (their values up to the kimg the next leg
    resumed from; a leg may have none).

    Lines are `<network> time <t> <metric> <value> resize=<mode>`, the time
    possibly two words (`3m 04s`); lines without `resize=` predate the
    option and were made in half-pixel mode. A network evaluated twice
    keeps its latest line; lines of networks that are not this run's
    snapshots are skipped with a note. Sets `run.resize`.
    """
    by_kimg, modes = {}, {}
    files = [*run.legs, (run.path, None)]
    for leg, upto in files:
        path = os.path.join(leg, f"metric-{metric}.txt")
        if not os.path.isfile(path):
            continue  # choose_metric found it in another leg
        # An earlier leg's network-final lies past the snapshot resumed.
        if upto is not None:
            last = math.inf
        else:
            last = run.last_kimg if run.rows else None
        for kimg, value, mode in _metric_lines(path, metric, last):
            if upto is None or kimg <= upto + 1e-6:
                by_kimg[kimg] = value
                modes.setdefault(mode, path)
    if not by_kimg:
        raise UserError(
            f"'{run.path}' has no {metric} results of this run's snapshots"
        )
    if len(modes) > 1:
        files = ", ".join(f"'{p}'" for p in sorted(set(modes.values())))
        raise UserError(
            f"'{run.path}' mixes {metric} values made with --fid-resize="
            f"{' and '.join(sorted(modes))} ({files}); recompute them in one "
            "mode"
        )
    run.resize = modes.popitem()[0]
    return sorted(by_kimg.items())


def _metric_lines(path, metric, last_kimg):
    """(kimg, value, resize mode) per line of one metric file, in order."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise UserError(f"cannot read '{path}': {e.strerror}")
    for i, line in enumerate(lines):
        parts = line.split()
        if not parts:
            continue
        mode = "half-pixel"
        if parts[-1].startswith("resize="):
            mode = parts.pop()[len("resize=") :]
        if len(parts) < 5 or parts[1] != "time" or parts[-2] != metric:
            raise UserError(
                f"'{path}' line {i + 1} is not '<network> time <t> "
                f"{metric} <value>': {line.strip()!r}"
            )
        try:
            value = float(parts[-1])
        except ValueError:
            raise UserError(f"'{path}' line {i + 1}: bad value {parts[-1]!r}")
        kimg = network_kimg(parts[0], last_kimg)
        if kimg is None:
            print(f"note: '{path}': skipping '{parts[0]}' (not a snapshot)")
            continue
        yield kimg, value, mode


def training_hours(rows, kimg):
    """Training time in hours up to the tick that reached `kimg`.

    The sum of `Timing/sec_per_tick` (which leaves out snapshots and
    metrics) over the ticks up to the first one at or past `kimg`, in this
    run directory. Snapshot names floor the kimg, hence the floor here.
    """
    total = 0.0
    for row in rows:
        total += float(row.get("Timing/sec_per_tick", 0.0))
        if math.floor(float(row["Progress/kimg"]) + 1e-9) >= kimg:
            break
    return total / 3600.0


def config_differences(runs):
    """Per run, `key=value` of the config fields in which the runs differ
    (those that change training: not the metrics or snapshot intervals)."""
    cfgs = [dataclasses.asdict(run.cfg) for run in runs]
    keys = sorted(
        key
        for key in cfgs[0]
        if key not in _BOOKKEEPING and len({repr(c[key]) for c in cfgs}) > 1
    )
    return [[f"{key}={c[key]}" for key in keys] for c in cfgs]


def run_labels(runs):
    """Config names; where runs share a config, with the fields they
    change (an ablation by overrides: `(r1_gamma=40)`), else (same
    settings, or more than three differences) the run number."""
    names = [run.cfg.name for run in runs]
    labels = []
    for run, name in zip(runs, names):
        if names.count(name) == 1:
            labels.append(name)
            continue
        group = [r for r, n in zip(runs, names) if n == name]
        diff = config_differences(group)[group.index(run)]
        if 0 < len(diff) <= 3:
            labels.append(f"{name} ({', '.join(diff)})")
            continue
        base = os.path.basename(os.path.normpath(run.path))
        m = re.match(r"^(\d+)-", base)
        labels.append(f"{name} ({m.group(1) if m else base})")
    # Two runs with the same number (different parents): the path decides.
    return [
        label if labels.count(label) == 1 else f"{run.cfg.name} ({run.path})"
        for run, label in zip(runs, labels)
    ]


def latest_network(path, upto=None):
    """network-final.pkl if present, else the snapshot of highest kimg;
    with `upto` (an earlier leg), the highest snapshot at or before it."""
    final = os.path.join(path, "network-final.pkl")
    if upto is None and os.path.isfile(final):
        return final
    files = glob.glob(os.path.join(glob.escape(path), "network-snapshot-*.pkl"))
    limit = math.inf if upto is None else upto + 1e-6
    kimgs = {f: snapshot.snapshot_kimg(f) for f in files}
    files = [f for f, k in kimgs.items() if k is not None and k <= limit]
    return max(files, key=snapshot.snapshot_order) if files else None


def run_network(run):
    """The run's latest network: its own, else its earlier legs'."""
    for leg, upto in [(run.path, None), *reversed(run.legs)]:
        path = latest_network(leg, upto)
        if path is not None:
            return path
    return None


# --------------------------------------------------------------------------
# The summary table


def summarize(run):
    """One table row of numbers (None where the run did not log them)."""
    best_kimg, best = min(run.points, key=lambda p: p[1])
    # The first tick of each leg includes tracing and compilation.
    rows = [
        r
        for i, r in enumerate(run.rows)
        if i > 0 and r.get("Progress/tick") != 1
    ] or run.rows
    spk = [r["Timing/sec_per_kimg"] for r in rows if "Timing/sec_per_kimg" in r]
    sec_per_kimg = statistics.median(spk) if spk else None
    mems = [
        r["Resources/peak_mem_gb"]
        for r in run.rows
        if isinstance(r.get("Resources/peak_mem_gb"), (int, float))
    ]
    return {
        "kimg": run.last_kimg,
        "best": best,
        "best_kimg": best_kimg,
        "final": run.points[-1][1],
        "sec_per_kimg": sec_per_kimg,
        "img_per_sec": 1000.0 / sec_per_kimg if sec_per_kimg else None,
        "peak_mem_gb": max(mems) if mems else None,
    }


def count_network_params(cfg):
    """Trainable parameters of (G, D) built from the run's config."""
    from msg_stylegan import networks

    G, D = networks.build_networks(cfg)
    return networks.count_params(G), networks.count_params(D)


def _kimg(k):
    return f"{k:.0f}" if float(k).is_integer() else f"{k:.1f}"


def _num(value, fmt):
    return "-" if value is None else format(value, fmt)


def comparison_table(runs, summaries, params, metric):
    """The Markdown text of comparison.md."""
    fmt = ".6f" if metric.startswith("kid") else ".4f"
    head = [
        "config",
        "run",
        "kimg",
        f"best {metric}",
        "best at kimg",
        f"final {metric}",
        "sec/kimg",
        "img/s",
        "peak mem (GB)",
        "G params",
        "D params",
    ]
    lines = [
        f"# Run comparison: {metric} (lower is better)",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] * 2 + ["--:"] * (len(head) - 2)) + "|",
    ]
    for run, s, (g, d) in zip(runs, summaries, params):
        cells = [
            run.label,
            " after ".join(
                f"`{p}`"
                for p in [run.path] + [leg for leg, _ in run.legs][::-1]
            ),
            _kimg(s["kimg"]),
            format(s["best"], fmt),
            _kimg(s["best_kimg"]),
            format(s["final"], fmt),
            _num(s["sec_per_kimg"], ".2f"),
            _num(s["img_per_sec"], ".1f"),
            _num(s["peak_mem_gb"], ".2f"),
            f"{g:,}",
            f"{d:,}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "run: the directory, after those of the runs it resumed from (its "
        "earlier legs, read through log.txt). sec/kimg: median over ticks "
        "after each leg's first (which includes compilation); img/s = 1000 / "
        "sec/kimg; parameters: trainable, from each run's config.json.",
        "",
    ]
    return "\n".join(lines + dynamics_table(runs))


def dynamics_table(runs):
    """comparison.md's lines on the adversarial game (`loss_means`)."""
    means = [loss_means(run) for run in runs]
    scales = sorted(
        {key for m in means for key in m if key.startswith(stats.R1_SCALES)},
        key=lambda key: _scale_of(key, stats.R1_SCALES),
    )
    keys = [
        key
        for _, names in LOSS_PANELS
        for key in names
        if any(key in m for m in means)
    ] + scales
    if not keys:
        return []
    lines = [
        "## The game: mean over the last quarter of each run's kimg",
        "",
        "| config | " + " | ".join(k[len("Loss/") :] for k in keys) + " |",
        "|---|" + "--:|" * len(keys),
    ]
    for run, m in zip(runs, means):
        cells = [_num(m.get(k), ".4f") for k in keys]
        lines.append(f"| {run.label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "D/loss includes D/reg (its penalty); with the logistic loss a D at "
        "chance has D/loss - D/reg = 2 ln 2 = 1.386, G/loss = ln 2 = 0.693 "
        "and scores near 0 (losses.png). D/r1/<res>: the mean squared norm "
        "of R1's gradient with respect to D's input at that scale (the full "
        "resolution's through every coarser one; r1_scales.png).",
        "",
    ]
    return lines


# --------------------------------------------------------------------------
# Figures


def _figure(w, h):
    """A Matplotlib figure on the Agg canvas: no display, no pyplot state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save_figure(fig, path):
    fig.tight_layout()
    with atomic_write(path) as f:
        fig.savefig(f, format="png")


def plot_metric(path, runs, metric, x_of, xlabel):
    """One curve per run of the metric against x_of(run, kimg)."""
    fig = _figure(7, 4.5)
    ax = fig.add_subplot()
    values = []
    for run in runs:
        xs = [x_of(run, k) for k, _ in run.points]
        ys = [v for _, v in run.points]
        values += ys
        ax.plot(xs, ys, marker="o", markersize=3, label=run.label)
    # FID falls by orders of magnitude early on; a log axis keeps the end
    # of training, where runs differ, readable.
    if min(values) > 0 and max(values) / min(values) > 10:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} (lower is better)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    _save_figure(fig, path)


def stat_series(run, prefix):
    """{name: ([kimg], [value])} of the run's statistics named `prefix...`,
    from the ticks that logged them."""
    series = {}
    for row in run.rows:
        for key, value in row.items():
            if key.startswith(prefix) and isinstance(value, (int, float)):
                xs, ys = series.setdefault(key, ([], []))
                xs.append(float(row["Progress/kimg"]))
                ys.append(float(value))
    return series


def _scale_of(key, prefix):
    """The resolution of a statistic named `<prefix><res>x<res>`."""
    return int(key[len(prefix) :].split("x")[0])


def scale_series(run, prefix):
    """{res: ([kimg], [value])} from the run's `<prefix><res>x<res>`."""
    series = {
        _scale_of(key, prefix): xy
        for key, xy in stat_series(run, prefix).items()
    }
    return dict(sorted(series.items()))


def plot_scales(path, runs, prefix, ylabel, log=False):
    """One subplot per run with `prefix` statistics, one line per scale.

    Returns the number of runs plotted (0: nothing written).
    """
    data = [(run, scale_series(run, prefix)) for run in runs]
    data = [(run, s) for run, s in data if s]
    if not data:
        return 0
    cols = min(len(data), 3)
    rows = math.ceil(len(data) / cols)
    fig = _figure(5 * cols, 3.6 * rows)
    first = None
    for i, (run, series) in enumerate(data):
        ax = fig.add_subplot(rows, cols, i + 1, sharey=first)
        first = first or ax
        for res, (xs, ys) in series.items():
            ax.plot(xs, ys, marker="o", markersize=2, label=f"{res}x{res}")
        if log:
            ax.set_yscale("log")
        ax.set_title(run.label)
        ax.set_xlabel("kimg")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    _save_figure(fig, path)
    return len(data)


def plot_losses(path, runs):
    """The adversarial game, one panel per statistic (`LOSS_PANELS`), one
    colour per run: whether D wins (scores apart, losses away from chance)
    tells two runs' training apart before their FIDs do.

    Returns the number of panels drawn (0: nothing written).
    """
    series = [stat_series(run, "Loss/") for run in runs]
    panels = [
        (title, keys)
        for title, keys in LOSS_PANELS
        if any(key in s for s in series for key in keys)
    ]
    if not panels:
        return 0
    logistic = all(run.cfg.loss == "logistic" for run in runs)
    cols = min(len(panels), 2)
    fig = _figure(6 * cols, 3.6 * math.ceil(len(panels) / cols))
    for p, (title, keys) in enumerate(panels):
        ax = fig.add_subplot(math.ceil(len(panels) / cols), cols, p + 1)
        for i, (run, s) in enumerate(zip(runs, series)):
            for key, style in zip(keys, ("-", "--")):
                if key in s:
                    label = run.label if style == "-" else None
                    ax.plot(*s[key], style, color=f"C{i}", lw=1, label=label)
        chance = {"Loss/G/loss": math.log(2), "Loss/scores/real": 0.0}
        if logistic and keys[0] in chance:
            ax.axhline(chance[keys[0]], color="0.5", ls=":", lw=1)
        ax.set_title(title)
        ax.set_xlabel("kimg")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    _save_figure(fig, path)
    return len(panels)


def loss_means(run):
    """{statistic: mean} of the run's `Loss/*` over the ticks in the last
    quarter of its kimg (where its game has settled)."""
    start = 0.75 * run.last_kimg
    means = {}
    for key, (xs, ys) in stat_series(run, "Loss/").items():
        tail = [y for x, y in zip(xs, ys) if x >= start]
        if tail:
            means[key] = statistics.fmean(tail)
    return means


# --------------------------------------------------------------------------
# samples.png


def _font():
    from PIL import ImageFont

    return ImageFont.load_default()


def label_margin(labels):
    """Width in pixels of the label column of samples.png."""
    from PIL import Image, ImageDraw

    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    font = _font()
    width = max(draw.textlength(label, font=font) for label in labels)
    return int(math.ceil(width)) + 2 * LABEL_PAD


def sample_rows(runs, seeds, trunc, batch):
    """[(label, uint8 [N, R, R, 3])] of each run's latest Gs, same seeds.

    Runs without any snapshot get no row (with a note).
    """
    from dnnlib.images import to_uint8
    from msg_stylegan import inference

    rows = []
    for run in runs:
        path = run_network(run)
        if path is None:
            print(f"note: '{run.path}' has no snapshot; no row in samples")
            continue
        G, _ = inference.load_network(path)
        imgs = [
            scales[-1]
            for _, scales in inference.iter_images(
                G, seeds, truncation_psi=trunc, noise_mode="const", batch=batch
            )
        ]
        imgs = to_uint8(np.concatenate(imgs))
        if imgs.shape[-1] == 1:
            imgs = np.repeat(imgs, 3, axis=-1)
        rows.append((run.label, imgs))
    return rows


def samples_image(rows):
    """One RGB image: label column, then a row of images per run.

    Every run is nearest-upsampled to the largest resolution, so the size
    is (margin + cols * R) x (rows * R).
    """
    from PIL import Image, ImageDraw

    from dnnlib.images import upsample

    size = max(imgs.shape[1] for _, imgs in rows)
    margin = label_margin([label for label, _ in rows])
    strips = [
        np.concatenate(list(upsample(imgs, size)), axis=1) for _, imgs in rows
    ]
    canvas = np.zeros((len(rows) * size, margin + strips[0].shape[1], 3))
    for i, strip in enumerate(strips):
        canvas[i * size : (i + 1) * size, margin:] = strip
    img = Image.fromarray(canvas.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    font = _font()
    for i, (label, _) in enumerate(rows):
        # Centre by the text's box, not an anchor: bitmap fonts (Pillow
        # without FreeType) support no anchors.
        top, bottom = draw.textbbox((0, 0), label, font=font)[1::2]
        y = i * size + (size - top - bottom) // 2
        draw.text((LABEL_PAD, y), label, fill="white", font=font)
    return img


def write_samples(path, runs, seeds, trunc, batch):
    rows = sample_rows(runs, seeds, trunc, batch)
    if not rows:
        return 0
    from dnnlib.images import write_png

    write_png(path, np.asarray(samples_image(rows)))
    return len(rows)


# --------------------------------------------------------------------------


def make_outdir(path):
    """Create the output folder, or fail with a one-line reason."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create outdir '{path}': {e.strerror}")
    if not os.access(path, os.W_OK):
        raise UserError(f"outdir '{path}' is not writable")


def main(argv=None):
    args = check_args(build_parser().parse_args(argv))
    quiet_framework_logs(args.verbose)
    runs = [read_run(path) for path in args.runs]
    metric = choose_metric(runs, args.metric)
    for run, label in zip(runs, run_labels(runs)):
        run.label = label
        run.points = read_metric(run, metric)
    if len({run.resize for run in runs}) > 1:
        modes = ", ".join(f"'{run.path}' {run.resize}" for run in runs)
        raise UserError(
            f"the runs' {metric} values were made with different "
            f"--fid-resize modes ({modes}); recompute them in one mode"
        )
    make_outdir(args.outdir)

    def out(name):
        return os.path.join(args.outdir, name)

    written = []

    plot_metric(out("fid_vs_kimg.png"), runs, metric, lambda r, k: k, "kimg")
    plot_metric(
        out("fid_vs_time.png"),
        runs,
        metric,
        lambda r, k: training_hours(r.rows, k),
        "training time (hours)",
    )
    written += ["fid_vs_kimg.png", "fid_vs_time.png"]
    if plot_losses(out("losses.png"), runs):
        written.append("losses.png")
    for name, prefix, ylabel, log in SCALE_PLOTS:
        if plot_scales(out(name), runs, prefix, ylabel, log):
            written.append(name)
        else:
            print(f"note: no run logged {prefix}*; no {name}")

    # The framework loads only now, so --help and input errors are instant.
    summaries = [summarize(run) for run in runs]
    params = [count_network_params(run.cfg) for run in runs]
    with atomic_write(out("comparison.md"), "w") as f:
        f.write(comparison_table(runs, summaries, params, metric))
    written.append("comparison.md")
    if write_samples(
        out("samples.png"), runs, args.seeds, args.trunc, args.batch
    ):
        written.append("samples.png")
    print(
        f"Compared {len(runs)} runs on {metric}: wrote "
        f"{', '.join(written)} to '{args.outdir}'"
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
