"""Evaluation of the ROP cascade and the metric tables of cross-validation.

``evaluate`` scores stage 1 on every image of the split, stage 2 on its ROP
images and the cascade's three-class accuracy, each with a 95 % bootstrap
interval over images; the images scored are chosen by the core's split rule
(``summary["data_split"]``). ``summarise``/``markdown_table`` make the seed's
mean ± sd table of k-fold cross-validation (run by ``training.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from eyescan.api import bootstrap, metrics
from eyescan_rop.cascade import STAGE_CLASSES, THRESHOLD, Cascade, positive_probability
from eyescan_rop.data import load_data, stage_targets

#: The seed's table: accuracy, precision, F1, sensitivity, specificity (+ AUC).
METRICS = ("accuracy", "precision", "f1", "sensitivity", "specificity", "auc_roc")
#: Rows of the cross-validation table: ``stage<k>/<role>`` -> name.
ROW_NAMES = {
    "stage1/teacher": "MS-ROP (teacher)",
    "stage1/alone": "MobileNetV2 (no KD)",
    "stage1/distilled": "MN-ROP (distilled)",
    "stage2/teacher": "MS-TR-ROP (teacher)",
    "stage2/alone": "MobileNetV2 TR (no KD)",
    "stage2/distilled": "MN-TR-ROP (distilled)",
}
DIAGNOSIS_CODES = {"normal": 0, "rop": 1, "tr-rop": 2}


def as_float(images: np.ndarray):
    """uint8 N×3×S×S images as a float tensor in [0, 1]."""
    import torch

    return torch.from_numpy(images).float() / 255.0


def predict_positive(module: Any, images: np.ndarray, batch: int = 32) -> np.ndarray:
    """P(class 1) for uint8 N×3×S×S images."""
    parts = [
        positive_probability(module, as_float(images[i : i + batch]))
        for i in range(0, len(images), batch)
    ]
    return np.concatenate(parts) if parts else np.zeros(0)


def binary_scores(y: np.ndarray, prob: np.ndarray) -> dict[str, float]:
    """The seed's table: accuracy, precision, F1, sensitivity, specificity, AUC."""
    m = metrics.binary_metrics(np.asarray(y) == 1, prob, threshold=THRESHOLD)
    return {k: m[k] for k in METRICS}


def fast_scores(y: np.ndarray, prob: np.ndarray) -> dict[str, float]:
    """:func:`binary_scores` from counts and ranks (fast enough for 1000 resamples)."""
    rates = metrics.binary_rates(np.asarray(y) == 1, prob, threshold=THRESHOLD)
    return {k: rates[k] for k in METRICS}


def headline(
    labels: np.ndarray,
    probs: dict[int, np.ndarray],
    predicted: np.ndarray | None,
    scorer=binary_scores,
) -> dict[str, float]:
    """Every headline metric of images ``labels``: per stage, and the cascade's accuracy.

    ``probs[stage]`` holds that stage's P(positive) for every image (stage 2:
    scored on the truly-ROP images); ``predicted`` the cascade's 0/1/2 answers.
    """
    out: dict[str, float] = {}
    for stage, prob in probs.items():
        sel, y = stage_targets(labels, stage)
        if len(sel):
            out.update({f"stage{stage}_{k}": v for k, v in scorer(y, prob[sel]).items()})
    if predicted is not None:
        out["cascade_accuracy"] = float((predicted == labels).mean())
    return out


