#!/usr/bin/env bash
# The GPU check of cuda_ext, the pipeline and the temporal smoothing in one device-tool call (step
# time limits add up to 590 s; run it with the device tool's timeout_s=600):
#   1. build the extension with CUDA (TORCH_CUDA_ARCH_LIST, default 9.0),
#   2. tests/matching_ext and tests/core/test_cuda_parity.py (CPU + CUDA parity tests),
#   3. scripts/gpu_parity.py: CUDA vs C++ on random and photo-derived features at 256 px and
#      1080p relu2_1 sizes, float32 and float16,
#   4. compute-sanitizer memcheck on a small case (if compute-sanitizer is installed),
#   5. benchmarks/bm_matching.py on CUDA (256, 512, 1080p@540, 1080p; both kernel variants) and
#      the PyTorch reference on CUDA at 256 for the speed-up,
#   6. benchmarks/bm_pipeline.py: the whole pipeline, a 256 px pair end to end and 1080p frames
#      at working size 540 with a prepared reference, float32 and float16 (with the ab
#      difference), frames/s and peak GPU memory, lite and paper,
#   7. benchmarks/temporal.py: the temporal smoothing alone on 1080p frames on CUDA (the flow on
#      the CPU with DIS), seconds per frame per stage for fast and bonneel,
# then prints a short summary table. Full logs and JSON go to $OUT (or a temp dir).
# Usage (device tool): bash scripts/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d)}
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
export DEEPEXEMPLAR_EXT_DIR=${DEEPEXEMPLAR_EXT_DIR:-/tmp/deepexemplar_ext}
export MAX_JOBS=${MAX_JOBS:-8}
LOG="$OUT/gpu_check.log"
declare -A STATUS

run_step() {  # run_step NAME TIMEOUT_S CMD...
  local name=$1 limit=$2; shift 2
  echo "=== $name: $*" | tee -a "$LOG"
  local t0=$SECONDS
  timeout "$limit" "$@" >>"$LOG" 2>&1
  local rc=$?
  STATUS[$name]="rc=$rc $((SECONDS - t0))s"
  echo "=== $name: rc=$rc in $((SECONDS - t0)) s" | tee -a "$LOG"
  return $rc
}

{ nvidia-smi -L; nvcc --version | tail -n 2; "$PY" -c "import torch; print('torch', torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))"; } 2>&1 | tee -a "$LOG"

run_step build 180 "$PY" -c "from deepexemplar_core.matching import extension; print(extension.build(verbose=True))" \
  || { tail -n 40 "$LOG"; exit 1; }
run_step tests 60 "$PY" -m pytest tests/matching_ext tests/core/test_cuda_parity.py -q -p no:cacheprovider
run_step parity 70 "$PY" scripts/gpu_parity.py --json "$OUT/parity.json"
if command -v compute-sanitizer >/dev/null; then
  run_step sanitizer 40 compute-sanitizer --tool memcheck --error-exitcode 9 "$PY" scripts/gpu_parity.py --small
else
  STATUS[sanitizer]="skipped (no compute-sanitizer)"
fi
run_step bench_torch 40 "$PY" benchmarks/bm_matching.py --device cuda --backends torch --repeat 2 \
  --sizes 256 --no-ops --json "$OUT/bm_torch.json"
run_step bench 70 "$PY" benchmarks/bm_matching.py --device cuda --backends cuda --repeat 10 \
  --sizes 256,512,1080p@540,1080p --json "$OUT/bm_cuda.json"
run_step pipeline 90 "$PY" benchmarks/bm_pipeline.py --device cuda --half --frames 60
run_step temporal 40 "$PY" benchmarks/temporal.py --speed-clip pan --speed-width 1920 --device cuda

echo
echo "---- summary ($(date -u +%FT%TZ)) ----"
for s in build tests parity sanitizer bench_torch bench pipeline temporal; do printf '%-10s %s\n' "$s" "${STATUS[$s]:-not run}"; done
grep -E "[0-9]+ (passed|failed)" "$LOG" | tail -n 2
echo "parity lines ok: $(grep -cE '^ok ' "$LOG"), BAD: $(grep -cE '^BAD' "$LOG")"
grep -E "^BAD" "$LOG" | head -n 10
grep -E "parity:|ERROR SUMMARY" "$LOG"
grep -E "^ +(256|512|1080p@540|1080p) +(torch|cuda):|relu2_1 ops" "$LOG"
grep -E "^\| (lite|paper) \|" "$LOG"
grep -E "^Smoothing alone|^\| (fast|bonneel) \|" "$LOG"
echo "full log: $LOG"
