#!/usr/bin/env bash
# Set up (if needed), compile-check the CUDA sources when nvcc exists, and run the default tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
  bash scripts/check_cuda_compile.sh
fi
exec .venv/bin/python -m pytest -q "$@"
