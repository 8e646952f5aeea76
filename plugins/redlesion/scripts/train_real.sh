#!/usr/bin/env bash
# Train Red-Seg on real photographs: 5-fold cross-validation over the 54 IDRiD training
# images and the model on all 54 that ships, each with two stages (weighted BCE, then MSE; see the README for why not top-k).
#
#   bash plugins/redlesion/scripts/train_real.sh [OUT]      (default: runs/redlesion-real)
#
# Data (DATA, default ../shared/data): the IDRiD part A copies (train-512px-cropped,
# HE-20-1072px). Recipes: recipes/idrid-stage{1,2}-cpu.json (Red-Seg's branches on the
# fundus-pretrained MobileNetV3-Small encoder, the field of view at 1024 px, 384-px crops).
# Six two-stage runs in two lanes, one torch thread each (~21 min a run on this project's
# 2-core CPU, ~65 min in all); reruns resume.
# Then plugins/redlesion/scripts/measure_real.sh scores them.
set -euo pipefail
DATA=${DATA:-../shared/data}
OUT=${1:-runs/redlesion-real}
A="$DATA/IDRiD/A. Segmentation (partial copies)"
RECIPES=${RECIPES:-plugins/redlesion/eyescan_redlesion/recipes}
MODEL=redseg-mobilenet
export OMP_NUM_THREADS=1  # two shared cores: one torch thread per run
mkdir -p "$OUT"
python plugins/redlesion/scripts/cv_folds.py "$A/train-512px-cropped" "$OUT" --he "$A/HE-20-1072px"

two_stage() {  # RUN: trains OUT/RUN/stage1 and OUT/RUN/stage2 on OUT/RUN/train
    local run="$OUT/$1"
    nice -n 5 eyescan train redlesion "$run/train" --config "$RECIPES/idrid-stage1-cpu.json" \
        --model "$MODEL" --out "$run/stage1" --resume --json > "$run/stage1-train.jsonl"
    python - "$RECIPES/idrid-stage2-cpu.json" "$run/stage1/$MODEL.safetensors" \
        > "$run/stage2-recipe.json" <<'PY'
import json, sys
recipe = json.load(open(sys.argv[1]))
print(json.dumps({**recipe, "init_weights": sys.argv[2]}, indent=1))
PY
    nice -n 5 eyescan train redlesion "$run/train" --config "$run/stage2-recipe.json" \
        --out "$run/stage2" --resume --json > "$run/stage2-train.jsonl"
}
lane() { for run in "$@"; do two_stage "$run"; done; }
lane all fold1 fold3 &
lane fold0 fold2 fold4 &
wait
echo "trained: $OUT" >&2
