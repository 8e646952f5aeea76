"""Evaluation metrics shared by every task.

Confusion-matrix metrics are computed here (a few lines of counting);
ranking metrics and kappa come from scikit-learn; lesion-level FROC
(:func:`froc`) from connected components (scipy.ndimage). Every function takes an
optional ``mask``: only pixels/items where it is true count (e.g. the FOV).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def as_bool(values: Any) -> np.ndarray:
    """A canonical boolean array (every True stored as 1): non-zero is True.

    NumPy's view of a Pillow 1-bit image is a bool array whose True bytes are
    255; comparisons and label encoders (sklearn's ``roc_auc_score``) then treat
    those pixels as a third value, so every metric's truth goes through here.
    """
    array = np.asarray(values)
    if array.dtype == bool:
        return array.view(np.uint8) != 0
    return array.astype(bool)


def _select(y_true: Any, y_score: Any, mask: Any | None) -> tuple[np.ndarray, np.ndarray]:
    y_true = as_bool(y_true).ravel()
    y_score = np.asarray(y_score, dtype=np.float64).ravel()
    if y_true.shape != y_score.shape:
        raise ValueError(f"shape mismatch: truth {y_true.shape} vs prediction {y_score.shape}")
    if mask is not None:
        keep = as_bool(mask).ravel()
        y_true, y_score = y_true[keep], y_score[keep]
    return y_true, y_score


def confusion(y_true: Any, y_pred: Any, mask: Any | None = None) -> dict[str, int]:
    """Counts ``tp``, ``tn``, ``fp``, ``fn`` of binary truth vs binary prediction."""
    t, p = _select(y_true, y_pred, mask)
    p = as_bool(p)
    return {
        "tp": int(np.count_nonzero(t & p)),
        "tn": int(np.count_nonzero(~t & ~p)),
        "fp": int(np.count_nonzero(~t & p)),
        "fn": int(np.count_nonzero(t & ~p)),
    }


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else float("nan")


def from_confusion(c: dict[str, int]) -> dict[str, float]:
    """Accuracy, sensitivity, specificity, precision, F1 (= Dice) and IoU from counts."""
    tp, tn, fp, fn = c["tp"], c["tn"], c["fp"], c["fn"]
    return {
        "accuracy": _ratio(tp + tn, tp + tn + fp + fn),
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "precision": _ratio(tp, tp + fp),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "iou": _ratio(tp, tp + fp + fn),
    }


def auc_roc(y_true: Any, y_score: Any, mask: Any | None = None) -> float:
    """Area under the ROC curve (NaN when only one class is present)."""
    from sklearn.metrics import roc_auc_score

    t, s = _select(y_true, y_score, mask)
    if t.all() or not t.any():
        return float("nan")
    return float(roc_auc_score(t, s))


def auc_pr(y_true: Any, y_score: Any, mask: Any | None = None) -> float:
    """Area under the precision-recall curve (average precision)."""
    from sklearn.metrics import average_precision_score

    t, s = _select(y_true, y_score, mask)
    if not t.any():
        return float("nan")
    # sklearn's sum of precision steps can exceed 1 by a rounding error (1.0000000000000002)
    return min(1.0, float(average_precision_score(t, s)))


def rank_auc(y_true: Any, y_score: Any) -> float:
    """AUC-ROC as the Mann-Whitney statistic (ties count one half): sklearn's value
    without its overhead, for a thousand bootstrap resamples. NaN with one class."""
    from scipy.stats import rankdata

    t = as_bool(y_true).ravel()
    s = np.asarray(y_score, dtype=np.float64).ravel()
    n_pos = int(t.sum())
    n_neg = len(t) - n_pos
    if not n_pos or not n_neg:
        return float("nan")
    ranks = rankdata(s)
    return float((ranks[t].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def binary_rates(y_true: Any, y_score: Any, threshold: float = 0.5) -> dict[str, float]:
    """Accuracy, sensitivity, specificity, precision, F1, IoU at ``threshold`` and
    AUC-ROC by ranks: :func:`binary_metrics`' headline values, fast (bootstrap)."""
    t = as_bool(y_true).ravel()
    s = np.asarray(y_score, dtype=np.float64).ravel()
    return {**from_confusion(confusion(t, s >= threshold)), "auc_roc": rank_auc(t, s)}


def binary_metrics(
    y_true: Any, y_score: Any, mask: Any | None = None, threshold: float = 0.5
) -> dict[str, float]:
    """All binary metrics of scores against truth: counts, rates, AUC-ROC, AUC-PR."""
    t, s = _select(y_true, y_score, mask)
    counts = confusion(t, s >= threshold)
    out: dict[str, float] = {**from_confusion(counts), **counts}
    out["auc_roc"] = auc_roc(t, s)
    out["auc_pr"] = auc_pr(t, s)
    out["threshold"] = threshold
    return out


def quadratic_kappa(y_true: Any, y_pred: Any, labels: list[int] | None = None) -> float:
    """Quadratic weighted Cohen's kappa for ordinal grades."""
    from sklearn.metrics import cohen_kappa_score

    return float(
        cohen_kappa_score(
            np.asarray(y_true), np.asarray(y_pred), labels=labels, weights="quadratic"
        )
    )


def confusion_matrix(y_true: Any, y_pred: Any, n_classes: int) -> list[list[int]]:
    """Multi-class confusion matrix as nested lists (rows: truth, columns: prediction)."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return matrix.tolist()


def box_iou(a: Any, b: Any) -> np.ndarray:
    """IoU matrix of boxes ``a`` (N×4) and ``b`` (M×4) in ``x0, y0, x1, y1`` form."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def detection_ap(
    predictions: list[dict[str, Any]], truths: list[dict[str, Any]], iou_threshold: float = 0.5
) -> dict[str, Any]:
    """Pascal-VOC average precision per class (all-point interpolation), as the devkit.

    ``predictions[i]``/``truths[i]`` describe image ``i``: ``{"boxes": N×4,
    "labels": N, "scores": N}`` (no scores in truths). Matching is
    :func:`match_detections` (the devkit's rule). Returns ``{"map": mean AP,
    "per_class": {label: {"ap", "precision", "recall", "truths",
    "detections"}}}``; precision/recall at all detections.
    """
    matches = [match_detections(p, t, iou_threshold) for p, t in zip(predictions, truths)]
    per_class: dict[str, dict[str, float]] = {}
    for name in sorted({c for m in matches for c in m}):
        _, ctp, cfp, n_truth = _ranked([m[name] for m in matches if name in m])
        recall = ctp / n_truth if n_truth else np.zeros_like(ctp)
        precision = ctp / np.maximum(ctp + cfp, 1e-12)
        per_class[name] = {
            "ap": _voc_ap(recall, precision) if n_truth else float("nan"),
            "precision": float(precision[-1]) if len(ctp) else float("nan"),
            "recall": float(recall[-1]) if len(ctp) else 0.0,
            "truths": n_truth,
            "detections": len(ctp),
        }
    aps = [v["ap"] for v in per_class.values() if not np.isnan(v["ap"])]
    return {
        "map": float(np.mean(aps)) if aps else float("nan"),
        "per_class": per_class,
        "iou_threshold": iou_threshold,
    }


