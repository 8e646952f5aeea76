"""Lesions as connected components: counts, areas, lesion-level detection, thresholds.

Components are 8-connected (as the synthetic generator guarantees for its
lesions). A truth lesion is *detected* when a predicted pixel touches it; a
predicted component is *true* when it touches a truth pixel.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_EIGHT = np.ones((3, 3), dtype=bool)
#: Probability thresholds of the lesion masks when the model card names none.
DEFAULT_THRESHOLDS = {"ma": 0.5, "he": 0.5}


def card_thresholds(card: dict[str, Any] | None) -> dict[str, float]:
    """The model card's per-lesion thresholds over :data:`DEFAULT_THRESHOLDS`."""
    return {**DEFAULT_THRESHOLDS, **((card or {}).get("thresholds") or {})}


def components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Labels (0 = background) and count of the 8-connected components of ``mask``."""
    from scipy import ndimage

    labels, count = ndimage.label(np.asarray(mask, dtype=bool), structure=_EIGHT)
    return labels, int(count)


def detection_counts(truth: np.ndarray, predicted: np.ndarray) -> dict[str, int]:
    """Truth lesions, detected ones, predicted components and the true ones among them."""
    truth, predicted = np.asarray(truth, bool), np.asarray(predicted, bool)
    truth_labels, n_truth = components(truth)
    pred_labels, n_pred = components(predicted)
    detected = np.unique(truth_labels[predicted & (truth_labels > 0)]).size
    true_pred = np.unique(pred_labels[truth & (pred_labels > 0)]).size
    return {
        "truths": n_truth,
        "detected": int(detected),
        "predicted": n_pred,
        "true_predicted": int(true_pred),
    }


def detection_rates(counts: dict[str, int]) -> dict[str, float]:
    """Lesion-level recall, precision and F1 from :func:`detection_counts` totals."""
    recall = counts["detected"] / counts["truths"] if counts["truths"] else float("nan")
    precision = (
        counts["true_predicted"] / counts["predicted"] if counts["predicted"] else float("nan")
    )
    f1 = (
        2 * precision * recall / (precision + recall)
        if precision + recall > 0
        else (0.0 if counts["truths"] else float("nan"))
    )
    return {"lesion_recall": recall, "lesion_precision": precision, "lesion_f1": f1}


def _curve(truth: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(
        np.asarray(truth, bool).ravel(), np.asarray(score, np.float64).ravel()
    )
    return precision[:-1], recall[:-1], thresholds


def best_f1_threshold(truth: np.ndarray, score: np.ndarray, default: float = 0.5) -> float:
    """The score threshold with the highest pixel F1 (``default`` without positives)."""
    if not np.asarray(truth).any():
        return default
    precision, recall, thresholds = _curve(truth, score)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(thresholds[int(np.argmax(f1))])


def summarise(mask: np.ndarray, prob: np.ndarray, region: np.ndarray) -> dict[str, Any]:
    """Count, area and area fraction (of ``region``) of one lesion type's mask."""
    _, count = components(mask)
    area = int(np.count_nonzero(mask))
    region_pixels = int(np.count_nonzero(region))
    return {
        "count": count,
        "area_px": area,
        "area_fraction": area / region_pixels if region_pixels else 0.0,
        "max_probability": float(prob[region].max()) if region_pixels else 0.0,
    }
