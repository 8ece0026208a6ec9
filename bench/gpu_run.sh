#!/usr/bin/env bash
# The JAX training benchmark on the lent GPU, in one bounded run.
#
# Installs Keras and its missing pure-Python needs from wheels carried in
# .whl/ (the GPU image has JAX but no Keras), then times the full-size
# networks at 64, 128 and 256, batch 32, fp32 and bf16, each case in its
# own process (so peak memory is the case's own) under a time limit, and
# appends one JSON line per case (training step, then generation) to
# $OUT/bench.jsonl. Usage (device tool, carry .whl):
#   bash bench/gpu_run.sh            # everything within ~420 s
set -u
OUT=${OUT:-/tmp/bench_out}
mkdir -p "$OUT"
BUDGET=${BUDGET:-420}
START=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
  --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 KERAS_BACKEND=jax
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv \
  >"$OUT/gpu.txt" 2>&1
python3 -c "import jax, keras; print(jax.__version__, keras.__version__, \
jax.devices())" 2>&1 | tee -a "$OUT/gpu.txt"

# resolution:precision:seconds (compilation dominates each case)
for spec in 64:fp32:60 64:bf16:55 128:fp32:65 128:bf16:60 256:fp32:85 \
  256:bf16:80; do
  IFS=: read -r res prec limit <<<"$spec"
  left=$((BUDGET - ($(date +%s) - START)))
  if [ "$left" -lt 25 ]; then
    echo "skip $res $prec: ${left}s left" | tee -a "$OUT/log.txt"
    continue
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "== $res $prec (limit ${limit}s)" | tee -a "$OUT/log.txt"
  timeout "$limit" python3 bench/train_bench.py --backend=jax \
    --res="$res" --precision="$prec" --batch=32 --channels=full \
    --warmup=2 --blocks=3 --steps=5 --max-seconds=15 --generation \
    --out="$OUT/bench.jsonl" >>"$OUT/log.txt" 2>&1
  echo "rc=$? after $(($(date +%s) - START))s" | tee -a "$OUT/log.txt"
done
cat "$OUT/bench.jsonl"
