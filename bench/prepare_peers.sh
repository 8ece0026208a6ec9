#!/usr/bin/env bash
# Fill the git-ignored peers folder that bench/gpu_peers.sh reads and
# carries to the device machine (it sends the working tree, not ../shared).
#
# The peers' code is licensed for non-commercial research and must never be
# committed here: this script only exports it into PEERS_DIR (default
# .peers/, ignored by .gitignore), next to copies of the timing scripts:
#
#   PEERS_DIR/stylegan2-ada-pytorch/   exported from a git snapshot
#   PEERS_DIR/perf/*.py                copies of PERF_DIR/*.py
#
# Get the snapshot first with the search tool (no shell command):
#   fetch github:NVlabs/stylegan2-ada-pytorch
# which answers with a bare git directory under /work/.mirror; pass it as
# SG2ADA_GIT when it is elsewhere. A peer whose snapshot is missing is left
# out with a logged line (gpu_peers.sh then skips it).
#
# peer_step_bench.py builds stylegan2-ada-pytorch with its mixed precision
# as shipped (fp16 in the 4 highest resolutions, conv_clamp 256) and has no
# switch for fp32. When the copy lacks one, this script adds `--fp32` to
# the copy (num_fp16_res 0 and conv_clamp None, as the peer's own
# train.py --fp32 does), and fails if the code it edits has changed.
#
# The device machine has JAX but no Keras: when WHEEL_DIR (default .whl/,
# ignored) holds no Keras wheel, this script downloads the wheels the call
# installs there (Keras and the two needs the machine lacks), as
# bench/gpu_run.sh and bench/gpu_quality.sh use them.
#
# Usage:   bash bench/prepare_peers.sh
#          PEERS_DIR=/tmp/peers SG2ADA_GIT=/path/repo bash bench/prepare_peers.sh
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
PEERS_DIR=${PEERS_DIR:-.peers}
PERF_DIR=${PERF_DIR:-$ROOT/../shared/perf}
SG2ADA_GIT=${SG2ADA_GIT:-/work/.mirror/NVlabs+stylegan2-ada-pytorch/repo}

if ! ls "$PERF_DIR"/peer_step_bench.py >/dev/null 2>&1; then
  echo "error: no peer_step_bench.py in PERF_DIR=$PERF_DIR; set PERF_DIR" >&2
  exit 2
fi
mkdir -p "$PEERS_DIR/perf"
cp "$PERF_DIR"/*.py "$PEERS_DIR/perf/" || exit 1

python3 - "$PEERS_DIR/perf/peer_step_bench.py" <<'EOF' || exit 1
import sys

path = sys.argv[1]
src = open(path).read()
if "'--fp32'" not in src:
    old = "num_fp16_res=4, conv_clamp=256"
    new = ("num_fp16_res=0 if args.fp32 else 4, "
           "conv_clamp=None if args.fp32 else 256")
    flag_after = "    ap.add_argument('--aug',"
    flag = ("    ap.add_argument('--fp32', action='store_true', help='sg2ada: "
            "no fp16 layers, no conv_clamp (its train.py --fp32)')\n")
    if src.count(old) != 3 or src.count(flag_after) != 1:
        sys.exit(f"error: {path} changed: cannot add --fp32; add the flag "
                 "to its source or update bench/prepare_peers.sh")
    src = src.replace(old, new).replace(flag_after, flag + flag_after)
    open(path, "w").write(src)
    print(f"added --fp32 to {path}")
EOF

dest=$PEERS_DIR/stylegan2-ada-pytorch
if git --git-dir="$SG2ADA_GIT" rev-parse -q --verify HEAD >/dev/null 2>&1; then
  rm -rf "$dest" && mkdir -p "$dest"
  git --git-dir="$SG2ADA_GIT" archive HEAD | tar -x -C "$dest" || exit 1
  echo "exported stylegan2-ada-pytorch $(git --git-dir="$SG2ADA_GIT" \
    rev-parse --short HEAD) to $dest"
else
  echo "stylegan2-ada-pytorch skipped: no git snapshot at SG2ADA_GIT=" \
    "$SG2ADA_GIT (fetch github:NVlabs/stylegan2-ada-pytorch)"
fi

WHEEL_DIR=${WHEEL_DIR:-.whl}
if ! ls "$WHEEL_DIR"/keras-*.whl >/dev/null 2>&1; then
  python3 -m pip download -q --no-deps --only-binary=:all: \
    --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -d "$WHEEL_DIR" \
    keras==3.15.1 namex==0.1.0 optree==0.20.0 || exit 1
fi
du -sh "$PEERS_DIR" "$WHEEL_DIR"
