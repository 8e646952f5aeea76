#!/usr/bin/env bash
# Train and evaluate both stages on the real strabismus-faces photographs, from scratch:
# the eye-region detector, RF-CNN Lite and the plain RF-CNN, then detect → crop → classify
# on the 80 test photographs.
#
#   bash plugins/strabismus/scripts/train_real.sh [OUT]      (default: runs/strabismus-real)
#
# 1. OUT/manifest.csv from labels.csv + the reviewed boxes (scripts/real_manifest.py): 279
#    photographs; the 6 train copies of test photographs are dropped (OUT/manifest_dropped.csv).
# 2. Two lanes, one torch thread each, every run with --resume (a rerun continues):
#    lane 1 rfcnn-cnn; lane 2 eye-detector, then rfcnn-lite. Recipes recipes/*-real-cpu.json.
#    Epoch times measured on a 64-photograph subset with one thread, the 2-core machine shared
#    with another training (nice 19), scaled to the 199 training photographs: detector
#    (320×240) ~15 s/epoch × 40 ≈ 10 min; rfcnn-lite (224²) ~11 s × 60 ≈ 11 min; rfcnn-cnn
#    (224²) ~31 s × 30 ≈ 16 min; plus ~0.5 min of start-up each. Wall time ≈ 22 min + the
#    evaluations (~2 min).
# 3. Each classifier's card names the detector (pipeline.link_detector: relative path +
#    SHA-256), so evaluation and prediction run with it.
# 4. OUT/eval-eye-detector.jsonl and OUT/eval-<classifier>.jsonl (eyescan evaluate --json on
#    the test split, end to end; a photograph without an eye region found is a failure), and
#    OUT/plots-<classifier>/ (ROC, PR, confusion, calibration: curves, no photographs).
#
# Environment: DATA (default ../shared/data/strabismus-faces), RECIPES, NICE (default 10);
# for a smoke test only: EPOCHS=N (overrides every recipe's epochs) and SUBSET=N (keep N
# photographs of each label in each split) — use another OUT than the real run's, since a
# resumed run refuses a checkpoint of a different recipe.
# Outputs hold paths, numbers and weights, never a photograph: keep OUT under runs/ or /tmp.
set -euo pipefail
DATA=${DATA:-../shared/data/strabismus-faces}
OUT=${1:-runs/strabismus-real}
RECIPES=${RECIPES:-plugins/strabismus/eyescan_strabismus/recipes}
NICE=${NICE:-10}
SCRIPTS=$(dirname "$0")
export OMP_NUM_THREADS=1  # two shared cores: one torch thread per run
mkdir -p "$OUT"
MANIFEST="$OUT/manifest.csv"
python "$SCRIPTS/real_manifest.py" "$DATA" "$MANIFEST"
if [[ -n "${SUBSET:-}" ]]; then  # smoke tests: the first SUBSET of each label and split
    python - "$MANIFEST" "$SUBSET" <<'PY'
import csv, sys
path, keep = sys.argv[1], int(sys.argv[2])
with open(path, newline="", encoding="utf-8") as handle:
    rows = list(csv.DictReader(handle))
taken: dict[tuple[str, str], int] = {}
subset = []
for row in rows:
    group = (row["split"], row["label"])
    taken[group] = taken.get(group, 0) + 1
    if taken[group] <= keep:
        subset.append(row)
with open(path, "w", newline="", encoding="utf-8") as handle:
    writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(subset)
print(f"{path}: SUBSET={keep}: {len(subset)} of {len(rows)} photographs", file=sys.stderr)
PY
fi
EPOCH_FLAG=()
if [[ -n "${EPOCHS:-}" ]]; then EPOCH_FLAG=(--epochs "$EPOCHS"); fi

train() {  # MODEL: trains OUT/MODEL with recipes/MODEL-real-cpu.json
    nice -n "$NICE" eyescan train strabismus "$MANIFEST" --reader manifest --model "$1" \
        --config "$RECIPES/$1-real-cpu.json" "${EPOCH_FLAG[@]}" --out "$OUT/$1" --resume \
        --json > "$OUT/$1-train.jsonl"
}
train rfcnn-cnn &
lane1=$!
{ train eye-detector && train rfcnn-lite; } &
lane2=$!
wait "$lane1"
wait "$lane2"

DETECTOR="$OUT/eye-detector/eye-detector.safetensors"
python - "$DETECTOR" "$OUT/rfcnn-lite/rfcnn-lite.safetensors" \
    "$OUT/rfcnn-cnn/rfcnn-cnn.safetensors" <<'PY'
import sys
from eyescan_strabismus.pipeline import link_detector
for classifier in sys.argv[2:]:  # the card names the detector by relative path and SHA-256
    link_detector(classifier, sys.argv[1])
PY
nice -n "$NICE" eyescan evaluate strabismus "$MANIFEST" --reader manifest --model eye-detector \
    --weights "$DETECTOR" --json > "$OUT/eval-eye-detector.jsonl"
for model in rfcnn-lite rfcnn-cnn; do
    nice -n "$NICE" eyescan evaluate strabismus "$MANIFEST" --reader manifest \
        --weights "$OUT/$model/$model.safetensors" --plots "$OUT/plots-$model" --json \
        > "$OUT/eval-$model.jsonl"
done
python - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
keys = ("images", "pipeline_eye_region_found", "pipeline_auc", "pipeline_sensitivity",
        "pipeline_specificity", "pipeline_accuracy", "auc", "sensitivity", "specificity")
detector = json.loads((out / "eval-eye-detector.jsonl").read_text().splitlines()[-1])
print(f"eye-detector: {detector['images']} test photographs, best box IoU>=0.5 on "
      f"{detector['best_box_found_iou50']:.3f}, mean IoU {detector['mean_best_iou']:.3f}",
      file=sys.stderr)
for model in ("rfcnn-lite", "rfcnn-cnn"):
    summary = json.loads((out / f"eval-{model}.jsonl").read_text().splitlines()[-1])
    print(model + ": " + ", ".join(f"{k} {summary.get(k)}" for k in keys), file=sys.stderr)
PY
echo "trained and evaluated: $OUT" >&2
