#!/usr/bin/env bash
# Red-Seg's two-stage training on synthetic lesion data (CPU): one-stage vs two-stage, plus a
# control that continues stage 1 (top-k loss) for as many steps as stage 2 takes.
# Run from the repository root:  nice -n 10 bash plugins/redlesion/scripts/synthetic_two_stage.sh
# Writes runs/redlesion-synthetic/{data,stage1,stage2,stage1-continued,eval_*.jsonl}; steps
# whose outputs exist are skipped (so an interrupted run can be re-run).
# Smoke test at tiny size (from a scratch folder holding a 'plugins' link to the repository's):
#   TRAIN=5 TEST=2 EPOCHS=1 bash plugins/redlesion/scripts/synthetic_two_stage.sh
set -euo pipefail
RUN=runs/redlesion-synthetic  # the stage-2 and control recipes read stage 1 from here
RECIPES=plugins/redlesion/eyescan_redlesion/recipes
EPOCHS_ARG=()
[ -z "${EPOCHS:-}" ] || EPOCHS_ARG=(--epochs "$EPOCHS")
mkdir -p "$RUN"
[ -d "$RUN/data" ] || python plugins/redlesion/scripts/make_synthetic_idrid.py "$RUN/data" \
    --train "${TRAIN:-40}" --test "${TEST:-20}" --height 128 --width 192 --seed 0
for arm in stage1:synthetic-stage1 stage2:synthetic-stage2 \
    stage1-continued:synthetic-stage1-continued; do
    out=${arm%%:*} recipe=${arm#*:}
    [ -f "$RUN/$out/redseg.json" ] || eyescan train redlesion "$RUN/data" \
        --config "$RECIPES/$recipe.json" --out "$RUN/$out" "${EPOCHS_ARG[@]}"
    [ -s "$RUN/eval_$out.jsonl" ] || eyescan evaluate redlesion "$RUN/data" \
        --weights "$RUN/$out/redseg.safetensors" --json > "$RUN/eval_$out.jsonl"
done
python - "$RUN" <<'PY'
import json, sys
run = sys.argv[1]
keys = ["auc_pr", "precision", "recall", "image_auc", "lesion_recall",
        "lesion_precision"]
print("| training | " + " | ".join(f"{l.upper()} {k}" for l in ("ma", "he") for k in keys) + " |")
for arm, label in (("stage1", "one-stage (stage 1)"), ("stage2", "two-stage (stage 1 + 2)"),
                   ("stage1-continued", "control: stage 1 + 72 more top-k steps")):
    s = [json.loads(line) for line in open(f"{run}/eval_{arm}.jsonl")][-1]
    cells = " | ".join(f"{s[f'{l}_{k}']:.4f}" for l in ("ma", "he") for k in keys)
    print(f"| {label} | {cells} |")
PY
