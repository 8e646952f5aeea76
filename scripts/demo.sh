#!/usr/bin/env bash
# The demo: set up everything, then segment the vessels of the bundled example images.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-env.sh
. .venv/bin/activate
out="${1:-demo-out}"
eyescan tasks
eyescan predict vessels examples/ --out "$out" --report "$out/report.html"
echo "Outputs (probability map, binary mask, overlay, JSON per image) are in $out/" >&2
echo "HTML report (open it in a browser): $out/report.html" >&2
