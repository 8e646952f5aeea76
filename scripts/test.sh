#!/usr/bin/env bash
# The test suite: set up everything, lint, then run pytest (core and every plugin).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-env.sh
. .venv/bin/activate
ruff check eyescan plugins tests scripts
python -m pytest "$@"
