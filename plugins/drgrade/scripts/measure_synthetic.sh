#!/usr/bin/env bash
# Reproduce the drgrade README numbers: SYNTHETIC data only (no real-data number exists yet).
#
#   bash plugins/drgrade/scripts/measure_synthetic.sh [OUT]      (default: runs/drgrade-synthetic)
#
# Writes the synthetic set; trains the ordinal grader, the lesion detector and (for comparison)
# a cross-entropy grader side by side; joins grader + detector into the "screen" model (the
# shipped weights); evaluates on the 250 test images and prints the README tables.
# Run from the repository root with the venv active; SHIP=1 also ships the screen weights.
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
    --update-card --json > "$OUT/screen-test.jsonl"
nice -n 10 eyescan evaluate drgrade "$OUT/data" --model grader \
    --weights "$OUT/grader-ce/grader.safetensors" --json > "$OUT/grader-ce-test.jsonl"
python plugins/drgrade/scripts/readme_table.py "$OUT/screen-test.jsonl" "$OUT/grader-ce-test.jsonl"
# SHIP=1: copy the screen weights into the plugin as its default; the card is flagged
# synthetic_only, so `eyescan predict` says these weights know synthetic images only.
if [ "${SHIP:-0}" = 1 ]; then
    python - "$OUT/screen/screen.safetensors" plugins/drgrade/eyescan_drgrade/weights <<'PY'
import json, shutil, sys
from pathlib import Path
source, target = Path(sys.argv[1]), Path(sys.argv[2])
shutil.copy(source, target / source.name)
card = json.loads(source.with_suffix(".json").read_text())
card.update(synthetic_only=True, note="synthetic-data demo weights; not for clinical use")
(target / source.with_suffix(".json").name).write_text(json.dumps(card, indent=2) + "\n")
PY
fi
