#!/usr/bin/env bash
# One call on a lent GPU machine: GPU benchmarks, then catalogue training from the packed
# weights for TRAIN_MINUTES; everything it makes lands in $OUT (at most a few files).
# Prepare here first: `python training/pack_for_device.py` (photos, paintings, VGG19) and
# `python training/build_catalogue.py train --steps <current> --export .device-pack/init`.
#   usage: OUT=out training/gpu_session.sh TRAIN_MINUTES [BENCH_SECONDS]
set -u
minutes=${1:?minutes of training}
bench_seconds=${2:-150}
OUT=${OUT:-out}
mkdir -p "$OUT"
PYTHON=${PYTHON:-python3}
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
export CLIPMORPH_DATA=$PWD/.device-pack/data CLIPMORPH_CACHE=$PWD/.device-pack/vgg
log=$OUT/session.log
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  $PYTHON -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  echo "ffmpeg: $(command -v ffmpeg || echo none)"
} 2>&1 | tee "$log"

timeout "$bench_seconds" $PYTHON -m bench --sections gpu --merge 2>&1 | tee -a "$log"
cp bench/results.json bench/RESULTS.md "$OUT"/ 2>/dev/null

runs=${RUNS:-/tmp/clipmorph-runs}
timeout $(( ${minutes%.*} * 60 + 240 )) $PYTHON training/build_catalogue.py train \
  --init-from .device-pack/init --runs "$runs" --max-minutes "$minutes" \
  --image-size 256 --batch-size 8 --workers 6 --steps 1000000 --no-wandb --export "$runs/export" 2>&1 \
  | tr '\r' '\n' | grep -v "^ *$" | awk '!/%\|/ || NR % 100 == 1' | tee -a "$log"
tar czf "$OUT/full.tgz" -C "$runs" export 2>/dev/null
samples=$(ls "$runs"/catalogue-full/samples/*.jpg 2>/dev/null | tail -n 3)
[ -n "$samples" ] && tar czf "$OUT/samples.tgz" $samples
date -u | tee -a "$log"
