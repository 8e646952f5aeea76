#!/usr/bin/env bash
# Create .venv (if needed) and install eyescan, every plugin under plugins/, and test tools.
# Idempotent: a second run only checks what is installed. Used by demo.sh, test.sh and CI.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv" >&2
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
stamp=".venv/.eyescan-installed"
want="$(cat pyproject.toml plugins/*/pyproject.toml | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "installing eyescan and its plugins into .venv (first run: a few minutes)" >&2
python -m pip install -q --upgrade pip >&2
# torch/torchvision: this pair installs from the local disk on the project machines.
python -m pip install -q torch==2.14.1 torchvision==0.29.1 >&2
plugins=()
for p in plugins/*/pyproject.toml; do plugins+=(-e "$(dirname "$p")"); done
python -m pip install -q -e ".[test]" "${plugins[@]}" >&2
echo "$want" > "$stamp"
