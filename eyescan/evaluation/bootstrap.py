"""95 % confidence intervals by the bootstrap over images.

Every headline metric of an evaluation summary gets an interval: the
images are resampled with replacement ``resamples`` times (seeded), the
metric is recomputed on each resample, and the 2.5th and 97.5th
percentiles are reported (the percentile bootstrap). Resampling images,
not pixels or boxes, keeps the correlation within an image, so the
interval reflects how few images a test set has.

Pixel-pooled segmentation metrics are recomputed from per-image sufficient
statistics that add up (confusion counts, score histograms), so a thousand
resamples of a pooled AUC cost milliseconds: :func:`pooled_pixel_stats`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from eyescan.evaluation import metrics

RESAMPLES = 1000
LEVEL = 0.95
#: Histogram bins of pixel scores for resampled pooled AUCs (point estimates stay exact):
#: fine enough that scores bunched in a narrow range still rank (16 bits of a probability).
BINS = 8192


def describe(resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL) -> str:
    return (
        f"percentile bootstrap over images, {resamples} resamples, seed {seed}, "
        f"{round(level * 100)} %"
    )


def bootstrap_ci(
    n: int,
    compute: Callable[[np.ndarray], Mapping[str, float]],
    resamples: int = RESAMPLES,
    seed: int = 0,
    level: float = LEVEL,
) -> dict[str, list[float] | None]:
    """``{metric: [low, high]}`` from ``compute(indices)`` on resampled image indices.

    ``compute`` gets an integer array of ``n`` indices drawn with replacement
    and returns the metrics of that resample. A metric that is undefined
    (NaN, e.g. AUC of a one-class resample) in a resample is left out of
    that resample; with fewer than half the resamples defined it gets
    ``None``. Fewer than 2 images: every interval is ``None``.
    """
    if n < 2:
        return {k: None for k in compute(np.arange(n))} if n else {}
    rng = np.random.default_rng(seed)
    return percentile_intervals([compute(rng.integers(0, n, n)) for _ in range(resamples)], level)


def percentile_intervals(
    resampled: Sequence[Mapping[str, float]], level: float = LEVEL
) -> dict[str, list[float] | None]:
    """``[low, high]`` per metric from the metrics of each resample (NaNs left out)."""
    values: dict[str, list[float]] = {}
    for scores in resampled:
        for key, value in scores.items():
            values.setdefault(key, []).append(float(value))
    alpha = (1.0 - level) / 2.0
    out: dict[str, list[float] | None] = {}
    for key, vals in values.items():
        finite = np.asarray([v for v in vals if np.isfinite(v)])
        if len(finite) < len(resampled) / 2:
            out[key] = None
            continue
        low, high = np.quantile(finite, [alpha, 1.0 - alpha])
        out[key] = [round(float(low), 4), round(float(high), 4)]
    return out


def with_ci(
    summary: dict[str, Any],
    n: int,
    compute: Callable[[np.ndarray], Mapping[str, float]],
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """``summary`` plus ``ci95`` (per metric) and ``ci_method``; returns it."""
    summary["ci95"] = bootstrap_ci(n, compute, resamples, seed)
    summary["ci_method"] = describe(resamples, seed)
    return summary


def per_image_ci(
    rows: Sequence[Mapping[str, Any]], keys: Sequence[str], resamples: int = RESAMPLES
) -> dict[str, list[float] | None]:
    """Intervals of means of per-image values (``rows[i][key]``), NaNs ignored."""
    table = np.asarray([[float(r.get(k, np.nan)) for k in keys] for r in rows], dtype=float)

    def compute(idx: np.ndarray) -> dict[str, float]:
        sub = table[idx]
        with np.errstate(all="ignore"):
            means = [
                np.nanmean(sub[:, j]) if np.isfinite(sub[:, j]).any() else np.nan
                for j in range(len(keys))
            ]
        return dict(zip(keys, means))

    return bootstrap_ci(len(rows), compute, resamples)


def pooled_pixel_stats(prob: np.ndarray, truth: np.ndarray, threshold: float) -> np.ndarray:
    """One image's additive statistics: [TP, FP, FN, TN, pos-hist…, neg-hist…]."""
    prob = np.asarray(prob, dtype=np.float64).ravel()
    truth = metrics.as_bool(truth).ravel()
    pred = prob >= threshold
    tp = float(np.sum(pred & truth))
    fp = float(np.sum(pred & ~truth))
    fn = float(np.sum(~pred & truth))
    tn = float(np.sum(~pred & ~truth))
    bins = np.clip((prob * BINS).astype(np.int64), 0, BINS - 1)
    pos = np.bincount(bins[truth], minlength=BINS)
    neg = np.bincount(bins[~truth], minlength=BINS)
    return np.concatenate([[tp, fp, fn, tn], pos, neg]).astype(np.float64)


