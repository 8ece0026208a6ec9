#!/usr/bin/env bash
# The JAX training benchmark on the lent GPU, in one bounded run.
#
# Installs Keras and its missing pure-Python needs from wheels carried in
# .whl/ (the GPU image has JAX but no Keras), then times the full-size
# networks at 64, 128 and 256, batch 32: one process for bf16 and one for
# fp32, each going up in resolution (JAX's peak memory cannot be reset, so
# a case's peak is its own as long as the cases before it were smaller).
# One JSON line per case (training step, then generation) goes to
# $OUT/bench.jsonl as soon as the case ends; stderr has per-phase times.
# Usage (device tool, carry .whl):   bash bench/gpu_run.sh
# Measured on an H200: compiling the step takes ~45-80 s at 64 and 128;
# 256 did not compile within the ~100 s left of a 190 s limit, so give
# each precision about 400 s (BF16_S, FP32_S) to include 256.
set -u
OUT=${OUT:-/tmp/bench_out}
mkdir -p "$OUT"
BF16_S=${BF16_S:-200}
FP32_S=${FP32_S:-170}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
  --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 KERAS_BACKEND=jax
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv \
  >"$OUT/gpu.txt" 2>&1
for spec in bf16:$BF16_S fp32:$FP32_S; do
  IFS=: read -r prec limit <<<"$spec"
  echo "== $prec (limit ${limit}s)" >>"$OUT/log.txt"
  timeout "$limit" python3 bench/train_bench.py --backend=jax \
    --res=64,128,256 --precision="$prec" --batch=32 --channels=full \
    --warmup=2 --blocks=3 --steps=4 --max-seconds=10 --generation \
    --out="$OUT/bench.jsonl" >>"$OUT/log.txt" 2>&1
  echo "rc=$?" >>"$OUT/log.txt"
done
grep -v -i warn "$OUT/log.txt" | tail -40
