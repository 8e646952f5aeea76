#!/usr/bin/env bash
# The synthetic test tool: train and measure drgrade on SYNTHETIC images (README, "Synthetic
# images"); nothing is shipped from it (the shipped weights: measure_real.sh).
#
#   bash plugins/drgrade/scripts/measure_synthetic.sh [OUT]      (default: runs/drgrade-synthetic)
#
# Writes the synthetic set; trains the ordinal grader, the lesion detector and (for comparison)
# a cross-entropy grader side by side; joins grader + detector into the "screen" model; evaluates on the 250 test images and prints the README tables.
# Run from the repository root with the venv active.
set -euo pipefail
OUT=${1:-runs/drgrade-synthetic}
RECIPES=plugins/drgrade/eyescan_drgrade/recipes
# Two shared cores: one torch thread per run is many times faster than two fighting threads.
export OMP_NUM_THREADS=1
train() { nice -n 10 eyescan train drgrade "$OUT/data" --json --resume "$@"; }  # reruns resume

[ -d "$OUT/data" ] || nice -n 10 python plugins/drgrade/scripts/make_synthetic_set.py "$OUT/data" \
    --train 1000 --test 250 --size 128 --seed 0
train --model grader --config "$RECIPES/grader-synthetic-cpu.json" --out "$OUT/grader" \
    > "$OUT/grader-train.json" &
train --model detector --config "$RECIPES/detector-synthetic-cpu.json" --out "$OUT/detector" \
    > "$OUT/detector-train.json" &
train --model grader --config "$RECIPES/grader-ce-synthetic-cpu.json" --out "$OUT/grader-ce" \
    > "$OUT/grader-ce-train.json" &
wait
cat > "$OUT/join.json" <<JSON
{"model_options": {"combine": "max"},
 "grader": {"weights": "$OUT/grader/grader.safetensors"},
 "detector": {"weights": "$OUT/detector/detector.safetensors"}}
JSON
train --model screen --config "$OUT/join.json" --out "$OUT/screen" > "$OUT/screen-train.json"
nice -n 10 eyescan evaluate drgrade "$OUT/data" --weights "$OUT/screen/screen.safetensors" \
    --json > "$OUT/screen-test.jsonl"
nice -n 10 eyescan evaluate drgrade "$OUT/data" --model grader \
    --weights "$OUT/grader-ce/grader.safetensors" --json > "$OUT/grader-ce-test.jsonl"
python plugins/drgrade/scripts/readme_table.py "synthetic test=$OUT/screen-test.jsonl" \
    "synthetic test, cross-entropy grader=$OUT/grader-ce-test.jsonl"
