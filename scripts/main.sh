#!/usr/bin/env bash
# The main job: set up (if needed) and colorize the bundled example pair offline into out/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/deepexemplar demo -o out "$@"
