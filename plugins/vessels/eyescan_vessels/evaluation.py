"""Evaluation of vessel models: FOV metrics per image and pooled, with bootstrap CIs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from eyescan.api import DataError, bootstrap, get_registry, metrics
from eyescan_vessels.data import load_sample, read_data
from eyescan_vessels.inference import THRESHOLD, model_scale, photo_probability

#: The summary's headline metrics; each gets a 95 % bootstrap interval over images.
HEADLINE = ("auc_roc", "auc_pr", "f1", "accuracy", "sensitivity", "specificity")


def fov_metrics(prob: np.ndarray, vessels: np.ndarray, fov: np.ndarray) -> dict[str, float]:
    """DRIVE-protocol metrics of one probability map, inside the FOV."""
    return metrics.binary_metrics(vessels, prob, mask=fov, threshold=THRESHOLD)


def evaluate(model: Any, data: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Metrics on the test split inside the FOV: per image and pooled over all pixels.

    ``summary["ci95"]`` holds percentile-bootstrap intervals (images resampled)
    of the pooled metrics; ``summary["data_split"]`` says which images were scored.
    A model whose card has a ``model_scale`` sees each photo resampled to that scale,
    exactly as ``predict`` does (``scale.py``); metrics are at the photo's resolution.
    """
    split = options.get("split") or "test"
    chosen, threshold = read_data(get_registry(), data, split, options)
    per_image, truths, scores, stats, factors = [], [], [], [], []
    target = model_scale(model)
    for sample in chosen.samples:
        loaded = load_sample(sample, threshold)
        prob, factor = photo_probability(
            model.module, loaded.original, loaded.fov, target, loaded.image
        )
        factors.append(factor)
        if prob.shape != loaded.vessels.shape:
            raise DataError(f"{sample.image}: prediction size {prob.shape} != mask size")
        m = fov_metrics(prob, loaded.vessels, loaded.fov)
        per_image.append({"id": sample.id, "input": str(sample.image), **m})
        truths.append(loaded.vessels[loaded.fov])
        scores.append(prob[loaded.fov])
        stats.append(bootstrap.pooled_pixel_stats(scores[-1], truths[-1], THRESHOLD))
        if options.get("on_event"):
            options["on_event"]({"event": "image", "id": sample.id})
    truth, score = np.concatenate(truths), np.concatenate(scores)
    pooled = metrics.binary_metrics(truth, score, threshold=THRESHOLD)
    summary: dict[str, Any] = {
        "data": str(data),
        "reader": chosen.reader,
        "split": split,
        "images": len(chosen.samples),
        "region": "inside FOV",
        "pooled": "all FOV pixels",
        **pooled,
        "data_split": chosen.info,
    }
    if target is not None:  # how the photos were brought to the model's scale
        summary["model_scale"] = {
            "fov_diameter": target,
            "factors": [min(factors), max(factors)],
            "resampled_images": sum(f != 1.0 for f in factors),
        }
    intervals = bootstrap.pixel_ci(stats)
    summary["ci95"] = {key: intervals.get(key) for key in HEADLINE}
    summary["ci_method"] = bootstrap.describe()
    curves = pooled_curves(truth, score, pooled)
    return {"summary": summary, "images": per_image, "curves": curves}


def pooled_curves(
    truth: np.ndarray, score: np.ndarray, pooled: dict[str, float], pixels: int = 200_000
) -> dict[str, Any]:
    """ROC/PR points of the pooled FOV pixels for ``--plots``.

    The points come from a fixed random subsample; the areas are the exact pooled ones.
    """
    from eyescan.api import plots

    if truth.size > pixels:
        keep = np.random.default_rng(0).choice(truth.size, pixels, replace=False)
        truth, score = truth[keep], score[keep]
    curves = plots.binary_curves(truth, score)
    for kind, key in (("roc", "auc_roc"), ("pr", "auc_pr")):
        if kind in curves:
            curves[kind]["auc"] = pooled[key]
    return {"label": "pooled FOV pixels", **curves}
