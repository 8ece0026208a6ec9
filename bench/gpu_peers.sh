#!/usr/bin/env bash
# This project's speed beside its peers', on the lent H200, in one bounded
# device call: every figure that is compared was measured in the same run.
#
# The device call, after `bash bench/prepare_peers.sh` here (it exports the
# peers and their timing scripts into the git-ignored .peers/ and puts the
# Keras wheels the machine lacks into .whl/; 4.4 MB together):
#   command:  bash bench/gpu_peers.sh
#   carry:    [".whl", ".peers"]
#   timeout:  600 (the script stops by DEADLINE_S, default 570 s)
# Then, here:  python bench/peers_table.py table <files_at>/peers.jsonl
#
# Cases, in this order (one process each, each under its cap CAP_<kind>,
# all before DEADLINE_S), so that a slow compile at a high resolution still
# leaves paired figures at the lower ones:
#   for res in 64 128 256:
#     ours-bf16-<res>    bench/train_bench.py --backend=jax, bf16 (mixed)
#     ours-tf32-<res>    the same in fp32 at JAX's default matmul precision,
#                        which lets the GPU use TF32
#     sg2ada-fp16-<res>  stylegan2-ada-pytorch's training step through
#                        peer_step_bench.py: its --cfg=auto settings, fp16
#                        in the 4 highest resolutions, as it ships
#     sg2ada-fp32-<res>  the same with --fp32 (no fp16 layers); TF32 on
#                        (PEER_TF32=1, default) to pair with ours-tf32;
#                        PEER_TF32=0 gives true fp32, as its loop ships
#   inception            bench/inception_bench.py (initial weights: the
#                        87 MB weights do not fit a call) and, where
#                        installed with their weights, pytorch-fid and
#                        torch-fidelity through bench/peer_inception_bench.py
# All at batch 32 (BATCH), full-size networks, warm-up (compilation, cuDNN
# tuning, plugin builds) excluded and reported as warmup_s, medians of
# timed blocks. Compiling our step took ~45-80 s at 64 and 128 on an H200
# and over 100 s at 256, so the 256 cases and Inception may not fit a
# call: CASES picks and orders cases (e.g. CASES="ours-bf16-256
# sg2ada-fp16-256" for a second call). A peer absent from PEERS_DIR
# (default .peers) is skipped with a logged line.
#
# $OUT gets: peers.jsonl (one row per case, see bench/peers_table.py:
# who, res, precision, mode, img_per_s, sec_per_kimg, tflops, warmup_s, and
# the timing script's own row), table.md (the ratios), log.txt (every
# case's stderr: phase times, plugin builds) and gpu.txt (device, versions).
#
# Dry run on a CPU (tiny networks at 16 and 32 px, batch 8; the peer's
# --fp32 case on the CPU, full size, if PEERS_DIR holds it and PEER_PYTHON
# imports torch; its fp16 case is skipped there):
#   TINY=1 OUT=/tmp/gpu_peers bash bench/gpu_peers.sh
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
PY=${PYTHON:-python3}
PEER_PY=${PEER_PYTHON:-$PY}
OUT=${OUT:-/tmp/gpu_peers_out}
PEERS_DIR=${PEERS_DIR:-.peers}
WHEEL_DIR=${WHEEL_DIR:-.whl}
mkdir -p "$OUT"
START=$SECONDS
RUN_ID=$(date -u +%Y-%m-%dT%H:%M:%SZ)
DEADLINE_S=${DEADLINE_S:-570}
RES=${RES:-64 128 256}
BATCH=${BATCH:-32}
PEER_TF32=${PEER_TF32:-1}
CHANNELS=full DEVICE=cuda
OURS_STEPS=(--warmup=2 --blocks=3 --steps=4 --max-seconds=10)
PEER_STEPS=(--blocks=5)
INC_ARGS=(--batch=50 --batches=8)
if [ -n "${TINY:-}" ]; then
  # A shared CPU can take minutes for one tiny case: caps are generous.
  RES=${TINY_RES:-16 32} BATCH=8 CHANNELS=tiny DEVICE=cpu
  DEADLINE_S=${TINY_DEADLINE_S:-3000}
  CAP_ours=${CAP_ours:-900} CAP_ours_256=${CAP_ours_256:-900}
  CAP_peer=${CAP_peer:-900} CAP_inception=${CAP_inception:-900}
  OURS_STEPS=(--warmup=1 --blocks=1 --steps=1 --max-seconds=1)
  PEER_STEPS=(--warmup=1 --blocks=1 --block-iters=1)
  INC_ARGS=(--batch=4 --batches=1)