def evaluate(model: Any, data: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Stage-1 metrics on every image, stage-2 metrics on the ROP images, the cascade's rows.

    Stage 2 is scored on the truly-ROP images (the seed's protocol); the
    per-image rows and ``cascade_accuracy`` (three classes) follow the
    cascade, where stage 2 only sees images that stage 1 calls ROP. Every
    headline metric has a 95 % bootstrap interval over images (``ci95``).
    """
    cascade = Cascade.of(model)
    sizes = [Cascade.size(m) for m in (cascade.stage1, cascade.stage2) if m is not None]
    split = options.get("split") or "test"
    dataset = load_data(data, split, max(sizes), options)
    enhanced = [img.transpose(1, 2, 0).astype(np.float32) / 255.0 for img in dataset.images]
    labels = dataset.labels
    n = len(labels)
    p_rop = Cascade(cascade.stage1, None).probabilities(enhanced)[0]
    p_tr = Cascade(None, cascade.stage2).probabilities(enhanced)[1]
    probs = {
        stage: prob
        for stage, prob, present in ((1, p_rop, cascade.stage1), (2, p_tr, cascade.stage2))
        if present is not None
    }
    rows = []
    for i in range(n):
        ran_stage2 = np.isnan(p_rop[i]) or p_rop[i] >= THRESHOLD
        values = cascade.values(p_rop[i], p_tr[i] if ran_stage2 else np.nan)
        row = {"id": dataset.ids[i], "input": dataset.paths[i], "label": int(labels[i])}
        rows.append({**row, **values})
    predicted = None
    if cascade.stage1 is not None and cascade.stage2 is not None:
        predicted = np.array([DIAGNOSIS_CODES[r["diagnosis"]] for r in rows])
    summary: dict[str, Any] = {
        "data": str(data),
        "reader": dataset.reader,
        "split": split,
        "data_split": dataset.info,
        "images": int(n),
    }
    for stage in probs:
        count = len(stage_targets(labels, stage)[0])
        if count:
            summary[f"stage{stage}_images"] = int(count)
    summary.update(headline(labels, probs, predicted))

    def compute(index: np.ndarray) -> dict[str, float]:
        picked = {stage: prob[index] for stage, prob in probs.items()}
        cascade_answers = None if predicted is None else predicted[index]
        return headline(labels[index], picked, cascade_answers, fast_scores)

    bootstrap.with_ci(summary, n, compute)
    return {"summary": summary, "images": rows, "scores": scores_of(labels, probs)}


def scores_of(labels: np.ndarray, probs: dict[int, np.ndarray]) -> dict[str, Any]:
    """``result["scores"]`` for ``--plots``: stage 1 on every image (else stage 2 on ROP)."""
    stage = 1 if 1 in probs else 2
    sel, y = stage_targets(labels, stage)
    p = probs[stage][sel]
    return {
        "y_true": [int(v) for v in y],
        "y_prob": [[float(1 - v), float(v)] for v in p],
        "classes": list(STAGE_CLASSES[stage]),
        "stage": stage,
    }


def summarise(per_fold: list[dict[str, Any]]) -> dict[str, dict[str, list[float]]]:
    """Mean and sample standard deviation of every metric over folds (NaN-aware)."""
    table = {}
    for row in ROW_NAMES:
        values = {}
        for metric in METRICS:
            xs = np.array([f[row][metric] for f in per_fold], dtype=np.float64)
            ok = xs[~np.isnan(xs)]
            sd = float(np.std(ok, ddof=1)) if len(ok) > 1 else float("nan")
            values[metric] = [float(ok.mean()) if len(ok) else float("nan"), sd]
        table[row] = values
    return table


def format_row(values: dict[str, list[float]]) -> str:
    return "  ".join(f"{m} {values[m][0]:.4f}±{values[m][1]:.4f}" for m in METRICS)


def markdown_table(
    table: dict[str, dict[str, list[float]]], k: int, grouped: bool, run: int | None = None
) -> str:
    """The seed's metric table (mean ± sd over folds), both stages."""
    header = "| model | acc | precision | F1 | sensitivity | specificity | AUC |\n"
    header += "| --- | --- | --- | --- | --- | --- | --- |\n"
    done = "" if run in (None, k) else f" (only {run} of the {k} folds were run)"
    by = "patient" if grouped else "image"
    lines = [f"{k}-fold cross-validation{done}, folds grouped by {by}; mean ± sd over folds\n"]
    for stage, title in ((1, "ROP detection (normal/ROP)"), (2, "TR-ROP detection (non-TR/TR)")):
        lines.append(f"\n{title}:\n\n{header}")
        for row, name in ROW_NAMES.items():
            if row.startswith(f"stage{stage}/"):
                cells = " | ".join(
                    f"{table[row][m][0]:.4f} ± {table[row][m][1]:.4f}" for m in METRICS
                )
                lines.append(f"| {name} | {cells} |\n")
    return "".join(lines)
