"""Choose the lesion-based grade's operating point and the combination rule on validation images.

    python plugins/drgrade/scripts/calibrate_screen.py \
        runs/detector-idrid/detector/best.safetensors "../shared/data/IDRiD/B. Disease Grading" \
        [--grader runs/grader-idrid-aptos/grader/best.safetensors \
         --grader-data runs/grader-idrid-aptos/manifest.csv] [--write]

The detector's validation images (the hold-out of its training part that it
never trained on, rebuilt from the recipe in its card: same reader, fraction and
seed) are graded from their detections for every score threshold, moderate-DR
count and severe-haemorrhage count of the grid; the setting with the highest
quadratic kappa is chosen (ties: the first in grid order). With ``--grader``,
the combination rules (``classifier``, ``lesions``, ``max``) are compared on the
grader's validation images that the detector never trained on (the detector's
own validation images, IDRiD images without boxes, APTOS), per data set and
together; a rule other than ``classifier`` is only recommended when at least
``MIN_SHARED`` such images exist and it beats the classifier's kappa on all of
them together. No test image is read. ``--write`` stores the
chosen detector options and the grid's result in the detector's card.
One JSON object per line on stdout: each grid row's best, then the choice.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from eyescan.api import EyescanError, get_registry, imageio, metrics, read_task_split, weights
from eyescan.api import models as loading
from eyescan_drgrade.data import fundus_item
from eyescan_drgrade.inference import predict_items
from eyescan_drgrade.lesions import N_GRADES, grade_from_lesions, lesion_summary
from eyescan_drgrade.training import validation_split

THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
MODERATE = tuple(range(1, 11))
SEVERE = (3, 5, 8, 10, 15, 20, 30)
#: Fewest validation images unseen by both models on which a combination rule is chosen.
MIN_SHARED = 30


def training_parts(card: dict[str, Any], data: Path, keep: Any) -> tuple[list[Any], list[Any]]:
    """The (trained on, validation) images of the model whose ``card`` this is, rebuilt
    as training made them (same reader, split rule, fraction and seed)."""
    recipe = card["training"]["recipe"]
    samples = [s for s in read_task_split("drgrade", data, {}, "train").samples if keep(s)]
    kept, held, _ = validation_split(
        samples, float(recipe["extra"]["val_fraction"]), recipe["seed"]
    )
    return kept, held


def predictions(module: Any, samples: list[Any], batch: int = 8) -> list[Any]:
    out = []
    for begin in range(0, len(samples), batch):
        chunk = samples[begin : begin + batch]
        out += predict_items(module, [fundus_item(imageio.read_image(s.image)) for s in chunk])
    return out


def lesion_grades(found: list[dict[str, Any]], threshold: float, moderate: int, severe: int):
    grades = []
    for f in found:
        keep = np.asarray(f["scores"]) >= threshold
        names = [n for n, k in zip(f["labels"], keep) if k]
        counts = lesion_summary(names, np.asarray(f["boxes"]).reshape(-1, 4)[keep])["counts"]
        grades.append(grade_from_lesions(counts, severe, moderate))
    return np.asarray(grades, int)


def kappa(truth: np.ndarray, predicted: np.ndarray) -> float:
    return float(metrics.quadratic_kappa(truth, predicted, labels=list(range(N_GRADES))))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("detector", type=Path)
    parser.add_argument("data", type=Path, help="the detector's training data (IDRiD part B)")
    parser.add_argument("--grader", type=Path)
    parser.add_argument("--grader-data", type=Path, help="the grader's training data")
    parser.add_argument("--write", action="store_true", help="store the choice in the card")
    args = parser.parse_args(argv)
    registry = get_registry()
    try:
        detector = loading.load_companion(
            registry, "drgrade", "detector", "detector", args.detector
        )
        trained, held = training_parts(
            detector.card, args.data, lambda s: s.boxes is not None and s.label is not None
        )
        found = [p.arrays["detections"] for p in predictions(detector.module, held)]
    except EyescanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    truth = np.asarray([s.label for s in held], int)
    rows = []
    for threshold, moderate, severe in itertools.product(THRESHOLDS, MODERATE, SEVERE):
        graded = lesion_grades(found, threshold, moderate, severe)
        rows.append((kappa(truth, graded), threshold, moderate, severe))
    best = max(rows, key=lambda r: r[0])  # max keeps the first of equal rows
    for threshold in THRESHOLDS:
        top = max((r for r in rows if r[1] == threshold), key=lambda r: r[0])
        print(
            json.dumps(
                {
                    "score_threshold": threshold,
                    "kappa": round(top[0], 4),
                    "moderate_lesions": top[2],
                    "severe_haemorrhages": top[3],
                }
            )
        )
    chosen = {
        "score_threshold": best[1],
        "moderate_lesions": best[2],
        "severe_haemorrhages": best[3],
    }
    calibration: dict[str, Any] = {
        "images": len(held),
        "ids": sorted(s.id for s in held),
        "rule": "detector validation images (never trained on), highest quadratic kappa",
        "grid": {
            "score_threshold": THRESHOLDS,
            "moderate_lesions": MODERATE,
            "severe_haemorrhages": SEVERE,
        },
        "chosen": chosen,
        "lesion_grade_kappa": round(best[0], 4),
    }
    if args.grader is not None:
        known = {image_key(s): f for s, f in zip(held, found)}  # detected once
        calibration["combination"] = combination(
            args, registry, detector.module, trained, known, chosen
        )
    print(json.dumps(calibration))
    if args.write:
        options = {**detector.card.get("model_options", {}), **chosen}
        weights.update_card(args.detector, model_options=options, calibration=calibration)
        print(f"{args.detector}: card updated ({chosen})", file=sys.stderr)
    return 0


def image_key(sample: Any) -> str:
    """A sample's image file, the same whichever reader listed it (manifest or IDRiD)."""
    return str(Path(sample.image).resolve())


