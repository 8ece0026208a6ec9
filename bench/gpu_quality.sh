#!/usr/bin/env bash
# MSG-StyleGAN against StyleGAN (no progressive growing) on CIFAR-10 on the
# lent H200, in one bounded device call after staging its inputs.
#
# The device machine has PyTorch and JAX but no TensorFlow or Keras, and a
# call carries at most 64 MiB (working tree included), less than the inputs
# (the CIFAR-10 JPEG zip, 62 MB, and the FID Inception weights, 87 MB). So:
#
#   1. Here, once:   STAGE=split bash bench/gpu_quality.sh
#      checks both inputs against their READMEs' sha256, downloads the
#      wheels the device lacks (keras, namex, optree, crc32c) into .whl/,
#      and cuts the inputs into chunks under .carry/<k>/ (git-ignored),
#      printing the device calls. With the current tree they are two:
#   2. device run, command "STAGE=only bash bench/gpu_quality.sh",
#      carry [".carry/1"]: checks chunk 1's sha256 and keeps it in .stage/
#      (ignored, so it stays while the machine is warm); a few seconds.
#   3. device run at once (the machine goes back 30 s after a call),
#      command "bash bench/gpu_quality.sh" (DEADLINE_S=... first if less
#      than 600 s of device time is left: status's budget_left_s minus
#      the start), carry [".carry/2", ".whl"]: stages the last chunk,
#      restores and checks the inputs, and runs the comparison.
#   A missing chunk (a fresh machine) is a one-line error naming the call
#   that carries it; then run the calls again from the first.
#
# The run (KERAS_BACKEND=jax; TensorFlow is never imported: every Python
# process runs under bench/record_modules.py, which records its modules):
#   data     the 50,000 training images into TFRecords (dataset_tool)
#   stats    Inception statistics of all 50,000 reals, tf1 resize, cached
#   train    msg-stylegan-cifar10 and stylegan-noprog-cifar10, full size,
#            --mixed-precision=bf16, up to KIMG each, a snapshot every
#            SNAP_KIMG; TRAIN_MODE=parallel (default) trains both at once
#            on the GPU (their compiles overlap, and stats runs meanwhile),
#            sequential one after the other with equal time caps. Both
#            stop (SIGTERM, with a snapshot) at the training deadline.
#   fid      fid10k_full (10k fakes against the 50k reals' statistics) of
#            up to FID_POINTS snapshot kimg both runs reached, largest first
#   compare  compare.py on the two runs: plots, comparison.md, samples
#   bundle   $OUT: summary.jsonl (a JSON line per phase with its seconds,
#            each FID, and the checks), log.txt, comparison.md,
#            fid_vs_kimg.png, samples.png, runs.tar.gz (stats.jsonl,
#            config, logs, grids, metric files, the comparison, module
#            records, gpu.txt). Snapshots (hundreds of MB) stay behind.
# Each phase has a cap and all end before DEADLINE_S (default 570 s, inside
# the device tool's 600 s), so a slow compile still returns what was done.
#
# Dry run on a CPU (tiny networks, 128 images, 2 kimg, 32 fakes per FID;
# the real inputs and Inception weights; ~22 min on the shared 2-core CPU):
#   TINY=1 OUT=/tmp/gq CARRY_DIR=/tmp/gq_carry STAGE_DIR=/tmp/gq_stage \
#     bash -c 'STAGE=split bash bench/gpu_quality.sh &&
#              STAGE=only bash bench/gpu_quality.sh && bash bench/gpu_quality.sh'
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
PY=${PYTHON:-python3}
OUT=${OUT:-/tmp/gpu_quality_out}
CARRY_DIR=${CARRY_DIR:-.carry}
STAGE_DIR=${STAGE_DIR:-.stage}
WHEEL_DIR=${WHEEL_DIR:-.whl}
SHARED=${SHARED:-$ROOT/../shared/data}
CIFAR_ZIP=${CIFAR_ZIP:-$SHARED/cifar10-jpeg/cifar10_jpeg.zip}
INCEPTION_NPZ=${INCEPTION_NPZ:-$SHARED/fid-inception-2015-12-05/fid_inception_2015_12_05.npz}
START=$SECONDS
mkdir -p "$OUT"
SUMMARY=$OUT/summary.jsonl
LOG=$OUT/log.txt

log() { echo "[$((SECONDS - START))s] $*" | tee -a "$LOG"; }

# phase_line NAME RC SECONDS LIMIT: one JSON summary line.
phase_line() {
  local timed_out=false
  if [ "$2" = 124 ] || [ "$2" = 137 ]; then timed_out=true; fi
  printf '{"phase": "%s", "rc": %s, "seconds": %s, "limit_s": %s, "timed_out": %s, "at_s": %s}\n' \
    "$1" "$2" "$3" "$4" "$timed_out" "$((SECONDS - START))" >>"$SUMMARY"
}

