"""The Python steps of bench/gpu_quality.sh: real statistics, FIDs, bundle.

- `stats`: Inception statistics of every real of the dataset (tf1
  resize), into the metrics cache, so the `*_full` metrics later only
  generate fakes.
- `fid`: a `*_full` FID of snapshots both runs reached, at up to
  `--points` kimg values (the largest first, the two runs alternating, so
  a deadline leaves both with the same points), appended to each run's
  `metric-<name>.txt` where compare.py reads them.
- `bundle`: what comes back from the device (at most 8 files of at most
  16 MiB) from the runs, the comparison and the logs, plus one line of
  checks (finite values, plots, both configs named, no TensorFlow).

Every step appends JSON lines to `--summary`. Runs with Keras' JAX
backend and never imports TensorFlow.
"""

import argparse
import glob
import json
import math
import os
import re
import sys
import tarfile
import time

from dnnlib.util import UserError, run_cli

_SNAPSHOT_RE = re.compile(r"^network-snapshot-(\d+)\.pkl$")
OUT_MAX_FILES = 8
OUT_MAX_BYTES = 16 << 20
# Files copied to $OUT as they are; everything else goes into runs.tar.gz.
LOOSE = ("comparison.md", "fid_vs_kimg.png", "samples.png")


def summary_line(path, **row):
    """Append one JSON row to the summary file and echo it."""
    line = json.dumps(row, sort_keys=True)
    print(line, flush=True)
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


def extractor(args):
    from metrics import metric_main

    return metric_main.get_extractor(
        args.inception, batch_size=args.batch, resize="tf1"
    )


def cmd_stats(args):
    from metrics import metric_main

    start = time.time()
    opts = metric_main.MetricOptions(
        G=None,
        data=args.data,
        mirror=False,
        extractor=extractor(args),
        progress=False,
    )
    stats = metric_main.full_real_stats(opts)
    mu, sigma = stats.mean_cov()
    summary_line(
        args.summary,
        phase="stats",
        num_real=stats.num_items,
        resize=stats.origin.resize,
        mu_norm=float((mu**2).sum() ** 0.5),
        trace_sigma=float(sigma.trace()),
        seconds=round(time.time() - start, 1),
    )
    return 0


def run_points(run_dir):
    """{kimg: snapshot path} of a run's evaluable snapshots.

    Tick snapshots and network-final.pkl. A run stopped early (no
    network-final.pkl) ends with the snapshot its stop wrote, at a kimg no
    other run shares (and, within 1 kimg of a tick snapshot, under its
    name), so its highest snapshot is left out.
    """
    import compare

    run = compare.read_run(run_dir)
    points = {}
    for path in glob.glob(os.path.join(glob.escape(run_dir), "*.pkl")):
        m = _SNAPSHOT_RE.match(os.path.basename(path))
        if m:
            points[float(m.group(1))] = path
    final = os.path.join(run_dir, "network-final.pkl")
    if os.path.isfile(final):
        points[run.last_kimg] = final
    elif points:
        points.pop(max(points))
    return points


def choose_points(common, count):
    """Up to `count` kimg values of `common`: the largest, then the ones
    nearest to even fractions of it, largest first."""
    common = sorted(common)
    if not common or count < 1:
        return []
    top = common[-1]
    chosen = [top]
    for j in range(count - 1, 0, -1):
        target = top * j / count
        rest = [k for k in common if k not in chosen]
        if rest:
            chosen.append(min(rest, key=lambda k: (abs(k - target), k)))
    return sorted(set(chosen), reverse=True)


def cmd_fid(args):
    from metrics import metric_main

    start = time.time()
    metric_main.check_metric_names([args.metric])
    per_run = {run: run_points(run) for run in args.runs}
    common = set.intersection(*(set(p) for p in per_run.values()))
    points = choose_points(common, args.points)
    summary_line(
        args.summary,
        phase="fid-plan",
        metric=args.metric,
        common_kimg=sorted(common),
        chosen_kimg=points,
    )
    if not points:
        raise UserError(
            "the runs have no snapshot at a common kimg: "
            + "; ".join(f"{r}: {sorted(p)}" for r, p in per_run.items())
        )
    ext = extractor(args)
    slowest = 0.0
    for kimg in points:
        for run in args.runs:
            left = args.deadline_s - (time.time() - start)
            if left < 1.3 * slowest + 5:
                summary_line(
                    args.summary,
                    phase="fid",
                    run=os.path.basename(run),
                    kimg=kimg,
                    skipped=f"{left:.0f} s left before the deadline",
                )
                continue
            t = time.time()
            result = metric_main.evaluate_snapshot(
                args.metric,
                per_run[run][kimg],
                data=args.data,
                mirror=False,
                run_dir=run,
                inception=ext,
                num=args.num,
                progress=False,
            )
            slowest = max(slowest, time.time() - t)
            summary_line(
                args.summary,
                phase="fid",
                run=os.path.basename(run),
                kimg=kimg,
                metric=args.metric,
                value=result.value,
                num_fake=result.num_fake,
                num_real=result.num_real,
                seconds=round(time.time() - t, 1),
            )
    return 0


def _metric_values(run_dir):
    values = []
    for path in glob.glob(os.path.join(glob.escape(run_dir), "metric-*.txt")):
        with open(path) as f:
            for line in f:
                parts = line.split()
                if parts and parts[-1].startswith("resize="):
                    parts.pop()
                if parts:
                    values.append(float(parts[-1]))
    return values