#: One image's detections of one class matched to its truths: scores high to low,
#: their true-positive flags, and the number of truth boxes.
Matches = tuple[np.ndarray, np.ndarray, int]


def match_detections(
    prediction: dict[str, Any], truth: dict[str, Any], iou_threshold: float = 0.5
) -> dict[str, Matches]:
    """One image's detections matched to its truths, per class, by the VOC devkit's rule.

    Detections are taken by falling score; each goes to the truth box of its
    class it overlaps most (over all of them, matched or not). It is a true
    positive when that IoU is at least ``iou_threshold`` and the box is still
    free; a second detection of a matched box is a false positive, never
    moved to the next-best box (VOCevaldet.m). The flags of an image do not
    depend on the other images, so a bootstrap resample reuses them and
    :func:`pooled_detection` recomputes AP without matching again. Without
    ``labels`` every box is of one class ``""``.
    """
    out = {}
    t_boxes = np.asarray(truth["boxes"], dtype=np.float64).reshape(-1, 4)
    p_boxes = np.asarray(prediction["boxes"], dtype=np.float64).reshape(-1, 4)
    t_labels = np.asarray(truth.get("labels", [""] * len(t_boxes)), dtype=object).astype(str)
    p_labels = np.asarray(prediction.get("labels", [""] * len(p_boxes)), dtype=object).astype(str)
    p_scores = np.asarray(prediction["scores"], dtype=np.float64)
    for name in sorted({*t_labels, *p_labels}):
        own = t_boxes[t_labels == name] if len(t_labels) else t_boxes[:0]
        mine = p_labels == name if len(p_labels) else np.zeros(0, bool)
        order = np.argsort(-p_scores[mine], kind="stable")
        scores, boxes = p_scores[mine][order], p_boxes[mine][order]
        flags = np.zeros(len(scores))
        if len(own) and len(scores):
            ious = box_iou(boxes, own)
            taken = np.zeros(len(own), bool)
            for k in range(len(scores)):
                j = int(np.argmax(ious[k]))  # the best box, matched or not
                if ious[k, j] >= iou_threshold and not taken[j]:
                    taken[j], flags[k] = True, 1.0
        out[name] = (scores, flags, len(own))
    return out


