#!/usr/bin/env bash
# One call on a lent GPU machine (no PyAV, no BentoML, no internet): catalogue training chunks
# from the shipped weights (models/), one per teacher weight given, each MINUTES long, each
# exported as a models/-ready catalogue into $OUT with its log (a few files, well inside the
# 8-file limit). Prepare the pack here first:
#   python training/build_catalogue.py teach                      # teacher renderings (CPU)
#   python training/pack_for_device.py --teacher-dir training/runs/teacher --photos 340
# and carry .device-pack. Then `finish --full-from` takes an unpacked export.
#   usage: OUT=out bash training/gpu_session.sh MINUTES [TEACHER_WEIGHT ...] [-- extra train args]
# (no weight given: one chunk without the anchor)
# Settings by environment: BATCH (64), WORKERS (cores - 2: loader processes, or decoding threads
# when crops are cut on the GPU), CROPS (auto: on the GPU), COMPILE (1: torch.compile the step), IMAGE_SIZE (256), LR (5e-4), PACK,
# INIT (the catalogue to start from: models, or an earlier chunk's export carried along).
set -uo pipefail
minutes=${1:?minutes of training per chunk}
shift
weights=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do weights+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
[ ${#weights[@]} -eq 0 ] && weights=(0)
OUT=${OUT:-out}
mkdir -p "$OUT"
PYTHON=${PYTHON:-python3}
pack=${PACK:-$PWD/.device-pack}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 WANDB_MODE=disabled
export CLIPMORPH_DATA=$pack/data CLIPMORPH_CACHE=$pack/vgg
cores=$(nproc)
workers=${WORKERS:-$(( cores > 3 ? cores - 2 : 0 ))}
log=$OUT/session.log
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  $PYTHON -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
} 2>&1 | tee "$log"
status=0
for weight in "${weights[@]}"; do
  runs=${RUNS:-/tmp/clipmorph-runs}/teacher-$weight
  teacher=(--teacher-weight "$weight")  # 0: without the anchor
  [ "${COMPILE:-0}" = 1 ] && teacher+=(--compile)
  if [ "$weight" != 0 ]; then teacher+=(--teacher-dir "$pack/teacher"); fi
  echo "== teacher weight $weight: $minutes min, batch ${BATCH:-64}, crops ${CROPS:-auto}, $workers workers" | tee -a "$log"
  $PYTHON training/build_catalogue.py train --init-from "${INIT:-models}" --runs "$runs" --max-minutes "$minutes" \
    --image-size "${IMAGE_SIZE:-256}" --batch-size "${BATCH:-64}" --workers "$workers" --crops "${CROPS:-auto}" --lr "${LR:-5e-4}" \
    --steps 1000000 --no-wandb --export "$runs/export" "${teacher[@]}" "$@" 2>&1 \
    | tr '\r' '\n' | grep -v "^ *$" | awk '!/step\/s|s\/step/ || NR % 200 == 1' | tee -a "$log"
  code=${PIPESTATUS[0]}
  [ "$code" -ne 0 ] && status=$code && continue
  tar czf "$OUT/full-teacher-$weight.tgz" -C "$runs" export
  sample=$(ls "$runs"/catalogue-full/samples/*.jpg 2>/dev/null | tail -n 1)
  [ -n "$sample" ] && cp "$sample" "$OUT/samples-teacher-$weight.jpg"
done
date -u | tee -a "$log"
exit $status
