"""Side-by-side speed of this project and its peers: JSON lines to Markdown.

bench/gpu_peers.sh times each case in its own process and pipes what the
case printed through `tag`, which writes one row per case in a common
shape (the timing script's own row kept under "raw"), so one table can set
this project's training step beside stylegan2-ada-pytorch's and its
Inception features beside pytorch-fid's or torch-fidelity's:

  run, case, who, what (train_step | inception), res, batch, precision,
  mode (mixed | tf32 | fp32: what pairs up), img_per_s, sec_per_kimg,
  tflops (null where unknown), warmup_s (compilation, cuDNN tuning and
  plugin builds), case_s, peak_mem_gb, error (a case that gave no figure),
  note (e.g. "reference ops": the peer's CUDA kernels did not build)

`table` prints, per run, the ratio this project / peer of img/s for each
resolution and mode. Ratios are formed only between rows of the same run:
runs of one case on different machines or days differ too much to pair.
Standard library only (no TensorFlow, no torch), so it runs anywhere.

Examples:
  python bench/peers_table.py table out/peers.jsonl
  python bench/train_bench.py --backend=jax --res=64 | python \\
      bench/peers_table.py tag --run=r1 --case=ours-bf16-64 \\
      --who=msg-stylegan --precision=bf16 --mode=mixed >> peers.jsonl
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dnnlib.util import UserError, run_cli  # noqa: E402

OURS = "msg-stylegan"
WHAT = ("train_step", "inception")
MODES = ("mixed", "tf32", "fp32")


def _number(row, *keys):
    for key in keys:
        if isinstance(row.get(key), (int, float)):
            return row[key]
    return None


def _note(raw):
    """What a reader must know beside the figure, or None.

    stylegan2-ada-pytorch builds its CUDA kernels at first use and, when
    that fails, runs slower reference ops: say so next to its figure.
    """
    plugins = raw.get("plugins")
    if isinstance(plugins, dict):
        if not (plugins.get("bias_act") and plugins.get("upfirdn2d")):
            return "reference ops"
    return None


def normalise(raw, args):
    """One row of the common shape from a timing script's own JSON row.

    Knows train_bench's rows (img_per_s, achieved_tflops, warmup_s),
    peer_step_bench's (img_per_s, warmup_s, peak_alloc_gib, error) and the
    Inception scripts' (images_per_s, warmup_s).
    """
    img_s = _number(raw, "img_per_s", "images_per_s")
    peak = _number(raw, "peak_mem_gb")
    if peak is None and _number(raw, "peak_alloc_gib") is not None:
        peak = round(raw["peak_alloc_gib"] * 2**30 / 1e9, 3)
    return dict(
        run=args.run,
        case=args.case,
        who=args.who,
        what=args.what,
        res=raw.get("res", args.res),
        batch=raw.get("batch"),
        precision=args.precision,
        mode=args.mode,
        img_per_s=img_s,
        sec_per_kimg=round(1000.0 / img_s, 3) if img_s else None,
        tflops=_number(raw, "achieved_tflops"),
        warmup_s=_number(raw, "warmup_s"),
        case_s=_number(raw, "case_s", "wall_s"),
        peak_mem_gb=peak,
        error=raw.get("error") if img_s is None else None,
        note=_note(raw),
        raw=raw,
    )


def tag(args, lines, out):
    """Write a common row for each JSON object among `lines`; return count.

    A row may follow `result ` (as peer_step_bench prints it); other
    lines (its `env {...}`, logs) are passed over. With `--error` and no
    row, one row with that error is written, so a case stopped at its cap
    still shows.
    """
    n = 0
    for line in lines:
        text = line.strip().removeprefix("result ").strip()
        if not text.startswith("{"):
            continue
        try:
            raw = json.loads(text)
        except json.JSONDecodeError:
            continue
        if isinstance(raw, dict):
            out.write(json.dumps(normalise(raw, args)) + "\n")
            n += 1
    if n == 0 and args.error:
        out.write(json.dumps(normalise({"error": args.error}, args)) + "\n")
        n = 1
    out.flush()
    return n


def load_rows(path):
    """The rows of a peers.jsonl file; a malformed line is a UserError."""
    rows = []
    with open(path) as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(
                    f"{path} line {i}: not JSON ({e.msg}); remove or fix "
                    "the line (rows come from bench/gpu_peers.sh)"
                )
            missing = [
                k
                for k in ("run", "who", "what", "res", "mode")
                if not isinstance(row, dict) or k not in row
            ]
            if missing:
                raise UserError(
                    f"{path} line {i}: not a peers row (lacks "
                    f"{', '.join(missing)}); make rows with "
                    "`peers_table.py tag`"
                )
            rows.append(row)
    if not rows:
        raise UserError(f"{path} holds no rows; run bench/gpu_peers.sh")
    return rows


def _fmt(x, digits=1):
    return "-" if x is None else f"{x:,.{digits}f}"


def _precision(row):
    if row is None:
        return "-"
    note = row.get("note")
    return row["precision"] + (f" ({note})" if note else "")


def _figure(row):
    """img/s, or why there is none."""
    if row is None:
        return "not run"
    if row.get("img_per_s") is None:
        return "error: " + str(row.get("error") or "no figure")[:60]
    return _fmt(row["img_per_s"])


def ratio(ours, peer):
    """img/s of this project over the peer's, or None."""
    if not ours or not peer:
        return None
    a, b = ours.get("img_per_s"), peer.get("img_per_s")
    return a / b if a and b else None