def _ranked(parts: list[Matches]) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Images' matches of one class pooled by falling score: scores, cumulative true
    and false positives, and the number of truth boxes."""
    scores = np.concatenate([s for s, _, _ in parts])
    flags = np.concatenate([f for _, f, _ in parts])
    order = np.argsort(-scores, kind="stable")
    ctp = np.cumsum(flags[order])
    return scores[order], ctp, np.cumsum(1.0 - flags[order]), sum(n for _, _, n in parts)


def pooled_detection(
    matches: list[dict[str, Matches]], score_threshold: float | None = None
) -> dict[str, Any]:
    """mAP over classes, AP per class and (at ``score_threshold``) pooled precision and
    recall of images' :func:`match_detections` (images may repeat: a resample)."""
    aps: dict[str, float] = {}
    tp, found, n_truth = 0.0, 0, 0
    for name in sorted({c for m in matches for c in m}):
        scores, ctp, cfp, truths = _ranked([m[name] for m in matches if name in m])
        keep = int(np.sum(scores >= (score_threshold if score_threshold is not None else -np.inf)))
        tp += float(ctp[keep - 1]) if keep else 0.0  # scores fall: the kept ones come first
        found += keep
        n_truth += truths
        if truths:
            aps[name] = _voc_ap(ctp / truths, ctp / np.maximum(ctp + cfp, 1e-12))
    return {
        "map": float(np.mean(list(aps.values()))) if aps else float("nan"),
        "ap": aps,
        "detection_precision": tp / found if found else float("nan"),
        "detection_recall": tp / n_truth if n_truth else float("nan"),
    }


def _voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    for i in range(len(p) - 2, -1, -1):
        p[i] = max(p[i], p[i + 1])
    idx = np.flatnonzero(r[1:] != r[:-1])
    return float(np.sum((r[idx + 1] - r[idx]) * p[idx + 1]))


