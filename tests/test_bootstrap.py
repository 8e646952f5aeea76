"""Bootstrap confidence intervals over images."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from eyescan.evaluation import bootstrap


def test_interval_of_a_mean_matches_theory():
    rng = np.random.default_rng(0)
    values = rng.normal(0.8, 0.1, 200)
    ci = bootstrap.bootstrap_ci(len(values), lambda idx: {"mean": values[idx].mean()})
    half = 1.96 * values.std() / np.sqrt(len(values))
    lo, hi = ci["mean"]
    assert lo < values.mean() < hi
    assert abs((hi - lo) / 2 - half) < 0.3 * half


def test_seeded_and_degenerate_cases():
    f = lambda idx: {"m": float(idx.mean())}  # noqa: E731
    assert bootstrap.bootstrap_ci(10, f) == bootstrap.bootstrap_ci(10, f)
    assert bootstrap.bootstrap_ci(1, f) == {"m": None}
    assert bootstrap.bootstrap_ci(5, lambda idx: {"m": float("nan")}) == {"m": None}
    summary = bootstrap.with_ci({"m": 1.0}, 10, f)
    assert "ci95" in summary and "bootstrap" in summary["ci_method"]


def test_pooled_pixel_metrics_from_histograms_match_exact_ones():
    rng = np.random.default_rng(1)
    stats, probs, truths = [], [], []
    for _ in range(6):
        truth = rng.random((32, 32)) < 0.2
        prob = np.clip(truth * 0.5 + rng.random((32, 32)) * 0.6, 0, 1)
        stats.append(bootstrap.pooled_pixel_stats(prob, truth, 0.5))
        probs.append(prob.ravel())
        truths.append(truth.ravel())
    pooled = bootstrap.pixel_metrics(np.sum(stats, axis=0))
    exact = roc_auc_score(np.concatenate(truths), np.concatenate(probs))
    assert abs(pooled["auc_roc"] - exact) < 2e-3
    ci = bootstrap.pixel_ci(stats)
    assert set(ci) >= {"auc_roc", "f1", "sensitivity", "specificity", "accuracy", "auc_pr"}
    assert ci["auc_roc"][0] <= exact + 2e-3 and ci["auc_roc"][1] >= exact - 2e-3


def test_classification_intervals():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 100)
    s = np.clip(y * 0.3 + rng.random(100) * 0.7, 0, 1)
    p = (s > 0.5).astype(int)

    def metrics(yy, ss, pp):
        auc = roc_auc_score(yy, ss) if len(set(yy)) == 2 else float("nan")
        return {"accuracy": float((yy == pp).mean()), "auc": auc}

    ci = bootstrap.classification_ci(y, s, p, metrics)
    assert ci["accuracy"][0] < float((y == p).mean()) < ci["accuracy"][1]
    assert ci["auc"][0] < roc_auc_score(y, s) < ci["auc"][1]