fi
CAP_ours=${CAP_ours:-150}        # per case at 64 and 128
CAP_ours_256=${CAP_ours_256:-260}
CAP_peer=${CAP_peer:-150}        # the first one builds the CUDA plugins
CAP_inception=${CAP_inception:-120}
if [ -z "${CASES:-}" ]; then
  CASES=
  for r in $RES; do
    CASES="$CASES ours-bf16-$r ours-tf32-$r sg2ada-fp16-$r sg2ada-fp32-$r"
  done
  CASES="$CASES inception"
fi
PEER_MODE=tf32
[ "$PEER_TF32" = 0 ] && PEER_MODE=fp32

log() { echo "[$((SECONDS - START))s] $*" | tee -a "$OUT/log.txt"; }

# Keras (and what it needs) from the carried wheels, where it is missing.
PEER_PYTHONPATH=${PYTHONPATH:-}
export KERAS_BACKEND=jax
if ! "$PY" -c "import keras" >/dev/null 2>&1; then
  if ! ls "$WHEEL_DIR"/*.whl >/dev/null 2>&1; then
    log "error: Keras is missing and $WHEEL_DIR holds no wheels; carry .whl"
    exit 1
  fi
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target /tmp/site "$WHEEL_DIR"/*.whl || exit 1
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$ROOT:${PYTHONPATH:-} PYTHONUNBUFFERED=1
export TORCH_EXTENSIONS_DIR=${TORCH_EXTENSIONS_DIR:-/tmp/torch_extensions}
{
  echo "run $RUN_ID"
  nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv 2>&1
  "$PY" -c "import jax; print('jax', jax.__version__, jax.devices())" 2>&1
  "$PEER_PY" -c "import torch; print('torch', torch.__version__,
    torch.version.cuda)" 2>&1 | tail -1
  command -v nvcc >/dev/null && nvcc --version | tail -1
} >"$OUT/gpu.txt"

# The seconds a case may run: its cap, or what the deadline leaves.
limit_for() {
  local cap=$1 left=$((DEADLINE_S - (SECONDS - START) - 10))
  echo $((cap < left ? cap : left))
}

# tag CASE WHO PRECISION MODE [peers_table.py tag flags]: stdin's JSON
# lines -> rows of peers.jsonl.
tag() {
  local name=$1 who=$2 prec=$3 mode=$4
  shift 4
  "$PY" bench/peers_table.py tag --run="$RUN_ID" --case="$name" \
    --who="$who" --precision="$prec" --mode="$mode" "$@" \
    >>"$OUT/peers.jsonl"
}

ours() {  # ours LIMIT RES PRECISION
  timeout "$1" "$PY" bench/train_bench.py --backend=jax --res="$2" \
    --precision="$3" --batch="$BATCH" --channels="$CHANNELS" \
    "${OURS_STEPS[@]}" 2>>"$OUT/log.txt" >"$OUT/case.out"
}

sg2ada() {  # sg2ada LIMIT RES FP32(0/1)
  local extra=()
  if [ "$3" = 1 ]; then
    extra=(--fp32 --tf32="$PEER_TF32")
  fi
  PYTHONPATH=$PEER_PYTHONPATH timeout "$1" "$PEER_PY" \
    "$PEERS_DIR/perf/peer_step_bench.py" --peers="$PEERS_DIR" \
    --peer=sg2ada --res "$2" --batch="$BATCH" --device="$DEVICE" \
    "${PEER_STEPS[@]}" "${extra[@]}" --out="$OUT/case.out" \
    >>"$OUT/log.txt" 2>&1
}

# inception LIMIT: ours, then each peer package that is there.
inception() {
  local res=${RES%% *} rc
  timeout "$1" "$PY" bench/inception_bench.py --random-weights \
    --res="$res" "${INC_ARGS[@]}" 2>>"$OUT/log.txt" >"$OUT/case.out"
  rc=$?
  tag inception "$OURS_NAME" fp32 tf32 --what=inception --res="$res" \
    --error="rc=$rc" <"$OUT/case.out"
  for peer in pytorch-fid torch-fidelity; do
    local limit
    limit=$(limit_for "$1")
    if [ "$limit" -lt 30 ]; then
      log "== inception $peer skipped: ${limit}s left before the deadline"
      continue
    fi
    PYTHONPATH=$PEER_PYTHONPATH timeout "$limit" "$PEER_PY" \
      bench/peer_inception_bench.py --peer="$peer" --res="$res" \
      --device="$DEVICE" "${INC_ARGS[@]}" >"$OUT/case.out" \
      2>"$OUT/case.err"
    rc=$?
    cat "$OUT/case.err" >>"$OUT/log.txt"
    if [ "$rc" = 3 ]; then
      log "== inception $peer $(tail -1 "$OUT/case.err")"
      continue
    fi
    log "== inception $peer rc=$rc"
    tag "inception-$peer" "$peer" fp32 tf32 --what=inception \
      --res="$res" --error="rc=$rc" <"$OUT/case.out"
  done
  return 0
}

OURS_NAME=msg-stylegan
SG2ADA=stylegan2-ada-pytorch
for name in $CASES; do
  kind=${name%%-*} res=${name##*-}
  if [ "$kind" = sg2ada ]; then
    if [ ! -f "$PEERS_DIR/$SG2ADA/training/networks.py" ] ||
      [ ! -f "$PEERS_DIR/perf/peer_step_bench.py" ]; then
      log "== $name skipped: no $SG2ADA or perf/peer_step_bench.py in" \
        "PEERS_DIR=$PEERS_DIR (bench/prepare_peers.sh fills it)"
      continue
    fi
    if ! "$PEER_PY" -c "import torch" >/dev/null 2>&1; then
      log "== $name skipped: $PEER_PY cannot import torch"
      continue
    fi
    if [ -n "${TINY:-}" ] && [ "${name#sg2ada-fp16}" != "$name" ]; then
      # Its fp16 layers run on a CPU too, where fp16 convolutions crawl
      # (over 13 minutes for one step at 16 px on 2 shared cores).
      log "== $name skipped: TINY runs on the CPU (fp16 convolutions)"
      continue
    fi
  fi
  cap=$CAP_ours
  case $kind in
    ours) [ "$res" -ge 256 ] && cap=$CAP_ours_256 ;;
    sg2ada) cap=$CAP_peer ;;
    inception) cap=$CAP_inception ;;
  esac
  limit=$(limit_for "$cap")
  if [ "$limit" -lt 30 ]; then
    log "== $name skipped: ${limit}s left before the deadline"
    continue
  fi
  log "== $name (limit ${limit}s)"
  t0=$SECONDS
  : >"$OUT/case.out"
  case $name in
    ours-bf16-*) ours "$limit" "$res" bf16 ;;
    ours-tf32-*) ours "$limit" "$res" fp32 ;;
    sg2ada-fp16-*) sg2ada "$limit" "$res" 0 ;;
    sg2ada-fp32-*) sg2ada "$limit" "$res" 1 ;;
    inception) inception "$limit" ;;
    *) log "unknown case '$name'"; false ;;
  esac
  rc=$?
  why="rc=$rc"
  [ "$rc" = 124 ] && why="stopped at its ${limit}s limit"
  more=(--res="$res" --error="$why")
  case $name in
    ours-bf16-*) tag "$name" "$OURS_NAME" bf16 mixed "${more[@]}" ;;
    ours-tf32-*) tag "$name" "$OURS_NAME" fp32 tf32 "${more[@]}" ;;
    sg2ada-fp16-*) tag "$name" "$SG2ADA" fp16 mixed "${more[@]}" ;;
    sg2ada-fp32-*) tag "$name" "$SG2ADA" fp32 "$PEER_MODE" "${more[@]}" ;;
  esac <"$OUT/case.out"
  log "== $name $why ($((SECONDS - t0))s)"
done
rm -f "$OUT/case.out" "$OUT/case.err"
if [ -s "$OUT/peers.jsonl" ]; then
  "$PY" bench/peers_table.py table "$OUT/peers.jsonl" | tee "$OUT/table.md"
fi
grep '^\[' "$OUT/log.txt" | tail -30
