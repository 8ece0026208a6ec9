"""A/B speed of the training step: two checkouts, taking turns, one ratio.

On a shared machine (hypervisor steal, a training run beside) two runs of
bench/train_bench.py one after the other differ by more than most changes
do, so "before" and "after" timed apart say little. This runs one
train_bench worker per checkout at the same time (A, e.g. the commit
before a change, and B, e.g. after it), each with its step compiled, and
lets them take turns: round k times one block of A then one of B (k even)
or B then A (k odd), so a change in the machine's speed hits both alike.
Per round, B's speed relative to A's is time_A / time_B; the figure is
the median over rounds with the quartiles, and how many rounds B won.
Process CPU time per step is compared the same way (steal and waiting on
the other process do not count in it).

Turns cancel the machine's drift, not what differs between two processes
of one checkout (where their threads and memory landed): on a 2-core VM
the median of an A/A run (one checkout on both sides) ranged 0.98-1.01 and
repeats of one A/B moved by up to 4%, more than the quartiles within a
run suggest. `--pairs=N` starts N fresh pairs of workers, one after the
other, and reports each pair's median too: a difference is resolved when
the pairs agree on its side of 1.

One JSON line on stdout (and appended to --out); a line per round on
stderr. Everything after the options goes to both workers, e.g.:

  python bench/ab_bench.py --a=../before --b=. --rounds=12 -- \\
      --backend=jax --res=32 --batch=16 --channels=reduced
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


class WorkerError(Exception):
    pass


def build_parser():
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="\n".join(__doc__.splitlines()[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--a", metavar="DIR", required=True, help="checkout A")
    p.add_argument("--b", metavar="DIR", required=True, help="checkout B")
    p.add_argument(
        "--rounds",
        metavar="N",
        type=int,
        default=10,
        help="rounds of one block each (default: %(default)s)",
    )
    p.add_argument(
        "--pairs",
        metavar="N",
        type=int,
        default=1,
        help="fresh pairs of workers, one after the other, each timing "
        "--rounds rounds (default: %(default)s)",
    )
    p.add_argument(
        "--out",
        metavar="FILE",
        help="append the JSON line to FILE too (default: stdout only)",
    )
    p.add_argument(
        "bench_args",
        nargs="*",
        metavar="-- TRAIN_BENCH_ARGS",
        help="one case of bench/train_bench.py (--backend, --res, --batch, "
        "--channels, --precision, --xla, --steps, --warmup)",
    )
    return p


def commit(root):
    """Short commit of a checkout, '+' when its tracked files differ."""

    def git(*cmd):
        r = subprocess.run(
            ["git", "-C", root, *cmd], capture_output=True, text=True
        )
        return r.returncode, r.stdout.strip()

    rc, head = git("rev-parse", "--short", "HEAD")
    if rc:
        return "unknown"
    rc, _ = git("diff", "--quiet", "HEAD")
    return head + ("+" if rc else "")


class Worker:
    """One train_bench process in turns mode; its stderr goes to a file."""

    def __init__(self, name, root, bench_args):
        self.name, self.root = name, root
        self.log = tempfile.TemporaryFile(mode="w+")
        cmd = [sys.executable, os.path.join(HERE, "train_bench.py")]
        cmd += [f"--root={root}", "--turns", *bench_args]
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )

    def read(self, turn):
        """The next protocol line of kind `turn` (other lines are skipped)."""
        for line in self.proc.stdout:
            if line.startswith("{"):
                row = json.loads(line)
                if row.get("turn") == turn:
                    return row
        self.proc.wait()
        self.log.seek(0)
        tail = [x for x in self.log.read().splitlines() if x.strip()][-1:]
        why = tail[0] if tail else f"exit status {self.proc.returncode}"
        raise WorkerError(f"worker {self.name} ({self.root}) failed: {why}")

    def block(self):
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        return self.read("block")

    def finish(self):
        """Stop the worker; its train_bench row (img/s, FLOPs) or None."""
        try:
            self.proc.stdin.write("stop\n")
            self.proc.stdin.close()
            for line in self.proc.stdout:
                if line.startswith("{") and "train_step" in line:
                    return json.loads(line)
        except (BrokenPipeError, ValueError):
            pass
        finally:
            self.proc.wait()
        return None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def quartiles(xs):
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return round(q[0], 4), round(statistics.median(xs), 4), round(q[2], 4)


def _check_roots(args):
    for root in (args.a, args.b):
        if not os.path.isfile(os.path.join(root, "config.py")):
            raise WorkerError(
                f"{root!r} is not a checkout of this project (no config.py)"
            )


def _pair(args, t0, label):
    """One pair of workers taking `args.rounds` turns: the per-round wall
    and CPU speed ratios (B over A) and both workers' final rows."""
    workers = {
        "a": Worker("a", os.path.abspath(args.a), args.bench_args),
        "b": Worker("b", os.path.abspath(args.b), args.bench_args),
    }
    try:
        for w in workers.values():  # both compile at once
            w.read("ready")
        print(
            f"[{time.perf_counter() - t0:6.1f}s] {label}both compiled",
            file=sys.stderr,
        )
        wall, cpu = [], []
        for k in range(args.rounds):
            order = "ab" if k % 2 == 0 else "ba"
            row = {name: workers[name].block() for name in order}
            wall.append(row["a"]["sec_per_step"] / row["b"]["sec_per_step"])
            cpu.append(row["a"]["cpu_per_step"] / row["b"]["cpu_per_step"])
            print(
                f"[{time.perf_counter() - t0:6.1f}s] {label}round {k + 1}/"
                f"{args.rounds} {order}: a {row['a']['sec_per_step']:.4f} "
                f"b {row['b']['sec_per_step']:.4f} s/step, b/a speed "
                f"{wall[-1]:.3f} (cpu {cpu[-1]:.3f})",
                file=sys.stderr,
            )
        rows = {name: w.finish() for name, w in workers.items()}
    finally:
        for w in workers.values():
            w.kill()
    return wall, cpu, rows


