#!/usr/bin/env bash
# The JAX figures still to be measured on the lent H200, in one bounded run.
#
# Installs Keras and its missing pure-Python needs from wheels carried in
# .whl/ when Keras is absent (the GPU image has JAX but no Keras), then runs
# each case in its own process under its own time cap (CAP_<case>, s), and
# all of them before one deadline (DEADLINE_S, default 570 s: inside the
# device tool's 600 s command limit, so $OUT always comes back):
#
#   host       bench/host_overhead.py at 64 and 256: host ms per step
#              for the Keras variables, all moved vs reused
#   profile64  bench/profile_step.py at 64, bf16, batch 32: XLA's cost
#              analysis (FLOPs, bytes, intensity, roofline at 989 TFLOP/s
#              and 4.8 TB/s), a trace of 3 steps, device time by op kind
#              and the top 15 ops
#   hi64       train_bench at 64, fp32, batch 32 with
#              JAX_DEFAULT_MATMUL_PRECISION=highest: true fp32 convolutions
#              and matmuls (JAX's default lets the GPU use TF32 for fp32)
#   bf16_256   train_bench at 256, bf16 (mixed), batch 32
#   tf32_256   train_bench at 256, fp32 at JAX's default precision (TF32)
#
# The 64 cases go first: compiling the step took ~45-80 s at 64 and 128 on
# an H200, and more than ~100 s at 256 (it did not finish in the ~100 s a
# 190 s limit left), so the 256 cases get what remains, up to their caps.
# CASES picks and orders cases (default: all five, as listed).
#
# $OUT gets: host.jsonl (host_overhead's rows), bench.jsonl (one
# train_bench row per finished case, with
# "case" and "matmul_precision" added), profile.json and profile.txt (the
# profile report), profile.trace.json.gz and profile.hlo.txt.gz (the raw
# trace and the optimised HLO its op names refer to, for reading offline;
# copied when under 16 MiB), log.txt (every case's stderr: per-phase times)
# and gpu.txt (the device and JAX version).
#
# Usage (device tool, carry .whl):   bash bench/gpu_run.sh
# Dry run on a CPU, tiny networks at 16 and 32 px, batch 8:
#   TINY=1 OUT=/tmp/gpu_run bash bench/gpu_run.sh
# One case, longer:   CASES=bf16_256 CAP_bf16_256=500 bash bench/gpu_run.sh
set -u
OUT=${OUT:-/tmp/bench_out}
mkdir -p "$OUT"
START=$SECONDS
DEADLINE_S=${DEADLINE_S:-570}
CASES=${CASES:-host profile64 hi64 bf16_256 tf32_256}
CAP_host=${CAP_host:-60}
CAP_profile64=${CAP_profile64:-150}
CAP_hi64=${CAP_hi64:-120}
CAP_bf16_256=${CAP_bf16_256:-260}
CAP_tf32_256=${CAP_tf32_256:-260}
SMALL=64 BIG=256 CHANNELS=full BATCH=32
if [ -n "${TINY:-}" ]; then
  SMALL=16 BIG=32 CHANNELS=tiny BATCH=8
fi

if ! python3 -c "import keras" >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1 KERAS_BACKEND=jax
{
  nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv 2>&1
  python3 -c "import jax; print('jax', jax.__version__, jax.devices())" 2>&1
} >"$OUT/gpu.txt"

log() { echo "[$((SECONDS - START))s] $*" | tee -a "$OUT/log.txt"; }

# The seconds a case may run: its cap, or what the deadline leaves.
limit_for() {
  local cap=$1 left=$((DEADLINE_S - (SECONDS - START) - 5))
  echo $((cap < left ? cap : left))
}

# Copy train_bench's JSON lines from stdin to bench.jsonl, tagged.
tag() {
  python3 -c '
import json, sys
for line in sys.stdin:
    if line.startswith("{"):
        row = json.loads(line)
        row.update(case=sys.argv[1], matmul_precision=sys.argv[2])
        print(json.dumps(row), flush=True)
' "$1" "$2" >>"$OUT/bench.jsonl"
}

bench() {  # bench CASE LIMIT MATMUL RES PRECISION
  local name=$1 limit=$2 matmul=$3 res=$4 prec=$5
  if [ "$matmul" != default ]; then
    export JAX_DEFAULT_MATMUL_PRECISION=$matmul
  fi
  python3 -c "import jax; print('matmul precision:',
    jax.config.jax_default_matmul_precision)" >>"$OUT/log.txt" 2>&1
  timeout "$limit" python3 bench/train_bench.py --backend=jax --res="$res" \
    --precision="$prec" --batch="$BATCH" --channels="$CHANNELS" \
    --warmup=2 --blocks=3 --steps=4 --max-seconds=10 \
    2>>"$OUT/log.txt" | tee -a "$OUT/log.txt" | tag "$name" "$matmul"
  local rc=${PIPESTATUS[0]}
  unset JAX_DEFAULT_MATMUL_PRECISION
  return "$rc"
}

profile() {  # profile LIMIT
  local dir=/tmp/profile_trace rc
  rm -rf "$dir"
  timeout "$1" python3 bench/profile_step.py --res="$SMALL" \
    --precision=bf16 --batch="$BATCH" --channels="$CHANNELS" \
    --warmup=2 --steps=5 --trace-steps=3 --top=15 \
    --peak-tflops=989 --peak-tbps=4.8 --trace-dir="$dir" \
    --out="$OUT/profile.json" >"$OUT/profile.txt" 2>>"$OUT/log.txt"
  rc=$?
  local trace
  trace=$(find "$dir" -name '*.trace.json.gz' 2>/dev/null | head -1)
  for pair in "$trace:profile.trace.json.gz" \
    "$dir/train_step.hlo.txt.gz:profile.hlo.txt.gz"; do
    local src=${pair%%:*} dst=${pair##*:}
    if [ -f "$src" ] && [ "$(stat -c %s "$src")" -lt 16000000 ]; then
      cp "$src" "$OUT/$dst"
    fi
  done
  return "$rc"
}

for name in $CASES; do
  cap_var=CAP_$name
  limit=$(limit_for "${!cap_var:-120}")
  if [ "$limit" -lt 30 ]; then
    log "== $name skipped: ${limit}s left before the deadline"
    continue
  fi
  log "== $name (limit ${limit}s)"
  case $name in
    host)
      timeout "$limit" python3 bench/host_overhead.py --res="$SMALL,$BIG" \
        --channels="$CHANNELS" >>"$OUT/host.jsonl" 2>>"$OUT/log.txt" ;;
    profile64) profile "$limit" ;;
    hi64) bench "$name" "$limit" highest "$SMALL" fp32 ;;
    bf16_256) bench "$name" "$limit" default "$BIG" bf16 ;;
    tf32_256) bench "$name" "$limit" default "$BIG" fp32 ;;
    *) log "unknown case '$name'"; false ;;
  esac
  rc=$?
  log "== $name rc=$rc$([ $rc = 124 ] && echo ' (stopped at its limit)')"
done
cat "$OUT/profile.txt" 2>/dev/null
cat "$OUT/host.jsonl" "$OUT/bench.jsonl" 2>/dev/null
grep -v -i warn "$OUT/log.txt" | grep '^\[' | tail -20
