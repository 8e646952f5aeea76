"""Score the 5-fold cross-validation of ``train_real.sh``: pixel AUC-PR per fold and
stage at the masks' resolution, and operating thresholds from the pooled out-of-fold maps.

    python plugins/redlesion/scripts/cv_measure.py OUT [--write-card WEIGHTS ...]

For each fold ``k`` and stage (``stage1``: the one-stage model, ``stage2``: two-stage),
the model trained on ``OUT/fold{k}/train`` scores ``OUT/fold{k}/test`` (the 512-px
copy: MA and HE masks) and ``OUT/fold{k}/test-he`` (01–20 at 1072×712: HE masks).
Each fold's images are scored only by the model that never saw them, so the pooled
maps of all folds are out-of-fold: the thresholds with the best pixel F1 on them are
the operating thresholds that ``--write-card`` records in the cards of the models
trained on all 54 images (never a test image of the official split 55–81).

Prints one JSON object per fold and stage, then one ``{"kind": "cv"}`` object with the
per-stage mean ± sd, the pooled AUC-PR and the thresholds (``measure_real.sh`` keeps
them in ``OUT/cv.jsonl``; ``readme_tables.py`` prints the README's table from it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from eyescan.api import get_registry, metrics, models, read_task_split, weights
from eyescan_redlesion.data import LESIONS, card_view, reader_mask_threshold
from eyescan_redlesion.evaluation import score_image
from eyescan_redlesion.lesions import best_f1_threshold

MODEL = "redseg-mobilenet"
STAGES = ("stage1", "stage2")
FOLDS = 5
#: The views scored per fold and the lesions with pixel truth in each.
VIEWS = {"test": LESIONS, "test-he": ("he",)}


def fold_maps(model, folder: Path) -> dict[str, tuple[list[np.ndarray], list[np.ndarray]]]:
    """Truth and probability pixels (inside the FOV region scored by evaluate: all
    pixels) of each lesion type over the images of ``folder`` that have its mask."""
    registry = get_registry()
    chosen = read_task_split("redlesion", folder, {"split": "train"}, "train")
    mask_threshold = reader_mask_threshold(registry, chosen.reader)
    view = card_view(model.card)
    out: dict[str, tuple[list, list]] = {name: ([], []) for name in LESIONS}
    for sample in chosen.samples:
        scored = score_image(model.module, sample, view, mask_threshold)
        for name in LESIONS:
            if scored.masks[name] is not None:
                out[name][0].append(scored.masks[name].ravel())
                out[name][1].append(scored.probabilities[name].ravel().astype(np.float32))
    return out


def auc_pr(truth: list[np.ndarray], score: list[np.ndarray]) -> float:
    if not truth:
        return float("nan")
    return float(metrics.auc_pr(np.concatenate(truth), np.concatenate(score)))


def mean_sd(values: list[float]) -> dict[str, float | None]:
    v = np.asarray(values, float)
    sd = float(np.std(v, ddof=1)) if len(v) > 1 else None
    return {"mean": float(np.mean(v)), "sd": sd, "folds": len(v)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="train_real.sh's output folder")
    parser.add_argument(
        "--write-card", type=Path, nargs="*", default=[],
        help="weights (all/stage1, all/stage2) whose cards get that stage's thresholds",
    )  # fmt: skip
    args = parser.parse_args(argv)
    registry = get_registry()
    cv: dict = {"kind": "cv", "folds": FOLDS, "stages": {}}
    for stage in STAGES:
        per_fold: dict[str, list[float]] = {}
        pooled: dict[str, tuple[list, list]] = {}
        for k in range(FOLDS):
            run = args.out / f"fold{k}"
            model = models.load(registry, "redlesion", None, run / stage / f"{MODEL}.safetensors")
            row: dict = {"kind": "fold", "fold": k, "stage": stage}
            for view, lesions in VIEWS.items():
                if not (run / view).is_dir():
                    continue
                maps = fold_maps(model, run / view)
                for name in lesions:
                    key = f"{name}_auc_pr" + ("" if view == "test" else "_1072")
                    row[key] = auc_pr(*maps[name])
                    row[key.replace("auc_pr", "images")] = len(maps[name][0])
                    per_fold.setdefault(key, []).append(row[key])
                    if view == "test":
                        pooled.setdefault(name, ([], []))
                        pooled[name][0].extend(maps[name][0])
                        pooled[name][1].extend(maps[name][1])
            print(json.dumps(row), flush=True)
        summary = {key: mean_sd(values) for key, values in per_fold.items()}
        for name, (truth, score) in pooled.items():
            t, s = np.concatenate(truth), np.concatenate(score)
            summary[f"{name}_pooled_auc_pr"] = float(metrics.auc_pr(t, s))
            summary[f"{name}_threshold"] = best_f1_threshold(t, s)
        cv["stages"][stage] = summary
    thresholds = {name: cv["stages"]["stage2"][f"{name}_threshold"] for name in LESIONS}
    cv["thresholds"] = thresholds
    for path in args.write_card:
        stage = "stage1" if "stage1" in path.parts else "stage2"
        chosen = {name: cv["stages"][stage][f"{name}_threshold"] for name in LESIONS}
        weights.update_card(
            path,
            thresholds=chosen,
            thresholds_from="best pixel F1 on the pooled out-of-fold maps of the 5-fold "
            f"cross-validation over the 54 IDRiD training images ({stage} models)",
        )
    print(json.dumps(cv), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
