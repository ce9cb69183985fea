#!/usr/bin/env bash
# Compile-only check of the CUDA kernels (no GPU needed): nvcc -c against torch's headers.
# Usage: scripts/check_cuda_compile.sh [arch ...]   (default: sm_90; e.g. sm_80 sm_90 sm_100)
# Env: PYTHON (default .venv/bin/python or python3), CUDA_HOME (default /usr/local/cuda).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
NVCC="$CUDA_HOME/bin/nvcc"
[ -x "$NVCC" ] || { echo "check_cuda_compile: no nvcc at $NVCC (set CUDA_HOME)" >&2; exit 2; }
ARCHS=("$@"); [ ${#ARCHS[@]} -gt 0 ] || ARCHS=(sm_90)
INCLUDES=$("$PYTHON" - <<'PY'
import sysconfig
from torch.utils.cpp_extension import include_paths
print(" ".join(f"-isystem {p}" for p in include_paths()) + " -isystem " + sysconfig.get_paths()["include"])
PY
)
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
GENCODE=""
for a in "${ARCHS[@]}"; do GENCODE+=" -gencode arch=compute_${a#sm_},code=$a"; done
set -x
# shellcheck disable=SC2086
"$NVCC" -c cuda_ext/csrc/patchmatch_cuda.cu -o "$OUT/patchmatch_cuda.o" $INCLUDES $GENCODE \
  -std=c++20 -O3 -lineinfo -Xptxas -v -DDEEPEXEMPLAR_WITH_CUDA \
  -D__CUDA_NO_HALF_OPERATORS__ -D__CUDA_NO_HALF_CONVERSIONS__ -D__CUDA_NO_HALF2_OPERATORS__ \
  --expt-relaxed-constexpr -Xcompiler -fPIC
set +x
echo "check_cuda_compile: OK (${ARCHS[*]})"
