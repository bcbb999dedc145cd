#!/usr/bin/env bash
# One call on a lent GPU machine: the GPU sections of the benchmark (model, video end to end,
# service) merged into bench/results.json, then the profile; the results land in $OUT.
# Prepare here first: `python bench/pack_for_device.py` (wheels for PyAV and BentoML, the clip);
# the device call carries .device-pack/bench. Copy $OUT's files back into bench/ and commit them.
#   usage: OUT=out bash bench/gpu_session.sh [SECTIONS]     (default gpu,gpu_video,gpu_service)
set -u
sections=${1:-gpu,gpu_video,gpu_service}
OUT=${OUT:-out}
mkdir -p "$OUT"
PYTHON=${PYTHON:-python3}
pack=$PWD/.device-pack/bench
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 CLIPMORPH_DATA=$pack/data
log=$OUT/bench-session.log
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  $PYTHON -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
} 2>&1 | tee "$log"
if ! $PYTHON -c "import av, bentoml" 2>/dev/null; then
  $PYTHON -m pip install --quiet --no-index --find-links "$pack/wheels" av bentoml 2>&1 | tail -n 5 | tee -a "$log"
fi
$PYTHON -m bench --sections "$sections" --merge 2>&1 | tee -a "$log"
$PYTHON -m bench.gpu_profile bench/gpu-profile.md 2>&1 | tail -n 3 | tee -a "$log"
cp bench/results.json bench/RESULTS.md bench/throughput.png bench/gpu-profile.md "$OUT"/ 2>/dev/null
date -u | tee -a "$log"
