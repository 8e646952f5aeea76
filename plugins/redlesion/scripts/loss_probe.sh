#!/usr/bin/env bash
# Stage-1 loss probe: the seed's top-k balanced BCE vs weighted BCE, same everything else.
#
#   bash plugins/redlesion/scripts/loss_probe.sh [OUT]      (default: runs/redlesion-loss-probe)
#
# Both train the shipped recipe (recipes/idrid-stage1-cpu.json: MobileNetV3-Small encoder
# from the fundus backbone, FOV at 1024 px, 384-px crops, Adam 1e-3) on fold 0's training
# images of train_real.sh's views (43: 39 trained + 4 validation), 8 epochs of 4 crops an
# image (8 × 78 = 624 steps); top-k with λ0 0.14 decaying every 70 steps (M/S ≈ 10, as the
# seed's schedule shape). Prints each loss's best validation AUC-PR (MA, HE) from its
# metrics.jsonl. Two runs side by side, one thread each: ~6 minutes on 2 cores.
set -euo pipefail
DATA=${DATA:-../shared/data}
OUT=${1:-runs/redlesion-loss-probe}
A="$DATA/IDRiD/A. Segmentation (partial copies)"
RECIPE=plugins/redlesion/eyescan_redlesion/recipes/idrid-stage1-cpu.json
export OMP_NUM_THREADS=1
mkdir -p "$OUT"
python plugins/redlesion/scripts/cv_folds.py "$A/train-512px-cropped" "$OUT/views" > /dev/null
for loss in topk weighted-bce; do
    python - "$RECIPE" "$loss" > "$OUT/$loss.json" <<'PY'
import json, sys
recipe = json.load(open(sys.argv[1]))
recipe.update(loss=sys.argv[2], epochs=8, repeats=4, topk_period=70)
print(json.dumps(recipe, indent=1))
PY
    nice -n 5 eyescan train redlesion "$OUT/views/fold0/train" --config "$OUT/$loss.json" \
        --model redseg-mobilenet --out "$OUT/$loss" --resume --json > "$OUT/$loss-train.jsonl" &
done
wait
python - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
for loss in ("topk", "weighted-bce"):
    rows = [json.loads(l) for l in (out / loss / "metrics.jsonl").read_text().splitlines() if l]
    best = max(rows, key=lambda r: r["val_mean_auc_pr"])
    print(json.dumps({"loss": loss, "epochs": len(rows),
                      "best_epoch": best["epoch"], "val_ma_auc_pr": best["val_ma_auc_pr"],
                      "val_he_auc_pr": best["val_he_auc_pr"]}))
PY