if [ "${STAGE:-}" = split ]; then
  if [ -z "${TINY:-}" ] && ! ls "$WHEEL_DIR"/keras-*.whl >/dev/null 2>&1; then
    python3 -m pip download -q --no-deps --only-binary=:all: \
      --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      --platform manylinux1_x86_64 -d "$WHEEL_DIR" \
      keras==3.15.1 namex==0.1.0 optree==0.20.0 crc32c==2.9.post0 || exit 1
  fi
  mkdir -p "$WHEEL_DIR"
  exec "$PY" bench/carry_chunks.py split --zip "$CIFAR_ZIP" \
    --inception "$INCEPTION_NPZ" --out "$CARRY_DIR" --wheels "$WHEEL_DIR"
fi

# ---- stage: check and keep carried chunks; restore the inputs when all
# are here (the last call requires all)
t0=$SECONDS
require=--require-all
[ "${STAGE:-}" = only ] && require=
"$PY" bench/carry_chunks.py stage --carry "$CARRY_DIR" --stage "$STAGE_DIR" \
  $require 2>&1 | tee -a "$LOG"
rc=${PIPESTATUS[0]}
phase_line stage "$rc" $((SECONDS - t0)) 0
if [ "$rc" != 0 ] || [ "${STAGE:-}" = only ]; then
  exit "$rc"
fi
INPUTS=$STAGE_DIR/inputs

DEADLINE_S=${DEADLINE_S:-570}
KIMG=${KIMG:-200}
SNAP_KIMG=${SNAP_KIMG:-20}
TICK_KIMG=${TICK_KIMG:-5}
TRAIN_MODE=${TRAIN_MODE:-parallel}
PRECISION=${PRECISION:-bf16}
FID_METRIC=${FID_METRIC:-fid10k_full}
FID_NUM=${FID_NUM:-}
FID_POINTS=${FID_POINTS:-3}
FID_BATCH=${FID_BATCH:-500}
FID_S=${FID_S:-150}          # kept for the FIDs after training
COMPARE_S=${COMPARE_S:-60}   # kept for compare.py and the bundle
CAP_data=${CAP_data:-150}
CAP_stats=${CAP_stats:-180}
MAX_IMAGES=${MAX_IMAGES:-}
CONFIGS=${CONFIGS:-msg-stylegan-cifar10 stylegan-noprog-cifar10}
if [ -n "${TINY:-}" ]; then
  DEADLINE_S=${DEADLINE_S_TINY:-3000} KIMG=2 SNAP_KIMG=1 TICK_KIMG=1
  FID_NUM=32 FID_BATCH=16 FID_S=900 COMPARE_S=400 CAP_data=300
  CAP_stats=900 MAX_IMAGES=128 CONFIGS="msg-stylegan-demo stylegan-noprog-demo"
  DATA_RES=16  # the demo configs' size
  PRECISION=off  # XLA:CPU compiled the bf16 step for over 10 minutes here
fi