def _histogram_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """AUC-ROC from score histograms (ties within a bin count one half)."""
    n_pos, n_neg = pos.sum(), neg.sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    below = np.cumsum(neg) - neg  # negatives in lower bins
    return float((pos * (below + 0.5 * neg)).sum() / (n_pos * n_neg))


def _histogram_ap(pos: np.ndarray, neg: np.ndarray) -> float:
    """Average precision from score histograms (thresholds at bin edges, high to low)."""
    n_pos = pos.sum()
    if n_pos == 0:
        return float("nan")
    tp = np.cumsum(pos[::-1])
    fp = np.cumsum(neg[::-1])
    precision = tp / np.maximum(tp + fp, 1)
    recall_step = pos[::-1] / n_pos
    return float((precision * recall_step).sum())


def pixel_metrics(stats: np.ndarray) -> dict[str, float]:
    """Pooled metrics from summed :func:`pooled_pixel_stats` rows."""
    tp, fp, fn, tn = stats[:4]
    pos, neg = stats[4 : 4 + BINS], stats[4 + BINS :]
    with np.errstate(all="ignore"):
        return {
            "auc_roc": _histogram_auc(pos, neg),
            "auc_pr": _histogram_ap(pos, neg),
            "f1": float(2 * tp / (2 * tp + fp + fn)) if tp + fp + fn else float("nan"),
            "iou": float(tp / (tp + fp + fn)) if tp + fp + fn else float("nan"),
            "precision": float(tp / (tp + fp)) if tp + fp else float("nan"),
            "accuracy": float((tp + tn) / (tp + fp + fn + tn)),
            "sensitivity": float(tp / (tp + fn)) if tp + fn else float("nan"),
            "specificity": float(tn / (tn + fp)) if tn + fp else float("nan"),
        }


def pixel_ci(per_image: Sequence[np.ndarray], resamples: int = RESAMPLES, seed: int = 0):
    """Intervals of pooled pixel metrics from per-image :func:`pooled_pixel_stats`.

    The same resamples as :func:`bootstrap_ci` (same seed), summed as one
    matrix product of resample counts and the per-image table.
    """
    table = np.stack(list(per_image)) if len(per_image) else np.zeros((0, 4 + 2 * BINS))
    n = len(table)
    if n < 2:
        return bootstrap_ci(n, lambda idx: pixel_metrics(table[idx].sum(axis=0)), resamples, seed)
    rng = np.random.default_rng(seed)
    counts = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(resamples)])
    sums = np.concatenate([counts[i : i + 100] @ table for i in range(0, resamples, 100)])
    return percentile_intervals([pixel_metrics(row) for row in sums])


def classification_ci(
    labels: Sequence[int],
    scores: Sequence[Any] | None,
    predictions: Sequence[int],
    metrics: Callable[[np.ndarray, np.ndarray | None, np.ndarray], Mapping[str, float]],
    resamples: int = RESAMPLES,
) -> dict[str, list[float] | None]:
    """Intervals of image-level metrics: ``metrics(labels, scores, predictions)`` per resample."""
    y = np.asarray(labels)
    s = None if scores is None else np.asarray(scores, dtype=float)
    p = np.asarray(predictions)

    def compute(idx: np.ndarray) -> Mapping[str, float]:
        with np.errstate(all="ignore"):
            return metrics(y[idx], None if s is None else s[idx], p[idx])

    return bootstrap_ci(len(y), compute, resamples)
