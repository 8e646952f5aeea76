"""DR grading and lesion detection metrics (built on ``eyescan.api.metrics``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from eyescan.api import metrics
from eyescan_drgrade.lesions import LESION_CLASSES, N_GRADES, REFERABLE_GRADE


def grade_metrics(
    truth: Sequence[int], predicted: Sequence[int], referable_score: Sequence[float] | None = None
) -> dict[str, Any]:
    """Quadratic weighted kappa, accuracy, 5×5 confusion matrix (rows: truth) and
    referable-DR (grade ≥ 2) sensitivity, specificity and AUC (from ``referable_score``)."""
    y = np.asarray(truth, dtype=int)
    p = np.asarray(predicted, dtype=int)
    labels = list(range(N_GRADES))
    kappa = metrics.quadratic_kappa(y, p, labels=labels) if len(y) else float("nan")
    out: dict[str, Any] = {
        "n": int(len(y)),
        "kappa": kappa,
        "accuracy": float((y == p).mean()) if len(y) else float("nan"),
    }
    refer_true, refer_pred = y >= REFERABLE_GRADE, p >= REFERABLE_GRADE
    rates = metrics.from_confusion(metrics.confusion(refer_true, refer_pred))
    out["referable_sensitivity"] = rates["sensitivity"]
    out["referable_specificity"] = rates["specificity"]
    if referable_score is not None:
        out["referable_auc"] = metrics.auc_roc(refer_true, np.asarray(referable_score, float))
    out["confusion_matrix"] = metrics.confusion_matrix(y, p, N_GRADES)
    return out


def detection_metrics(
    predictions: list[dict[str, Any]], truths: list[dict[str, Any]], score_threshold: float
) -> dict[str, Any]:
    """mAP@0.5 (VOC all-point AP over all detections) and, at ``score_threshold``,
    per-class and pooled precision and recall.

    ``predictions[i]``: ``{"boxes", "labels", "scores"}`` of image ``i``;
    ``truths[i]``: ``{"boxes", "labels"}``. Labels are lesion class names.
    """
    ranked = metrics.detection_ap(predictions, truths, iou_threshold=0.5)
    kept = []
    for pred in predictions:
        keep = np.asarray(pred["scores"], float) >= score_threshold
        kept.append(
            {
                "boxes": np.asarray(pred["boxes"], float).reshape(-1, 4)[keep],
                "labels": [label for label, k in zip(pred["labels"], keep) if k],
                "scores": np.asarray(pred["scores"], float)[keep],
            }
        )
    operating = metrics.detection_ap(kept, truths, iou_threshold=0.5)
    out: dict[str, Any] = {"map": ranked["map"], "score_threshold": score_threshold}
    tp = detections = n_truth = 0.0
    for name in LESION_CLASSES:
        at_all = ranked["per_class"].get(name, {})
        at_op = operating["per_class"].get(name, {})
        truths_n = int(at_op.get("truths", at_all.get("truths", 0)))
        found = int(at_op.get("detections", 0))
        recall = float(at_op.get("recall", 0.0)) if truths_n else float("nan")
        out[f"ap_{name}"] = float(at_all.get("ap", float("nan")))
        out[f"precision_{name}"] = float(at_op["precision"]) if found else float("nan")
        out[f"recall_{name}"] = recall
        out[f"truths_{name}"] = truths_n
        tp += round(recall * truths_n) if truths_n else 0
        detections += found
        n_truth += truths_n
    out["precision"] = float(tp / detections) if detections else float("nan")
    out["recall"] = float(tp / n_truth) if n_truth else float("nan")
    return out
