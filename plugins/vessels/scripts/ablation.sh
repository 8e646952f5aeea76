#!/usr/bin/env bash
# The SCCU-Net ablation (spec vessels.md): train unet, unet-scc, unet-sam, unet-isam and
# sccunet on DRIVE training with one recipe and seed, evaluate each on DRIVE test inside
# the FOV, measure parameters, GFLOPs at 584×565 and CPU images/s, print a Markdown table.
#
#   bash plugins/vessels/scripts/ablation.sh [OUT]        (default OUT: runs/ablation)
#
# Environment overrides (for a smoke run on synthetic data): DATA (default
# ../shared/data/DRIVE), READER (default: detected; "manifest" for a manifest CSV such as
# drive_chase_manifest.py writes), EVAL (data sets scored, space-separated; default DATA;
# each gives OUT/MODEL/test-NAME.jsonl, NAME its folder's name), RECIPE (default
# recipes/ablation-drive-cpu.json), EPOCHS (default:
# the recipe's), MODELS (default: all five), BENCH_ARGS (default: --size 576, i.e. about
# DRIVE's 584×565 pixels; the benchmark's input is square), SHIPPED (models whose shipped
# weights, trained with the same recipe, are evaluated instead of training them again;
# e.g. SHIPPED=unet).
# Each training takes about 40 minutes on the 2-core CPU; reruns resume unfinished runs
# and skip finished steps (delete OUT/MODEL to redo one). Run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/../../.."
if [ -f .venv/bin/activate ]; then . .venv/bin/activate; fi  # else: the current environment
OUT=${1:-runs/ablation}
DATA=${DATA:-../shared/data/DRIVE}
EVAL=${EVAL:-$DATA}
reader=()
[ -n "${READER:-}" ] && reader=(--reader "$READER")
RECIPE=${RECIPE:-plugins/vessels/eyescan_vessels/recipes/ablation-drive-cpu.json}
MODELS=${MODELS:-unet unet-scc unet-sam unet-isam sccunet}
BENCH_ARGS=${BENCH_ARGS:---size 576}
SHIPPED=" ${SHIPPED:-} "
WEIGHTS=plugins/vessels/eyescan_vessels/weights
epochs=()
[ -n "${EPOCHS:-}" ] && epochs=(--epochs "$EPOCHS")

for m in $MODELS; do
    run="$OUT/$m"
    mkdir -p "$run"
    if [[ "$SHIPPED" == *" $m "* && ! -s "$run/train.json" ]]; then
        cp "$WEIGHTS/$m.safetensors" "$WEIGHTS/$m.json" "$run/"
        echo "{\"weights\": \"$run/$m.safetensors\", \"shipped\": true}" > "$run/train.json"
    fi
    if [ ! -s "$run/train.json" ]; then
        nice -n 10 eyescan train vessels "$DATA" "${reader[@]}" --model "$m" --config "$RECIPE" \
            "${epochs[@]}" --out "$run" --resume --json > "$run/train.json.part"
        mv "$run/train.json.part" "$run/train.json"
    fi
    # the trainer writes OUT/MODEL/MODEL.safetensors (+ .json card) for the best epoch
    for data in $EVAL; do
        scored="$run/test-$(basename "$data").jsonl"
        if [ ! -s "$scored" ]; then
            nice -n 10 eyescan evaluate vessels "$data" --model "$m" \
                --weights "$run/$m.safetensors" --json > "$scored.part"
            mv "$scored.part" "$scored"
        fi
    done
done
# speed last, one model at a time, with the trainings finished (timings on a busy CPU lie)
for m in $MODELS; do
    # shellcheck disable=SC2086  # BENCH_ARGS is a list of options
    eyescan benchmark vessels --model "$m" --weights "$OUT/$m/$m.safetensors" $BENCH_ARGS \
        --json > "$OUT/$m/benchmark.json"
done
# shellcheck disable=SC2086
python plugins/vessels/scripts/ablation_table.py "$OUT" $MODELS | tee "$OUT/table.md"
