"""Evaluation of DR graders, lesion detectors and the two together, with 95 % CIs.

Grading: quadratic weighted kappa, accuracy, 5×5 confusion matrix, referable-DR
(grade ≥ 2) sensitivity, specificity and AUC, for the classifier, the
lesion-based grade and their combination. Macular-edema risk (a grader with the
DME head, on images with a DME label): accuracy, quadratic kappa, 3×3 confusion
matrix, and the joint accuracy (grade and risk both right). Detection: mAP@0.5
and per-class and pooled precision / recall at the detector's operating
threshold. Every headline metric gets a percentile-bootstrap interval over
images (``summary["ci95"]``). Never imports ``training.py``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eyescan.api import DataError, bootstrap, imageio, metrics, read_task_split
from eyescan_drgrade.data import fundus_item
from eyescan_drgrade.lesions import (
    DME_LEVELS,
    GRADE_NAMES,
    LESION_CLASSES,
    N_GRADES,
    REFERABLE_GRADE,
    canonical_label,
)

EVAL_BATCH = 16
#: Grading metrics that get a prefix (``lesion_grade_``, ``combined_``) and a CI.
GRADE_KEYS = ("kappa", "accuracy", "referable_sensitivity", "referable_specificity")
#: Pooled detection metrics of the summary (and their CIs).
DETECTION_KEYS = ("map", "detection_precision", "detection_recall")
#: DME-risk metrics of the summary (and their CIs).
DME_KEYS = ("dme_accuracy", "dme_kappa", "joint_accuracy")
IOU = 0.5


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
        out["referable_auc"] = (
            metrics.auc_roc(refer_true, np.asarray(referable_score, float))
            if len(y)
            else float("nan")
        )
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
    ranked = metrics.detection_ap(predictions, truths, iou_threshold=IOU)
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
    operating = metrics.detection_ap(kept, truths, iou_threshold=IOU)
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


def dme_metrics(
    truth: Sequence[int], predicted: Sequence[int], grade_right: Sequence[bool] | None = None
) -> dict[str, Any]:
    """DME-risk accuracy, quadratic weighted kappa (levels 0-2) and 3×3 confusion matrix
    (rows: truth); with ``grade_right`` (the DR grade was right, per image) the joint
    accuracy: both right, as IDRiD's grading challenge scored it."""
    y, p = np.asarray(truth, int), np.asarray(predicted, int)
    out = resample_dme_metrics(y, p, None if grade_right is None else np.asarray(grade_right))
    out["dme_confusion_matrix"] = metrics.confusion_matrix(y, p, DME_LEVELS)
    return out


# -- fast recomputation on resampled images (bootstrap) ---------------------


def kappa_and_accuracy(
    truth: np.ndarray, predicted: np.ndarray, levels: int
) -> tuple[float, float]:
    """Quadratic weighted kappa (from the ``levels``² confusion matrix; NaN when
    undefined) and accuracy of integer labels, in numpy alone (for resamples)."""
    observed = np.zeros((levels, levels))
    np.add.at(observed, (truth, predicted), 1)
    expected = np.outer(observed.sum(1), observed.sum(0)) / len(truth)
    i, j = np.indices(observed.shape)
    weights_ = (i - j) ** 2
    disagreement = (weights_ * expected).sum()
    kappa = 1 - (weights_ * observed).sum() / disagreement if disagreement else float("nan")
    return float(kappa), float((truth == predicted).mean())


def resample_dme_metrics(
    truth: np.ndarray, predicted: np.ndarray, grade_right: np.ndarray | None = None
) -> dict[str, float]:
    """:func:`dme_metrics`' numbers without the matrix (numpy alone, for resamples)."""
    nan = float("nan")
    out = {"dme_accuracy": nan, "dme_kappa": nan}
    if grade_right is not None:
        out["joint_accuracy"] = nan
    if not len(truth):
        return out
    out["dme_kappa"], out["dme_accuracy"] = kappa_and_accuracy(truth, predicted, DME_LEVELS)
    if grade_right is not None:
        out["joint_accuracy"] = float(((truth == predicted) & grade_right).mean())
    return out


