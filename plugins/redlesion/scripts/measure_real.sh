#!/usr/bin/env bash
# Measure Red-Seg trained by train_real.sh on real photographs: the README's IDRiD tables.
#
#   bash plugins/redlesion/scripts/measure_real.sh [OUT]      (default: runs/redlesion-real)
#   SHIP=1 bash plugins/redlesion/scripts/measure_real.sh     also ships the two-stage model
#
# 1. cv_measure.py: each fold's one-stage (stage1) and two-stage (stage2) model on its
#    held-out training images at the masks' resolution (512-px copy: MA, HE; 1072×712
#    copy: HE), per fold and mean ± sd; the operating thresholds (best pixel F1 on the
#    pooled out-of-fold maps) go into the cards of the models trained on all 54 images;
# 2. those two models on the official test set 55–81 (boxes only): FROC and image AUC;
# 3. the two-stage model on IDRiD part B's 103 test photographs (another image set, with
#    grades and CODRAS boxes): image-level AUCs of "has MA / HE / a red lesion"
#    (image_level.py);
# 4. readme_tables.py prints the tables (OUT/tables.md).
# Run from the repository root with the venv active (~10 minutes on 2 cores).
set -euo pipefail
DATA=${DATA:-../shared/data}
OUT=${1:-runs/redlesion-real}
GRADING="$DATA/IDRiD/B. Disease Grading"
BOXES="$DATA/IDRiD/A. Segmentation (partial copies)/all-81-1024px-letterboxed-yolo"
SCRIPTS=plugins/redlesion/scripts
WEIGHTS=plugins/redlesion/eyescan_redlesion/weights
MODEL=redseg-mobilenet
one="$OUT/all/stage1/$MODEL.safetensors"
two="$OUT/all/stage2/$MODEL.safetensors"

python "$SCRIPTS/cv_measure.py" "$OUT" --write-card "$one" "$two" > "$OUT/cv.jsonl"
python "$SCRIPTS/card_sources.py" "$one" "$two" \
    --init-card plugins/drgrade/eyescan_drgrade/weights/fundus-backbone/mobilenet_v3_small.json
if [ "${SHIP:-0}" = 1 ]; then
    cp "$two" "$OUT/all/stage2/$MODEL.json" "$WEIGHTS/"
    two="$WEIGHTS/$MODEL.safetensors"
fi
evaluate() { nice -n 5 eyescan evaluate redlesion "$BOXES" --json "$@"; }
evaluate --weights "$one" --update-card > "$OUT/test-stage1.jsonl"
evaluate --weights "$two" --update-card > "$OUT/test-stage2.jsonl"
nice -n 5 eyescan predict redlesion "$GRADING/1. Original Images/b. Testing Set" \
    --weights "$two" --out "$OUT/grading-test" --resume --json > /dev/null
python "$SCRIPTS/image_level.py" "$OUT/grading-test/predictions.jsonl" "$GRADING" \
    > "$OUT/image-level.json"
python "$SCRIPTS/readme_tables.py" "$OUT" | tee "$OUT/tables.md"
