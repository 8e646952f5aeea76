#!/usr/bin/env bash
# Synthetic-data experiment (no real ROP data here): 5-fold cross-validation of the
# MS-ROP teacher, MobileNetV2 trained alone and MN-ROP distilled, for both stages, on
# the same patient-grouped folds. Prints the seed's metric table.
#
#   nice -n 10 bash plugins/rop/scripts/synthetic_experiment.sh [OUT]
#
# RUN_FOLDS=3 runs only the first 3 of the 5 folds (the table says so); rerunning
# resumes, skipping finished folds. On a machine shared with other jobs,
# OMP_NUM_THREADS=1 is much faster than 2 threads.
set -euo pipefail
OUT=${1:-runs/rop-synthetic}
HERE=$(cd "$(dirname "$0")/.." && pwd)
start=$(date +%s)
if [ ! -f "$OUT/data/manifest.csv" ]; then
    python "$HERE/scripts/make_synthetic.py" "$OUT/data" --patients 100 --photos 2 --size 128
fi
RECIPE="$HERE/eyescan_rop/recipes/cv5-synthetic.json"
if [ -n "${RUN_FOLDS:-}" ]; then
    mkdir -p "$OUT"
    python -c "import json, sys; r = json.load(open(sys.argv[1])); r['run_folds'] = int(sys.argv[2]);
print(json.dumps(r, indent=2))" "$RECIPE" "$RUN_FOLDS" > "$OUT/cv5-recipe.json"
    RECIPE="$OUT/cv5-recipe.json"
fi
# --holdout 0: cross-validation holds out its own folds, so it uses every image.
eyescan train rop "$OUT/data/manifest.csv" --config "$RECIPE" --out "$OUT/cv5" --resume --holdout 0
cat "$OUT/cv5/cv_table.md"
echo "synthetic data; $(( $(date +%s) - start )) s wall in all"