# ---- setup: Keras and the other missing packages from the carried wheels
if ! "$PY" -c "import keras, crc32c" >/dev/null 2>&1; then
  if ! ls "$WHEEL_DIR"/*.whl >/dev/null 2>&1; then
    log "error: Keras is missing and no wheels are in $WHEEL_DIR; carry .whl"
    exit 1
  fi
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target /tmp/site "$WHEEL_DIR"/*.whl || exit 1
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$ROOT:${PYTHONPATH:-} PYTHONUNBUFFERED=1 KERAS_BACKEND=jax
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # several processes share the GPU
export MSG_STYLEGAN_CACHE=$STAGE_DIR/cache
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-$STAGE_DIR/jax-cache}
WORK=$STAGE_DIR/work
rm -rf "$WORK"
mkdir -p "$WORK/logs" "$WORK/modules"
MODS=$WORK/modules
DATA=$STAGE_DIR/cifar10
NPZ=$INPUTS/fid_inception_2015_12_05.npz
{
  nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv 2>&1
  "$PY" -c "import jax, keras; print('jax', jax.__version__, jax.devices(),
    'keras', keras.__version__)" 2>&1
  echo "KIMG=$KIMG SNAP_KIMG=$SNAP_KIMG TICK_KIMG=$TICK_KIMG" \
    "TRAIN_MODE=$TRAIN_MODE PRECISION=$PRECISION FID_METRIC=$FID_METRIC" \
    "FID_NUM=${FID_NUM:-metric} DEADLINE_S=$DEADLINE_S CONFIGS=$CONFIGS"
} >"$WORK/logs/gpu.txt"
cat "$WORK/logs/gpu.txt" >>"$LOG"

left() { echo $((DEADLINE_S - (SECONDS - START))); }
# The seconds a phase may run: its cap, or what the deadline leaves.
limit_for() {
  local l
  l=$(($(left) - ${2:-0}))
  echo $(($1 < l ? $1 : l))
}
# run_py LABEL LIMIT ARGS...: python under a cap, recording its modules.
run_py() {
  local label=$1 limit=$2
  shift 2
  timeout -s TERM -k 30 "$limit" "$PY" bench/record_modules.py "$label" \
    "$MODS" "$@"
}

# ---- data: the training TFRecords, once per staged machine
t0=$SECONDS
marker=$DATA/.built-${MAX_IMAGES:-all}
if [ -f "$marker" ]; then
  log "== data: already built ($DATA)"
  phase_line data 0 0 0
else
  rm -rf "$DATA"
  limit=$(limit_for "$CAP_data")
  log "== data (limit ${limit}s)"
  sel=()
  [ -n "$MAX_IMAGES" ] && sel=(--max-images "$MAX_IMAGES" --shuffle)
  [ -n "${DATA_RES:-}" ] && sel+=(--resolution "$DATA_RES" --transform center-crop)
  run_py data "$limit" -m datasets.dataset_tool create_from_images "$DATA" \
    "$INPUTS/cifar10_train.zip" "${sel[@]}" >>"$WORK/logs/data.log" 2>&1
  rc=$?
  tail -2 "$WORK/logs/data.log" | tee -a "$LOG"
  phase_line data "$rc" $((SECONDS - t0)) "$limit"
  if [ "$rc" != 0 ]; then
    log "error: the dataset was not built; see data.log in runs.tar.gz"
    "$PY" bench/gpu_quality.py --summary "$SUMMARY" bundle --work "$WORK" \
      --out "$OUT" >>"$LOG" 2>&1
    exit "$rc"
  fi
  touch "$marker"
fi

stats() {
  local t0=$SECONDS limit
  limit=$(limit_for "$CAP_stats" $((FID_S + COMPARE_S)))
  log "== stats (limit ${limit}s)"
  run_py stats "$limit" bench/gpu_quality.py --summary "$SUMMARY" stats \
    --data "$DATA" --inception "$NPZ" --batch "$FID_BATCH" \
    >>"$WORK/logs/stats.log" 2>&1
  local rc=$?
  phase_line stats "$rc" $((SECONDS - t0)) "$limit"
  log "== stats rc=$rc"
}

# train CONFIG LIMIT: one run into $WORK/runs/CONFIG/<run dir>.
train() {
  local cfg=$1 limit=$2 t0=$SECONDS
  log "== train $cfg (limit ${limit}s)"
  run_py "train-$cfg" "$limit" train.py --backend=jax --config="$cfg" \
    --data="$DATA" --outdir="$WORK/runs/$cfg" --kimg="$KIMG" \
    --tick="$TICK_KIMG" --snap=$((SNAP_KIMG / TICK_KIMG)) \
    --mixed-precision="$PRECISION" --metrics=none \
    >"$WORK/logs/train-$cfg.log" 2>&1
  local rc=$?
  phase_line "train-$cfg" "$rc" $((SECONDS - t0)) "$limit"
  log "== train $cfg rc=$rc: $(grep '^tick' "$WORK/logs/train-$cfg.log" | tail -1)"
}

reserve=$((FID_S + COMPARE_S))
if [ "$TRAIN_MODE" = parallel ]; then
  limit=$(limit_for 100000 "$reserve")
  pids=()
  for cfg in $CONFIGS; do
    train "$cfg" "$limit" &
    pids+=($!)
  done
  stats  # on the GPU while the training steps compile
  wait "${pids[@]}"
else
  stats
  n=$(echo $CONFIGS | wc -w)
  each=$(( ($(left) - reserve) / n ))
  for cfg in $CONFIGS; do
    train "$cfg" "$(limit_for "$each" "$reserve")"
  done
fi

RUNS=()
for cfg in $CONFIGS; do
  d=$(ls -d "$WORK/runs/$cfg"/*/ 2>/dev/null | head -1)
  [ -n "$d" ] && RUNS+=("${d%/}")
done

# ---- fid of snapshots both runs reached
t0=$SECONDS
limit=$(limit_for 100000 "$COMPARE_S")
log "== fid $FID_METRIC (limit ${limit}s)"
num=()
[ -n "$FID_NUM" ] && num=(--num "$FID_NUM")
run_py fid "$limit" bench/gpu_quality.py --summary "$SUMMARY" fid \
  --runs "${RUNS[@]}" --data "$DATA" --inception "$NPZ" \
  --batch "$FID_BATCH" --metric "$FID_METRIC" "${num[@]}" \
  --points "$FID_POINTS" --deadline-s $((limit - 15)) \
  >>"$WORK/logs/fid.log" 2>&1
rc=$?
phase_line fid "$rc" $((SECONDS - t0)) "$limit"
grep '"phase": "fid"' "$SUMMARY" | tail -6 | tee -a "$LOG"

# ---- compare.py: plots, table, samples
t0=$SECONDS
limit=$(limit_for 100000 10)
log "== compare (limit ${limit}s)"
run_py compare "$limit" compare.py "${RUNS[@]}" --outdir="$WORK/compare" \
  --metric="$FID_METRIC" >>"$WORK/logs/compare.log" 2>&1
rc=$?
phase_line compare "$rc" $((SECONDS - t0)) "$limit"
tail -1 "$WORK/logs/compare.log" | tee -a "$LOG"

"$PY" bench/gpu_quality.py --summary "$SUMMARY" bundle --runs "${RUNS[@]}" \
  --work "$WORK" --out "$OUT" >>"$LOG" 2>&1
phase_line total 0 $((SECONDS - START)) "$DEADLINE_S"
cat "$WORK/compare/comparison.md" 2>/dev/null
cat "$SUMMARY"
