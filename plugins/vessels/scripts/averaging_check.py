"""Does averaging close the gap to the accuracy goal? A diagnostic, not a shipped feature.

    python plugins/vessels/scripts/averaging_check.py [DATA] [MODEL ...]

Evaluates the shipped weights of each MODEL (default: every shipped one) on the
DRIVE test images inside the FOV (pixels pooled, threshold 0.5, as ``eyescan
evaluate``), alone and averaged: every combination of the models, each with
and without horizontal-flip test-time augmentation (probability of the image
and of its mirror image, averaged). Prints one Markdown row per variant.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np


def main(data: Path, names: list[str]) -> None:
    from eyescan.api import get_registry, metrics, models
    from eyescan_vessels.data import load_sample, read_data
    from eyescan_vessels.inference import THRESHOLD, probability_map

    registry = get_registry()
    task = registry.task("vessels")
    shipped = [e.name for e in registry.models_for("vessels") if task.default_weights(e.name)]
    names = names or shipped
    modules = {name: models.load(registry, "vessels", name).module for name in names}
    chosen, threshold = read_data(registry, data, "test", {})
    truth, scores = [], {(name, flip): [] for name in names for flip in (False, True)}
    for sample in chosen.samples:
        loaded = load_sample(sample, threshold)
        truth.append(loaded.vessels[loaded.fov])
        mirrored = np.ascontiguousarray(loaded.image[:, ::-1])
        for name, module in modules.items():
            scores[name, False].append(probability_map(module, loaded.image)[loaded.fov])
            flipped = probability_map(module, mirrored)[:, ::-1]
            scores[name, True].append(flipped[loaded.fov])
    pooled_truth = np.concatenate(truth)
    pooled = {key: np.concatenate(value) for key, value in scores.items()}
    print("| models averaged | h-flip TTA | forward passes | AUC-ROC | F1 |")
    print("| --- | --- | --- | --- | --- |")
    for count in range(1, len(names) + 1):
        for combo in itertools.combinations(names, count):
            for tta in (False, True):
                keys = [(n, False) for n in combo] + [(n, True) for n in combo if tta]
                score = np.mean([pooled[key] for key in keys], axis=0)
                m = metrics.binary_metrics(pooled_truth, score, threshold=THRESHOLD)
                print(
                    f"| {' + '.join(combo)} | {'yes' if tta else 'no'} | {len(keys)} "
                    f"| {m['auc_roc']:.4f} | {m['f1']:.4f} |"
                )


if __name__ == "__main__":
    args = sys.argv[1:]
    main(Path(args[0] if args else "../shared/data/DRIVE"), args[1:])
