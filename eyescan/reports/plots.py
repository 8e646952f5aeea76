"""Evaluation figures (matplotlib, headless Agg backend), written as PNG files.

Made from whatever an ``evaluate`` result holds (see docs/reports.md):

- ``result["curves"]`` (segmentation, pooled pixels): ``{"roc": {"fpr", "tpr", "auc"},
  "pr": {"recall", "precision", "auc"}}`` → ROC and PR curves;
- ``result["scores"]`` (classifiers): ``{"y_true": [int...], "y_prob": [[p...]...],
  "classes": [name...]}`` (``classes`` optional) → ROC and PR curves (one vs rest),
  confusion matrix and calibration plot;
- ``result["images"]`` → a table of the per-image metrics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

#: Most rows drawn in the per-image table figure (the HTML report has them all).
TABLE_ROWS = 25
#: Points kept on a curve (enough for a smooth line, small in JSON).
CURVE_POINTS = 200


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    return pyplot


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def thin(x: np.ndarray, y: np.ndarray, points: int = CURVE_POINTS) -> tuple[list, list]:
    """At most ``points`` evenly spaced points of a curve (ends kept), as lists."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) > points:
        keep = np.unique(np.linspace(0, len(x) - 1, points).round().astype(int))
        x, y = x[keep], y[keep]
    return x.tolist(), y.tolist()


def binary_curves(y_true: np.ndarray, score: np.ndarray) -> dict[str, dict[str, Any]]:
    """ROC and PR points (thinned) with their areas, in the ``result["curves"]`` layout."""
    from sklearn.metrics import auc, average_precision_score, roc_curve
    from sklearn.metrics import precision_recall_curve as pr_curve

    y_true, score = np.asarray(y_true).astype(int), np.asarray(score, float)
    if len(np.unique(y_true)) < 2:
        return {}
    fpr, tpr, _ = roc_curve(y_true, score)
    precision, recall, _ = pr_curve(y_true, score)
    fx, fy = thin(fpr, tpr)
    rx, ry = thin(recall, precision)
    return {
        "roc": {"fpr": fx, "tpr": fy, "auc": float(auc(fpr, tpr))},
        "pr": {"recall": rx, "precision": ry, "auc": float(average_precision_score(y_true, score))},
    }


