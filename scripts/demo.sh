#!/usr/bin/env bash
# The demo: set up everything, then screen the bundled example photographs in one run:
# the quality gate, vessels, DR grade (referable, macular-oedema risk, lesion boxes) and
# red lesions (microaneurysm and haemorrhage maps, counts) per photo, one table, one report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-env.sh
. .venv/bin/activate
out="${1:-demo-out}"
eyescan tasks
eyescan predict vessels,drgrade,redlesion examples/ --out "$out" --report "$out/report.html"
echo "Per task (maps, overlays, one JSON per photo): $out/vessels/ $out/drgrade/ $out/redlesion/" >&2
echo "One record per photo, every task: $out/predictions.jsonl" >&2
echo "HTML report (open it in a browser): $out/report.html" >&2
