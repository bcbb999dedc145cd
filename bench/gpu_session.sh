#!/usr/bin/env bash
# One call on a lent GPU machine: the GPU sections of the benchmark merged into
# bench/results.json one at a time (the ones never measured first), then the profile. After
# each step the results are copied to $OUT, so a call cut short still brings back what it measured.
# Prepare here first: `python bench/pack_for_device.py` (wheels for PyAV and BentoML, the clip);
# the device call carries .device-pack/bench. Copy $OUT's files back into bench/ and commit them.
#   usage: OUT=out bash bench/gpu_session.sh [SECTIONS]     (default gpu_video,gpu_service,gpu)
set -u
sections=${1:-gpu_video,gpu_service,gpu}
OUT=${OUT:-out}
mkdir -p "$OUT"
PYTHON=${PYTHON:-python3}
pack=$PWD/.device-pack/bench
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 CLIPMORPH_DATA=$pack/data
log=$OUT/bench-session.log
save() { cp bench/results.json bench/RESULTS.md bench/throughput.png bench/gpu-profile.md "$OUT"/ 2>/dev/null; }
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  $PYTHON -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
} 2>&1 | tee "$log"
if ! $PYTHON -c "import av, bentoml" 2>/dev/null; then
  $PYTHON -m pip install --quiet --no-index --find-links "$pack/wheels" av bentoml 2>&1 | tail -n 5 | tee -a "$log"
fi
# Which H.264 encoder video jobs get here: NVENC where the GPU has an encoder engine, else x264.
$PYTHON -c "from clipmorph.inference import media; print('h264_nvenc starts:', media.encoder_opens('h264_nvenc'), \
'-> auto picks', media.pick_h264_encoder('auto'))" 2>&1 | tee -a "$log"
for section in ${sections//,/ }; do
  $PYTHON -m bench --sections "$section" --merge 2>&1 | tee -a "$log"
  save
done
$PYTHON -m bench.gpu_profile bench/gpu-profile.md 2>&1 | tail -n 3 | tee -a "$log"
save
date -u | tee -a "$log"