def checks(runs, compare_dir, modules_dir):
    """The sanity of a finished comparison, as one dict.

    `tensorflow_imported_by` maps each process that imported TensorFlow
    (possible only where it is installed) to the files of this repository
    whose imports led there.
    """
    import compare

    values = [v for run in runs for v in _metric_values(run)]
    records = []
    for path in sorted(glob.glob(os.path.join(modules_dir, "*.json"))):
        with open(path) as f:
            records.append(json.load(f))
    md = os.path.join(compare_dir, "comparison.md")
    text = open(md).read() if os.path.isfile(md) else ""
    names = [compare.read_run(run).cfg.name for run in runs]
    return dict(
        phase="checks",
        fid_values=len(values),
        fid_finite=bool(values) and all(math.isfinite(v) for v in values),
        plots=sorted(
            os.path.basename(p)
            for p in glob.glob(os.path.join(compare_dir, "*.png"))
        ),
        comparison_names_configs=bool(text) and all(n in text for n in names),
        processes_recorded=[r["label"] for r in records],
        tensorflow_imported_by={
            r["label"]: sorted(
                {
                    (a["project"] or "?").rsplit(":", 1)[0]
                    for a in r["tensorflow_import_attempts"]
                }
            )
            for r in records
            if r["tensorflow_imported"]
        },
    )


def _bundle_members(runs, work, keep_fakes):
    """(path, name in the archive) of everything worth bringing back:
    the runs without their snapshots (with the last `keep_fakes` grids of
    each scale folder, None: all), the comparison, module records, logs."""
    members = []
    for run in runs:
        base = os.path.basename(run)
        for dirpath, dirnames, files in os.walk(run):
            dirnames.sort()
            fakes = sorted(f for f in files if f.startswith("fakes"))
            if keep_fakes is not None:
                fakes = fakes[len(fakes) - keep_fakes :] if keep_fakes else []
            for name in sorted(files):
                if name.endswith(".pkl"):
                    continue
                if name.startswith("fakes") and name not in fakes:
                    continue
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, run)
                members.append((path, f"{base}/{rel}"))
    for sub in ("compare", "modules", "logs"):
        folder = os.path.join(work, sub)
        for path in sorted(glob.glob(os.path.join(glob.escape(folder), "*"))):
            if os.path.isfile(path):
                members.append((path, f"{sub}/{os.path.basename(path)}"))
    return members


def cmd_bundle(args):
    import shutil

    out = args.out
    os.makedirs(out, exist_ok=True)
    runs = [r for r in args.runs if os.path.isdir(r)]
    compare_dir = os.path.join(args.work, "compare")
    try:
        row = checks(runs, compare_dir, os.path.join(args.work, "modules"))
    except (UserError, OSError, ValueError) as e:
        row = dict(phase="checks", error=str(e))
    summary_line(args.summary, **row)
    for name in LOOSE:
        src = os.path.join(compare_dir, name)
        if os.path.isfile(src) and os.path.getsize(src) < OUT_MAX_BYTES:
            shutil.copyfile(src, os.path.join(out, name))
    tar_path = os.path.join(out, "runs.tar.gz")
    for keep_fakes in (None, 8, 2, 0):
        with tarfile.open(tar_path, "w:gz") as tar:
            for path, name in _bundle_members(runs, args.work, keep_fakes):
                tar.add(path, arcname=name)
        if os.path.getsize(tar_path) < OUT_MAX_BYTES:
            break
    else:
        os.remove(tar_path)
    files = sorted(os.listdir(out))
    if len(files) > OUT_MAX_FILES:
        print(
            f"warning: {len(files)} files in {out}, only "
            f"{OUT_MAX_FILES} come back",
            file=sys.stderr,
        )
    summary_line(
        args.summary,
        phase="bundle",
        files={f: os.path.getsize(os.path.join(out, f)) for f in files},
    )
    return 0


def build_parser():
    p = argparse.ArgumentParser(
        prog="bench/gpu_quality.py",
        description="Real statistics, FIDs and the bundle of "
        "bench/gpu_quality.sh.",
    )
    p.add_argument(
        "--summary",
        metavar="FILE",
        default=None,
        help="JSON lines file to append to (default: stdout only)",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def fid_options(s):
        s.add_argument("--data", metavar="DIR", required=True)
        s.add_argument("--inception", metavar="NPZ", required=True)
        s.add_argument(
            "--batch",
            metavar="N",
            type=int,
            default=50,
            help="images per Inception pass (default: %(default)s)",
        )

    s = sub.add_parser("stats", help="statistics of every real")
    fid_options(s)
    s = sub.add_parser("fid", help="FID of common snapshots of the runs")
    fid_options(s)
    s.add_argument("--runs", metavar="DIR", nargs="+", required=True)
    s.add_argument("--metric", metavar="NAME", default="fid10k_full")
    s.add_argument(
        "--num",
        metavar="N",
        type=int,
        default=None,
        help="fakes per snapshot instead of the metric's (default: none)",
    )
    s.add_argument("--points", metavar="N", type=int, default=3)
    s.add_argument("--deadline-s", metavar="S", type=float, default=1e9)
    s = sub.add_parser("bundle", help="fill $OUT")
    s.add_argument("--runs", metavar="DIR", nargs="*", default=[])
    s.add_argument("--work", metavar="DIR", required=True)
    s.add_argument("--out", metavar="DIR", required=True)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    return dict(stats=cmd_stats, fid=cmd_fid, bundle=cmd_bundle)[args.command](
        args
    )


if __name__ == "__main__":
    sys.exit(run_cli(main))