def combination(
    args: Any,
    registry: Any,
    detector: Any,
    trained: list[Any],
    known: dict[str, Any],
    chosen: dict,
) -> dict:
    """The rules' kappa on the grader's validation images that the detector never trained
    on (its own validation images, images without boxes, other data sets), per source
    and together, and the recommended rule; ``known``: detections already made, by
    :func:`image_key`."""
    grader = loading.load_companion(registry, "drgrade", "grader", "grader", args.grader)
    _, grader_held = training_parts(
        grader.card, args.grader_data or args.data, lambda s: s.label is not None
    )
    seen = {image_key(s) for s in trained}
    unseen = [s for s in grader_held if image_key(s) not in seen]
    out: dict[str, Any] = {"images": len(unseen), "min_images": MIN_SHARED}
    if not unseen:
        out["recommended"] = "classifier"
        return out
    truth = np.asarray([s.label for s in unseen], int)
    by_classifier = np.asarray(
        [p.values["grade_classifier"] for p in predictions(grader.module, unseen)]
    )
    missing = [s for s in unseen if image_key(s) not in known]
    known = {**known, **{image_key(s): p.arrays["detections"]
                         for s, p in zip(missing, predictions(detector, missing))}}  # fmt: skip
    found = [known[image_key(s)] for s in unseen]
    by_lesions = lesion_grades(
        found, chosen["score_threshold"], chosen["moderate_lesions"], chosen["severe_haemorrhages"]
    )
    rules = {
        "classifier": by_classifier,
        "lesions": by_lesions,
        "max": np.maximum(by_classifier, by_lesions),
    }
    out["kappa"] = {name: round(kappa(truth, grades), 4) for name, grades in rules.items()}
    sources = np.asarray([str(getattr(s, "source", None)) for s in unseen])
    out["by_source"] = {
        source: {
            "images": int((sources == source).sum()),
            **{
                name: round(kappa(truth[sources == source], grades[sources == source]), 4)
                for name, grades in rules.items()
            },
        }
        for source in sorted(set(sources))
    }
    best = max(out["kappa"], key=out["kappa"].get)
    enough = len(unseen) >= MIN_SHARED and out["kappa"][best] > out["kappa"]["classifier"]
    out["recommended"] = best if enough else "classifier"
    return out


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