def _class_curves(scores: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per-class (one vs rest) curves of a classifier's scores; binary: the positive class."""
    y_true = np.asarray(scores["y_true"]).astype(int)
    prob = np.asarray(scores["y_prob"], float)
    if prob.ndim == 1:
        prob = np.stack([1 - prob, prob], axis=1)
    names = _class_names(scores, prob.shape[1])
    wanted = [1] if prob.shape[1] == 2 else range(prob.shape[1])
    curves = {}
    for k in wanted:
        found = binary_curves(y_true == k, prob[:, k])
        if found:
            curves[names[k]] = found
    return curves


def _class_names(scores: dict[str, Any], n: int) -> list[str]:
    names = [str(c) for c in scores.get("classes") or []]
    return names if len(names) == n else [str(k) for k in range(n)]


def roc_pr_figures(curves: dict[str, dict[str, dict[str, Any]]], out_dir: Path) -> dict[str, Path]:
    """``roc.png`` and ``pr.png``, one line per named curve set, AUC in the legend."""
    plt = _pyplot()
    files = {}
    for kind, (xkey, ykey, xlabel, ylabel, title) in {
        "roc": ("fpr", "tpr", "false positive rate", "true positive rate (sensitivity)", "ROC"),
        "pr": ("recall", "precision", "recall (sensitivity)", "precision", "precision-recall"),
    }.items():
        fig, ax = plt.subplots(figsize=(5, 4.5))
        for name, sets in curves.items():
            if kind in sets:
                c = sets[kind]
                area = "AUC" if kind == "roc" else "AP"
                ax.plot(c[xkey], c[ykey], label=f"{name} ({area} = {c['auc']:.3f})")
        if kind == "roc":
            ax.plot([0, 1], [0, 1], ls=":", color="grey", lw=1)
        ax.set(xlabel=xlabel, ylabel=ylabel, title=title, xlim=(0, 1), ylim=(0, 1.01))
        ax.legend(loc="lower right" if kind == "roc" else "lower left", fontsize=8)
        ax.grid(alpha=0.3)
        files[kind] = _save(fig, out_dir / f"{kind}.png")
    return files


def confusion_figure(scores: dict[str, Any], out_dir: Path) -> Path:
    """``confusion.png``: counts of true vs predicted (argmax) class."""
    plt = _pyplot()
    y_true = np.asarray(scores["y_true"]).astype(int)
    prob = np.asarray(scores["y_prob"], float)
    if prob.ndim == 1:
        prob = np.stack([1 - prob, prob], axis=1)
    n = prob.shape[1]
    matrix = np.zeros((n, n), int)
    np.add.at(matrix, (y_true, prob.argmax(axis=1)), 1)
    names = _class_names(scores, n)
    fig, ax = plt.subplots(figsize=(1.2 + 0.8 * n, 1 + 0.8 * n))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        colour = "white" if count > matrix.max() / 2 else "black"
        ax.text(j, i, str(count), ha="center", va="center", color=colour)
    ax.set(xticks=range(n), yticks=range(n), xticklabels=names, yticklabels=names)
    ax.set(xlabel="predicted", ylabel="true", title="confusion matrix")
    return _save(fig, out_dir / "confusion.png")


def calibration_figure(scores: dict[str, Any], out_dir: Path, bins: int = 10) -> Path:
    """``calibration.png``: observed frequency vs predicted probability (reliability diagram).

    Binary: the positive class's probability; more classes: the top class's
    probability against whether it was right.
    """
    plt = _pyplot()
    y_true = np.asarray(scores["y_true"]).astype(int)
    prob = np.asarray(scores["y_prob"], float)
    if prob.ndim == 1:
        prob = np.stack([1 - prob, prob], axis=1)
    if prob.shape[1] == 2:
        p, hit, what = prob[:, 1], (y_true == 1).astype(float), "positive class"
    else:
        p, hit, what = prob.max(axis=1), (prob.argmax(axis=1) == y_true).astype(float), "top class"
    edges = np.linspace(0, 1, bins + 1)
    index = np.clip(np.digitize(p, edges) - 1, 0, bins - 1)
    used = [b for b in range(bins) if (index == b).any()]
    mean_p = [p[index == b].mean() for b in used]
    freq = [hit[index == b].mean() for b in used]
    ece = sum((index == b).mean() * abs(m - f) for b, m, f in zip(used, mean_p, freq))
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.plot([0, 1], [0, 1], ls=":", color="grey", lw=1, label="perfect calibration")
    ax.plot(mean_p, freq, marker="o", label=f"model (ECE = {ece:.3f})")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), title=f"calibration ({what})")
    ax.set(xlabel="mean predicted probability", ylabel="observed frequency")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, out_dir / "calibration.png")


def table_figure(images: list[dict[str, Any]], out_dir: Path, rows: int = TABLE_ROWS) -> Path:
    """``per_image.png``: the numeric per-image metrics (first ``rows`` images)."""
    plt = _pyplot()
    columns: list[str] = []
    for image in images:
        for key, value in image.items():
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            if numeric and key not in columns:
                columns.append(key)
    columns = columns[:8]
    shown = images[:rows]
    text = [[str(i.get("id", ""))[:24]] + [_number(i.get(c)) for c in columns] for i in shown]
    fig, ax = plt.subplots(figsize=(1.6 + 1.1 * len(columns), 0.6 + 0.28 * (len(shown) + 1)))
    ax.axis("off")
    table = ax.table(cellText=text, colLabels=["image", *columns], loc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    title = "per-image metrics"
    if len(images) > rows:
        title += f" (first {rows} of {len(images)})"
    ax.set_title(title)
    return _save(fig, out_dir / "per_image.png")


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)


def write_plots(result: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """Every figure the result supports, written under ``out_dir``; ``{name: path}``."""
    out_dir = Path(out_dir)
    files: dict[str, Path] = {}
    curves: dict[str, dict[str, dict[str, Any]]] = {}
    if result.get("curves"):
        curves[str(result["curves"].get("label", "pooled pixels"))] = result["curves"]
    scores = result.get("scores")
    if scores and len(scores.get("y_true") or []):
        curves.update(_class_curves(scores))
    if curves:
        files.update(roc_pr_figures(curves, out_dir))
    if scores and len(scores.get("y_true") or []):
        files["confusion"] = confusion_figure(scores, out_dir)
        files["calibration"] = calibration_figure(scores, out_dir)
    if result.get("images"):
        files["per_image"] = table_figure(result["images"], out_dir)
    return files
