"""Evaluation of Red-Seg: pixel P/R/F1/AUC-PR/AUC-ROC per lesion type, lesion-level detection,
and 95 % bootstrap intervals over images for every headline metric.

Pixel metrics pool all pixels of the scored images (the seed's protocol); the
images come from ``api.read_split`` (IDRiD: the official test set; unsplit data:
the core's hold-out), recorded in ``summary["data_split"]``. Intervals resample
images: per-image additive statistics (``api.bootstrap.pooled_pixel_stats``,
lesion component counts) are summed over each resample. Point estimates are
exact; the resampled AUCs and break-even values use the score histograms.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eyescan.api import bootstrap, get_registry, metrics, read_task_split
from eyescan_redlesion.data import LESIONS, LesionSample, load_sample, reader_mask_threshold
from eyescan_redlesion.lesions import (
    break_even,
    card_thresholds,
    detection_counts,
    detection_rates,
)
from eyescan_redlesion.models import lesion_probabilities

#: Lesion-count fields of :func:`detection_counts`, in the order they are stored.
COUNT_KEYS = ("truths", "detected", "predicted", "true_predicted")


def pooled(
    model: torch.nn.Module, samples: list[LesionSample]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """All pixels' truth and probability per lesion type (samples at model scale)."""
    was_training = model.training
    model.eval()
    truth: dict[str, list[np.ndarray]] = {name: [] for name in LESIONS}
    score: dict[str, list[np.ndarray]] = {name: [] for name in LESIONS}
    with torch.no_grad():
        for sample in samples:
            probs = lesion_probabilities(model, sample.image)
            for name in LESIONS:
                truth[name].append(getattr(sample, name).ravel())
                score[name].append(probs[name].ravel())
    model.train(was_training)
    return (
        {k: np.concatenate(v) for k, v in truth.items()},
        {k: np.concatenate(v) for k, v in score.items()},
    )


def histogram_break_even(stats: np.ndarray) -> tuple[float, float]:
    """Precision and recall where they are closest, from summed ``pooled_pixel_stats``."""
    bins = bootstrap.BINS
    pos, neg = stats[4 : 4 + bins][::-1], stats[4 + bins :][::-1]
    n_pos = pos.sum()
    tp, fp = np.cumsum(pos), np.cumsum(neg)
    keep = tp + fp > 0
    if n_pos == 0 or not keep.any():
        return float("nan"), float("nan")
    precision, recall = tp[keep] / (tp[keep] + fp[keep]), tp[keep] / n_pos
    i = int(np.argmin(np.abs(precision - recall)))
    return float(precision[i]), float(recall[i])


def resampled_metrics(
    stats: dict[str, np.ndarray], counts: dict[str, np.ndarray]
) -> Callable[[np.ndarray], dict[str, float]]:
    """``compute(indices)`` of the headline metrics for ``api.bootstrap.bootstrap_ci``.

    ``stats[name]`` holds one ``pooled_pixel_stats`` row per image, ``counts[name]``
    one row of :data:`COUNT_KEYS` per image.
    """

    def compute(idx: np.ndarray) -> dict[str, float]:
        out: dict[str, float] = {}
        for name in LESIONS:
            total = stats[name][idx].sum(axis=0)
            pixel = bootstrap.pixel_metrics(total)
            tp, fp = total[0], total[1]
            even_p, even_r = histogram_break_even(total)
            lesions = dict(zip(COUNT_KEYS, counts[name][idx].sum(axis=0).tolist()))
            out.update(
                {
                    f"{name}_auc_pr": pixel["auc_pr"],
                    f"{name}_auc_roc": pixel["auc_roc"],
                    f"{name}_precision": float(tp / (tp + fp)) if tp + fp else float("nan"),
                    f"{name}_recall": pixel["sensitivity"],
                    f"{name}_f1": pixel["f1"],
                    f"{name}_break_even_precision": even_p,
                    f"{name}_break_even_recall": even_r,
                    **{f"{name}_{k}": v for k, v in detection_rates(lesions).items()},
                }
            )
        return out

    return compute


def evaluate(model: Any, data: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Pixel P/R/F1/AUC-PR per lesion over all pixels of the split, lesion-level detection,
    95 % CIs over images (``ci95``) and the images scored (``data_split``)."""
    registry = get_registry()
    split = options.get("split") or "test"
    chosen = read_task_split("redlesion", Path(data), options, split)
    mask_threshold = reader_mask_threshold(registry, chosen.reader)
    card = model.card or {}
    input_width = (card.get("input") or {}).get("width")
    thresholds = card_thresholds(card)
    per_image: list[dict[str, Any]] = []
    truths: dict[str, list[np.ndarray]] = {n: [] for n in LESIONS}
    scores: dict[str, list[np.ndarray]] = {n: [] for n in LESIONS}
    stats: dict[str, list[np.ndarray]] = {n: [] for n in LESIONS}
    counts: dict[str, list[list[int]]] = {n: [] for n in LESIONS}
    for sample in chosen.samples:
        loaded = load_sample(sample, input_width, mask_threshold)
        probs = lesion_probabilities(model.module, loaded.image)
        row: dict[str, Any] = {"id": sample.id, "input": str(sample.image)}
        for name in LESIONS:
            truth = getattr(loaded, name)
            found = detection_counts(truth, probs[name] >= thresholds[name])
            counts[name].append([found[k] for k in COUNT_KEYS])
            stats[name].append(bootstrap.pooled_pixel_stats(probs[name], truth, thresholds[name]))
            row[f"{name}_truth_count"] = found["truths"]
            row[f"{name}_count"] = found["predicted"]
            row[f"{name}_detected"] = found["detected"]
            row[f"{name}_auc_pr"] = metrics.auc_pr(truth, probs[name])
            truths[name].append(truth.ravel())
            scores[name].append(probs[name].ravel())
        per_image.append(row)
        if options.get("on_event"):
            options["on_event"]({"event": "image", "id": sample.id})
    summary: dict[str, Any] = {
        "data": str(data),
        "reader": chosen.reader,
        "split": split,
        "images": len(chosen.samples),
        "input_width": input_width,
        "region": "all pixels",
    }
    for name in LESIONS:
        truth, score = np.concatenate(truths[name]), np.concatenate(scores[name])
        m = metrics.binary_metrics(truth, score, threshold=thresholds[name])
        even = break_even(truth, score)
        totals = dict(zip(COUNT_KEYS, np.asarray(counts[name]).sum(axis=0).tolist()))
        summary.update(
            {
                f"{name}_auc_pr": m["auc_pr"],
                f"{name}_auc_roc": m["auc_roc"],
                f"{name}_precision": m["precision"],
                f"{name}_recall": m["sensitivity"],
                f"{name}_f1": m["f1"],
                f"{name}_threshold": thresholds[name],
                f"{name}_break_even_precision": even["precision"],
                f"{name}_break_even_recall": even["recall"],
                **{f"{name}_{k}": v for k, v in detection_rates(totals).items()},
                f"{name}_lesions": totals["truths"],
                f"{name}_lesions_detected": totals["detected"],
                f"{name}_components_predicted": totals["predicted"],
            }
        )
    compute = resampled_metrics(
        {n: np.stack(v) for n, v in stats.items()},
        {n: np.asarray(v, np.float64).reshape(-1, len(COUNT_KEYS)) for n, v in counts.items()},
    )
    bootstrap.with_ci(summary, len(chosen.samples), compute)
    summary["data_split"] = chosen.info
    return {"summary": summary, "images": per_image}
