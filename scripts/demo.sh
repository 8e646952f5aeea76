#!/usr/bin/env bash
# The demo: set up everything, then segment the vessels of the bundled example images and
# grade them for diabetic retinopathy (grade, referable, macular-oedema risk, lesion boxes)
# and segment their red lesions (microaneurysm and haemorrhage maps, counts, overlay).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-env.sh
. .venv/bin/activate
out="${1:-demo-out}"
eyescan tasks
eyescan predict vessels examples/ --out "$out" --report "$out/report.html"
eyescan predict drgrade examples/ --out "$out/drgrade"
eyescan predict redlesion examples/ --out "$out/redlesion"
echo "Outputs (probability map, binary mask, overlay, JSON per image) are in $out/" >&2
echo "HTML report (open it in a browser): $out/report.html" >&2
echo "DR grading (grade, referable, DME risk, lesion boxes) per image: $out/drgrade/" >&2
echo "Red lesions (MA/HE maps, counts, overlay) per image: $out/redlesion/" >&2
