#!/usr/bin/env bash
# Measure Red-Seg trained by train_real.sh on real photographs: the README's IDRiD tables.
#
#   bash plugins/redlesion/scripts/measure_real.sh [OUT]      (default: runs/redlesion-real)
#   SHIP=1 bash plugins/redlesion/scripts/measure_real.sh     also ships the chosen model
#
# 1. cv_measure.py: each fold's one-stage (stage1) and two-stage (stage2) model on its
#    held-out training images at the masks' resolution (512-px copy: MA, HE; 1072×712
#    copy: HE), per fold and mean ± sd; the operating thresholds (best pixel F1 on the
#    pooled out-of-fold maps) go into the cards of the models trained on all 54 images
#    (skipped when OUT/cv.jsonl is complete);
# 2. the shipped model is the stage with the higher cross-validated mean of MA and HE
#    AUC-PR (never a test-set number decides);
# 3. both all-54 models on the official test set 55–81 (boxes only): FROC; the chosen one
#    also on the 16 of them that drgrade's grader (whose backbone starts the encoder)
#    never saw (same_photos.py, unseen_view.py);
# 4. the chosen model on IDRiD part B's 103 test photographs (grades and CODRAS boxes):
#    image-level AUCs of "has MA / HE / a red lesion" (image_level.py), without the 3 that
#    are part A training images;
# 5. readme_tables.py prints the tables (OUT/tables.md).
# Run from the repository root with the venv active (~15 minutes on 2 cores).
set -euo pipefail
DATA=${DATA:-../shared/data}
OUT=${1:-runs/redlesion-real}
PART_A="$DATA/IDRiD/A. Segmentation (partial copies)"
GRADING="$DATA/IDRiD/B. Disease Grading"
BOXES="$PART_A/all-81-1024px-letterboxed-yolo"
SCRIPTS=plugins/redlesion/scripts
WEIGHTS=plugins/redlesion/eyescan_redlesion/weights
MODEL=redseg-mobilenet

if ! grep -q '"kind": "cv"' "$OUT/cv.jsonl" 2>/dev/null; then
    python "$SCRIPTS/cv_measure.py" "$OUT" --write-card "$OUT"/all/stage{1,2}/$MODEL.safetensors \
        > "$OUT/cv.jsonl.part"
    mv "$OUT/cv.jsonl.part" "$OUT/cv.jsonl"
fi
python "$SCRIPTS/card_sources.py" "$OUT"/all/stage{1,2}/$MODEL.safetensors \
    --init-card plugins/drgrade/eyescan_drgrade/weights/fundus-backbone/mobilenet_v3_small.json
stage=$(python -c 'import json, sys
cv = json.loads(open(sys.argv[1]).read().splitlines()[-1])["stages"]
mean = {s: (v["ma_auc_pr"]["mean"] + v["he_auc_pr"]["mean"]) / 2 for s, v in cv.items()}
print(max(mean, key=mean.get))' "$OUT/cv.jsonl")
chosen="$OUT/all/$stage/$MODEL.safetensors"
python - "$chosen" "$stage" <<'PY'
import sys
from pathlib import Path
from eyescan.api import weights
weights.update_card(Path(sys.argv[1]), chosen_by=(
    f"{sys.argv[2]}: the higher mean of MA and HE pixel AUC-PR in the 5-fold cross-validation "
    "over the 54 IDRiD training images (measure_real.sh)"))
PY
if [ "${SHIP:-0}" = 1 ]; then
    cp "$chosen" "$WEIGHTS/$MODEL.safetensors"
    cp "${chosen%.safetensors}.json" "$WEIGHTS/$MODEL.json"
    chosen="$WEIGHTS/$MODEL.safetensors"
fi
evaluate() { nice -n 5 eyescan evaluate redlesion "$@" --json; }
for s in stage1 stage2; do
    weights="$OUT/all/$s/$MODEL.safetensors"
    [ "$s" = "$stage" ] && weights="$chosen"
    evaluate "$BOXES" --weights "$weights" --update-card > "$OUT/test-$s.jsonl"
done
python "$SCRIPTS/same_photos.py" "$BOXES/images/val" "$GRADING/1. Original Images/a. Training Set" \
    > "$OUT/same-testA-trainB.json"
python "$SCRIPTS/unseen_view.py" "$BOXES" "$OUT/same-testA-trainB.json" "$OUT/test-unseen" \
    > "$OUT/test-unseen.json"
evaluate "$OUT/test-unseen" --weights "$chosen" > "$OUT/test-unseen.jsonl"
nice -n 5 eyescan predict redlesion "$GRADING/1. Original Images/b. Testing Set" \
    --weights "$chosen" --out "$OUT/grading-test-$stage" --resume --json > /dev/null
python "$SCRIPTS/same_photos.py" "$PART_A/train-512px-cropped" \
    "$GRADING/1. Original Images/b. Testing Set" --glob-a "IDRiD_??.jpg" > "$OUT/same-photos.json"
python "$SCRIPTS/image_level.py" "$OUT/grading-test-$stage/predictions.jsonl" "$GRADING" \
    --exclude "$OUT/same-photos.json" --stage "$stage" > "$OUT/image-level.json"
python "$SCRIPTS/readme_tables.py" "$OUT" | tee "$OUT/tables.md"
