#!/usr/bin/env bash
# Train, calibrate and measure drgrade on real photographs: the README's IDRiD and APTOS tables.
#
#   bash plugins/drgrade/scripts/measure_real.sh [OUT]      (default: runs/drgrade-real)
#   SHIP=1 bash plugins/drgrade/scripts/measure_real.sh     also ships the weights
#
# Data (DATA, default ../shared/data): IDRiD part B with the CODRAS boxes and APTOS 2019.
# 1. one manifest of IDRiD + APTOS (IDRiD's own split; APTOS: the core's 20 % hold-out);
# 2. the grader (IDRiD train + APTOS train part) and the lesion detector (IDRiD train
#    boxes) side by side, one thread each (2 cores: ~45 and ~65 minutes); reruns resume;
# 3. the lesion-grade operating point and the combination rule on validation images
#    (calibrate_screen.py; never a test image);
# 4. grader + detector joined into `screen`;
# 5. evaluation on the IDRiD test set (103) and the APTOS hold-out (598), tables printed.
# Run from the repository root with the venv active.
set -euo pipefail
DATA=${DATA:-../shared/data}
OUT=${1:-runs/drgrade-real}
IDRID="$DATA/IDRiD/B. Disease Grading"
APTOS="$DATA/APTOS2019"
RECIPES=plugins/drgrade/eyescan_drgrade/recipes
SCRIPTS=plugins/drgrade/scripts
WEIGHTS=plugins/drgrade/eyescan_drgrade/weights
export OMP_NUM_THREADS=1  # two shared cores: one torch thread per run
mkdir -p "$OUT"
train() { nice -n 5 eyescan train drgrade "$@" --json --resume; }

[ -f "$OUT/manifest.csv" ] || python "$SCRIPTS/grading_manifest.py" "$IDRID" "$APTOS" "$OUT/manifest.csv"
train "$OUT/manifest.csv" --model grader --config "$RECIPES/grader-idrid-aptos-cpu.json" \
    --out "$OUT/grader" > "$OUT/grader-train.json" &
train "$IDRID" --model detector --config "$RECIPES/detector-idrid-codras-cpu.json" \
    --out "$OUT/detector" > "$OUT/detector-train.json" &
wait

python "$SCRIPTS/calibrate_screen.py" "$OUT/detector/detector.safetensors" "$IDRID" \
    --grader "$OUT/grader/grader.safetensors" --grader-data "$OUT/manifest.csv" --write \
    > "$OUT/calibration.jsonl"
combine=$(python -c 'import json, sys
print(json.loads(open(sys.argv[1]).read().splitlines()[-1])["combination"]["recommended"])' \
    "$OUT/calibration.jsonl")
cat > "$OUT/join.json" <<JSON
{"model_options": {"combine": "$combine"},
 "grader": {"weights": "$OUT/grader/grader.safetensors"},
 "detector": {"weights": "$OUT/detector/detector.safetensors"}}
JSON
eyescan train drgrade "$IDRID" --model screen --config "$OUT/join.json" --out "$OUT/screen" \
    --overwrite --json > "$OUT/screen-train.json"

screen="$OUT/screen/screen.safetensors"
if [ "${SHIP:-0}" = 1 ]; then
    cp "$screen" "$OUT/screen/screen.json" "$WEIGHTS/"
    screen="$WEIGHTS/screen.safetensors"
    python "$SCRIPTS/export_backbone.py" "$OUT/grader/grader.safetensors" \
        "$WEIGHTS/fundus-backbone/mobilenet_v3_small.safetensors"
fi
evaluate() { nice -n 5 eyescan evaluate drgrade "$@" --weights "$screen" --update-card --json; }
evaluate "$APTOS" > "$OUT/test-aptos.jsonl"
evaluate "$IDRID" > "$OUT/test-idrid.jsonl"  # last: the card's headline "metrics"
python "$SCRIPTS/readme_table.py" "IDRiD test=$OUT/test-idrid.jsonl" \
    "APTOS hold-out=$OUT/test-aptos.jsonl" | tee "$OUT/tables.md"