def tables(rows):
    """Markdown: per run, training steps then Inception features."""
    out = []
    for run in dict.fromkeys(r["run"] for r in rows):
        mine = [r for r in rows if r["run"] == run]
        for what in WHAT:
            part = [r for r in mine if r["what"] == what]
            if not part:
                continue
            peers = sorted({r["who"] for r in part if r["who"] != OURS})
            keys = sorted(
                {(r["res"], r["mode"]) for r in part},
                key=lambda k: (
                    k[0] is None,
                    k[0] or 0,
                    MODES.index(k[1]) if k[1] in MODES else len(MODES),
                ),
            )
            title = "Training step" if what == "train_step" else "Inception"
            batch = sorted({r["batch"] for r in part if r.get("batch")})
            out += [
                f"### {title}, run {run}"
                + (f", batch {'/'.join(map(str, batch))}" if batch else ""),
                "",
                "| res | mode | this project | img/s | warm-up s | peer "
                "| peer's | img/s | warm-up s | this / peer |",
                "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
            ]
            for res, mode in keys:
                here = [r for r in part if (r["res"], r["mode"]) == (res, mode)]
                ours = next((r for r in here if r["who"] == OURS), None)
                for peer in peers or ["(none)"]:
                    theirs = next((r for r in here if r["who"] == peer), None)
                    q = ratio(ours, theirs)
                    out.append(
                        f"| {res} | {mode} "
                        f"| {_precision(ours)} "
                        f"| {_figure(ours)} "
                        f"| {_fmt(ours and ours.get('warmup_s'))} "
                        f"| {peer} "
                        f"| {_precision(theirs)} "
                        f"| {_figure(theirs)} "
                        f"| {_fmt(theirs and theirs.get('warmup_s'))} "
                        f"| {'-' if q is None else f'{q:.2f}'} |"
                    )
            out.append("")
    return "\n".join(out)


def build_parser():
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="\n".join(__doc__.splitlines()[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("table", help="print the Markdown tables")
    t.add_argument("path", metavar="PEERS_JSONL", help="rows from gpu_peers")
    g = sub.add_parser("tag", help="stdin JSON lines -> common rows on stdout")
    g.add_argument("--run", metavar="ID", required=True, help="run id")
    g.add_argument("--case", metavar="NAME", required=True, help="case name")
    g.add_argument("--who", metavar="NAME", required=True, help="code base")
    g.add_argument(
        "--what",
        metavar="KIND",
        choices=WHAT,
        default="train_step",
        help="%(choices)s (default: %(default)s)",
    )
    g.add_argument(
        "--res", metavar="R", type=int, help="resolution, if rows lack it"
    )
    g.add_argument(
        "--precision", metavar="P", required=True, help="bf16, fp16, fp32"
    )
    g.add_argument(
        "--mode",
        metavar="MODE",
        choices=MODES,
        required=True,
        help="what pairs up: %(choices)s",
    )
    g.add_argument(
        "--error",
        metavar="TEXT",
        help="row to write when stdin held none (default: none)",
    )
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.command == "tag":
        tag(args, sys.stdin, sys.stdout)
        return 0
    print(tables(load_rows(args.path)))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