def resample_grade_metrics(
    truth: np.ndarray, predicted: np.ndarray, referable_score: np.ndarray | None = None
) -> dict[str, float]:
    """:func:`grade_metrics`' headline numbers in numpy alone (kappa from the confusion
    matrix, AUC from ranks): equal values, about 50 times faster, for 1000 resamples."""
    nan = float("nan")
    y, p = np.asarray(truth, int), np.asarray(predicted, int)
    out = dict.fromkeys(("kappa", "accuracy", "referable_sensitivity"), nan)
    out["referable_specificity"] = nan
    if referable_score is not None:
        out["referable_auc"] = nan
    if not len(y):
        return out
    out["kappa"], out["accuracy"] = kappa_and_accuracy(y, p, N_GRADES)
    refer, called = y >= REFERABLE_GRADE, p >= REFERABLE_GRADE
    if refer.any():
        out["referable_sensitivity"] = float((called & refer).sum() / refer.sum())
    if (~refer).any():
        out["referable_specificity"] = float((~called & ~refer).sum() / (~refer).sum())
    if referable_score is not None and refer.any() and (~refer).any():
        from scipy.stats import rankdata

        ranks = rankdata(np.asarray(referable_score, float))
        n_pos, n_neg = refer.sum(), (~refer).sum()
        out["referable_auc"] = float(
            (ranks[refer].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
        )
    return out


# -- evaluate ---------------------------------------------------------------


def _prefixed(prefix: str, values: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {f"{prefix}{k}": values[k] for k in keys if k in values}


def _truth_boxes(sample: Any) -> dict[str, Any]:
    names = [canonical_label(n) for n in sample.boxes.labels]
    return {
        "boxes": np.asarray([b for b, n in zip(sample.boxes.boxes, names) if n], float).reshape(
            -1, 4
        ),
        "labels": [n for n in names if n],
    }


def _headline(
    rows: dict[str, np.ndarray],
    matches: list[Any],
    parts: tuple[bool, bool, bool],
    threshold: float,
):
    """``compute(indices)`` of the headline metrics on resampled images (bootstrap);
    ``parts``: (grades and a grader, grades and a detector, DME labels and a DME head)."""
    has_grader, has_detector, has_dme = parts

    def compute(idx: np.ndarray) -> dict[str, float]:
        with warnings.catch_warnings():  # one-grade resamples: kappa undefined (NaN, left out)
            warnings.simplefilter("ignore")
            return _compute(idx)

    def _compute(idx: np.ndarray) -> dict[str, float]:
        out: dict[str, float] = {}
        graded = idx[rows["truth"][idx] >= 0]
        truth = rows["truth"][graded]
        if has_grader:
            out.update(resample_grade_metrics(truth, rows["classifier"][graded], rows["p"][graded]))
        if has_detector:
            m = resample_grade_metrics(truth, rows["lesions"][graded])
            out.update(_prefixed("lesion_grade_", m, GRADE_KEYS))
        if has_grader and has_detector:
            m = resample_grade_metrics(truth, rows["final"][graded])
            out.update(_prefixed("combined_", m, GRADE_KEYS))
        if has_dme:
            known = idx[rows["dme_truth"][idx] >= 0]
            right = rows["classifier"][known] == rows["truth"][known]
            out.update(resample_dme_metrics(rows["dme_truth"][known], rows["dme"][known], right))
        chosen = [matches[i] for i in idx if matches[i] is not None]
        if chosen:
            pooled = metrics.pooled_detection(chosen, threshold)
            out.update({k: v for k, v in pooled.items() if k != "ap"})
        return out

    return compute


def evaluate(model: Any, data: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Grading metrics (classifier, lesion-based, combined) and detection metrics of
    one split (``options["split"]``, default test; data without splits: the core's
    hold-out), each headline metric with a 95 % bootstrap CI over images."""
    from eyescan_drgrade.inference import predict_items, predict_settings
    from eyescan_drgrade.models import parts

    split = options.get("split") or "test"
    chosen = read_task_split("drgrade", data, options, split)
    samples = chosen.samples
    module = model.module
    grader, detector = parts(module)
    settings = predict_settings(module)
    per_image, predictions, truths, matches, probabilities = [], [], [], [], []
    rows: dict[str, list] = {
        "truth": [],
        "classifier": [],
        "lesions": [],
        "final": [],
        "p": [],
        "dme_truth": [],
        "dme": [],
    }
    for begin in range(0, len(samples), EVAL_BATCH):
        chunk = samples[begin : begin + EVAL_BATCH]
        items = [fundus_item(imageio.read_image(sample.image)) for sample in chunk]
        for sample, prediction in zip(chunk, predict_items(module, items)):
            values = prediction.values
            dme_true = getattr(sample, "dme", None)
            record = {"id": sample.id, "input": str(sample.image), "grade_true": sample.label}
            if dme_true is not None:
                record["dme_true"] = dme_true
            record.update({k: v for k, v in values.items() if not isinstance(v, (dict, list))})
            graded = sample.label is not None
            rows["truth"].append(sample.label if graded else -1)
            rows["final"].append(values["grade"])
            rows["classifier"].append(values.get("grade_classifier", -1))
            rows["lesions"].append(values.get("grade_lesions", -1))
            rows["p"].append(values.get("referable_probability", np.nan))
            known = graded and dme_true is not None and "dme_risk" in values
            rows["dme_truth"].append(dme_true if known else -1)
            rows["dme"].append(values.get("dme_risk", -1))
            if graded and grader is not None:
                probabilities.append(values["probabilities"])
            match = None
            if detector is not None and getattr(sample, "boxes", None) is not None:
                predictions.append(prediction.arrays["detections"])
                truths.append(_truth_boxes(sample))
                match = metrics.match_detections(predictions[-1], truths[-1], IOU)
                record["lesions_true"] = len(truths[-1]["labels"])
                record["lesions_found"] = len(values["lesions"])
            matches.append(match)
            per_image.append(record)
        if options.get("on_event"):
            options["on_event"]({"event": "images", "done": begin + len(chunk)})
    table = {k: np.asarray(v, dtype=float if k == "p" else int) for k, v in rows.items()}
    graded_idx = table["truth"] >= 0
    truth = table["truth"][graded_idx]
    summary: dict[str, Any] = {
        "data": str(data),
        "reader": chosen.reader,
        "split": split,
        "data_split": chosen.info,
        "images": len(samples),
        "graded_images": int(graded_idx.sum()),
        "annotated_images": len(truths),
    }
    if not len(truth) and not truths:
        raise DataError(
            f"{data}: nothing to score in split {split!r} (a grader needs grades, "
            "a detector lesion boxes)"
        )
    has_grader = bool(len(truth)) and grader is not None
    has_detector = bool(len(truth)) and detector is not None
    if has_grader:
        m = grade_metrics(truth, table["classifier"][graded_idx], table["p"][graded_idx])
        m.pop("n")
        summary.update(m)
    if has_detector:
        lesion = grade_metrics(truth, table["lesions"][graded_idx])
        summary.update(_prefixed("lesion_grade_", lesion, GRADE_KEYS))
        summary["lesion_grade_confusion_matrix"] = lesion["confusion_matrix"]
    if has_grader and has_detector:
        summary["combine"] = settings["combine"]
        combined = grade_metrics(truth, table["final"][graded_idx])
        summary.update(_prefixed("combined_", combined, GRADE_KEYS))
    dme_idx = table["dme_truth"] >= 0
    has_dme = bool(dme_idx.any())
    summary["dme_images"] = int(dme_idx.sum())
    if has_dme:
        right = table["classifier"][dme_idx] == table["truth"][dme_idx]
        summary.update(dme_metrics(table["dme_truth"][dme_idx], table["dme"][dme_idx], right))
    threshold = detector.score_threshold if detector is not None else 0.5
    if truths:
        found = detection_metrics(predictions, truths, threshold)
        found["detection_precision"] = found.pop("precision")
        found["detection_recall"] = found.pop("recall")
        summary.update(found)
    compute = _headline(table, matches, (has_grader, has_detector, has_dme), threshold)
    bootstrap.with_ci(summary, len(samples), compute)
    result: dict[str, Any] = {"summary": summary, "images": per_image}
    if has_grader:
        result["scores"] = {
            "y_true": [int(t) for t in truth],
            "y_prob": probabilities,
            "classes": list(GRADE_NAMES),
        }
    return result
