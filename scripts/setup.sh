#!/usr/bin/env bash
# Create the project's virtual environment at .venv/ (idempotent) and install the project into it.
# torch comes from the machine's wheel files when they exist (see README, "Installation").
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/pip install --quiet "torch==2.14.1" "torchvision==0.29.1" \
    || .venv/bin/pip install --quiet "torch>=2.11"
fi
.venv/bin/pip install --quiet -e ".[test,distributed]"  # distributed: the Ray tests run too