def run(args):
    _check_roots(args)
    t0 = time.perf_counter()
    wall, cpu, medians, img_per_s = [], [], [], {"a": [], "b": []}
    for n in range(args.pairs):
        label = f"pair {n + 1}/{args.pairs} " if args.pairs > 1 else ""
        w, c, rows = _pair(args, t0, label)
        wall += w
        cpu += c
        medians.append(round(statistics.median(w), 4))
        for name, row in rows.items():
            if row and row.get("img_per_s") is not None:
                img_per_s[name].append(row["img_per_s"])
        if args.pairs > 1:
            print(
                f"[{time.perf_counter() - t0:6.1f}s] {label}median b/a "
                f"speed {medians[-1]:.3f}",
                file=sys.stderr,
            )
    case = rows["b"] or rows["a"] or {}

    def mean(xs):
        return round(statistics.fmean(xs), 3) if xs else None

    return dict(
        what="ab_train_step",
        a=commit(args.a),
        b=commit(args.b),
        **{k: case.get(k) for k in ("backend", "res", "batch", "channels")},
        **{k: case.get(k) for k in ("precision", "xla", "steps_per_block")},
        rounds=args.rounds,
        pairs=args.pairs,
        a_img_per_s=mean(img_per_s["a"]),
        b_img_per_s=mean(img_per_s["b"]),
        b_over_a_speed=quartiles(wall),
        b_over_a_cpu_speed=quartiles(cpu),
        b_faster_rounds=sum(r > 1 for r in wall),
        pair_medians=medians,
        b_faster_pairs=sum(m > 1 for m in medians),
        seconds=round(time.perf_counter() - t0, 1),
    )


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.rounds < 2:
        parser.error("--rounds must be at least 2")
    if args.pairs < 1:
        parser.error("--pairs must be at least 1")
    try:
        result = run(args)
    except WorkerError as e:
        print(f"ab_bench: {e}", file=sys.stderr)
        return 1
    line = json.dumps(result)
    print(line, flush=True)
    if args.out:
        with open(args.out, "a") as f:
            f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
