#!/usr/bin/env bash
# Stage-2 optimiser variants on the synthetic run (after synthetic_two_stage.sh's stage 1):
# each starts from runs/redlesion-synthetic/stage1 and trains 72 MSE steps; compare their
# validation AUC-PR (metrics.jsonl) to choose the stage-2 recipe.
# Run from the repository root:  nice -n 10 bash plugins/redlesion/scripts/synthetic_stage2_variants.sh
set -euo pipefail
RUN=runs/redlesion-synthetic
BASE=plugins/redlesion/eyescan_redlesion/recipes/synthetic-stage2.json
mkdir -p "$RUN/recipes"
for variant in adam-1e-4:adam:1e-4:0 adam-1e-5:adam:1e-5:0 sgd-0.1:sgd:0.1:0 sgd-0.01:sgd:0.01:0 \
    sgd-0.01-clip1:sgd:0.01:1; do
    IFS=: read -r name optimizer lr clip <<< "$variant"
    python - "$BASE" "$RUN/recipes/$name.json" "$optimizer" "$lr" "$clip" <<'PY'
import json, sys
base, out, optimizer, lr, clip = sys.argv[1:]
recipe = {**json.load(open(base)), "optimizer": optimizer, "lr": float(lr), "momentum": 0.9}
recipe["grad_clip"] = float(clip) or None
json.dump(recipe, open(out, "w"), indent=2)
PY
    [ -f "$RUN/s2-$name/redseg.json" ] || eyescan train redlesion "$RUN/data" \
        --config "$RUN/recipes/$name.json" --out "$RUN/s2-$name"
    python -c "import json,sys; r=json.loads(open(sys.argv[1]).readlines()[-1]); \
print(sys.argv[2], 'val MA AUC-PR %.4f  HE AUC-PR %.4f' % (r['val_ma_auc_pr'], r['val_he_auc_pr']))" \
        "$RUN/s2-$name/metrics.jsonl" "$name"
done