#: False positives per image at which a FROC curve is read (the ROC challenge's seven).
FROC_RATES = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def lesion_candidates(
    score: Any, threshold: float, region: Any | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate lesions of a probability map: the 8-connected components of
    ``score >= threshold`` (inside ``region``), each scored by its maximum.

    Returns the label image (0 = background, component ``k`` labelled ``k``)
    and the scores of components 1..n.
    """
    from scipy import ndimage

    score = np.asarray(score, dtype=np.float64)
    above = score >= threshold
    if region is not None:
        above &= as_bool(region)
    labels, n = ndimage.label(above, structure=_EIGHT_CONNECTED)
    if not n:
        return labels, np.zeros(0)
    return labels, np.asarray(ndimage.maximum(score, labels, np.arange(1, n + 1)), np.float64)


#: One image's FROC evidence: per truth lesion the best score of a candidate hitting
#: it (``-inf`` where none does), and the scores of candidates hitting no lesion.
FrocMatches = tuple[np.ndarray, np.ndarray]


def froc_matches(
    score: Any, boxes: Any, threshold: float, region: Any | None = None, hit: str = "overlap"
) -> FrocMatches:
    """Candidates of one image (:func:`lesion_candidates`) matched to its truth boxes.

    ``boxes`` are ``x0, y0, x1, y1`` in pixels of ``score`` (pixel ``(r, c)``
    covers ``[c, c+1) x [r, r+1)``). With ``hit="overlap"`` a candidate *hits* a
    box when one of its pixels lies in it (one large candidate can hit many
    boxes); with ``hit="peak"`` only when its maximum's pixel does. A box's
    score is the best score of the candidates that hit it, and a candidate
    that hits no box is a false positive. The result depends on this image
    alone, so images' matches pool (and resample).
    """
    from scipy import ndimage

    if hit not in ("overlap", "peak"):
        raise ValueError(f"hit must be 'overlap' or 'peak', not {hit!r}")
    labels, scores = lesion_candidates(score, threshold, region)
    if hit == "peak" and len(scores):
        peaks = ndimage.maximum_position(
            np.asarray(score, np.float64), labels, np.arange(1, len(scores) + 1)
        )
        only_peaks = np.zeros_like(labels)
        for k, (r, c) in enumerate(peaks, start=1):
            only_peaks[r, c] = k
        labels = only_peaks
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    height, width = labels.shape
    hit = np.zeros(len(scores) + 1, bool)
    best = np.full(len(boxes), -np.inf)
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        c0, r0 = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
        c1 = min(width, max(c0 + 1, int(np.ceil(x1))))
        r1 = min(height, max(r0 + 1, int(np.ceil(y1))))
        inside = np.unique(labels[r0:r1, c0:c1])
        inside = inside[inside > 0]
        if inside.size:
            hit[inside] = True
            best[k] = scores[inside - 1].max()
    return best, scores[~hit[1:]]


def froc(matches: list[FrocMatches], rates: tuple[float, ...] = FROC_RATES) -> dict[str, Any]:
    """Free-response ROC of images' :func:`froc_matches` (images may repeat: a resample).

    A lesion counts as found at score threshold ``t`` when a candidate scoring
    ``>= t`` hits it; the false positives at ``t`` are the non-hitting
    candidates scoring ``>= t``. For each rate ``f`` of false positives per
    image the sensitivity is the highest one reached with at most ``f x
    images`` false positives (the curve's steps, not interpolated); it stays
    at the last candidate's value beyond the false positives there are. ``froc``
    is the mean over ``rates``; NaN without lesions.
    """
    n_images = len(matches)
    found = np.concatenate([m[0] for m in matches]) if matches else np.zeros(0)
    false = -np.sort(-np.concatenate([m[1] for m in matches])) if matches else np.zeros(0)
    n_lesions = len(found)
    sensitivities = []
    for rate in rates:
        allowed = int(np.floor(rate * n_images + 1e-9))  # false positives allowed
        # the lowest threshold with at most `allowed` false positives lies just above
        # the (allowed+1)-th highest false-positive score
        cut = false[allowed] if allowed < len(false) else -np.inf
        reached = np.count_nonzero((found > cut) & np.isfinite(found))
        sensitivities.append(reached / n_lesions if n_lesions else float("nan"))
    return {
        "froc": float(np.mean(sensitivities)) if n_lesions else float("nan"),
        "rates": list(rates),
        "sensitivities": [float(s) for s in sensitivities],
        "lesions": n_lesions,
        "images": n_images,
        "false_positives": len(false),
    }


def classification_metrics(
    y_true: Any, probabilities: Any, n_classes: int | None = None
) -> dict[str, Any]:
    """Accuracy, confusion matrix and (binary) Se/Sp/AUC of class probabilities (N×K)."""
    prob = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(y_true, dtype=int)
    k = n_classes or prob.shape[1]
    pred = prob.argmax(axis=1)
    out: dict[str, Any] = {
        "n": int(len(y)),
        "accuracy": float((pred == y).mean()) if len(y) else float("nan"),
        "confusion_matrix": confusion_matrix(y, pred, k),
    }
    if k == 2:
        out.update(binary_metrics(y == 1, prob[:, 1]))
    return out
