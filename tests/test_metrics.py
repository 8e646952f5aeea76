"""Metrics against scikit-learn on random data."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from eyescan import metrics


@pytest.fixture
def data():
    rng = np.random.default_rng(1)
    truth = rng.random(5000) < 0.2
    score = np.clip(truth * 0.3 + rng.random(5000) * 0.8, 0, 1)
    mask = rng.random(5000) < 0.7
    return truth, score, mask


def test_binary_metrics_match_sklearn_inside_mask(data):
    truth, score, mask = data
    got = metrics.binary_metrics(truth, score, mask=mask, threshold=0.5)
    t, s = truth[mask], score[mask]
    pred = s >= 0.5
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(t, pred))
    assert got["sensitivity"] == pytest.approx(skm.recall_score(t, pred))
    assert got["specificity"] == pytest.approx(skm.recall_score(~t, ~pred))
    assert got["precision"] == pytest.approx(skm.precision_score(t, pred))
    assert got["f1"] == pytest.approx(skm.f1_score(t, pred))
    assert got["iou"] == pytest.approx(skm.jaccard_score(t, pred))
    assert got["auc_roc"] == pytest.approx(skm.roc_auc_score(t, s))
    assert got["auc_pr"] == pytest.approx(skm.average_precision_score(t, s))
    assert got["tp"] + got["tn"] + got["fp"] + got["fn"] == mask.sum()


def test_mask_changes_the_result(data):
    truth, score, mask = data
    assert metrics.confusion(truth, score > 0.5) != metrics.confusion(truth, score > 0.5, mask)


def test_single_class_auc_is_nan():
    assert np.isnan(metrics.auc_roc(np.zeros(10), np.linspace(0, 1, 10)))


def test_quadratic_kappa_matches_sklearn():
    rng = np.random.default_rng(2)
    a, b = rng.integers(0, 5, 300), rng.integers(0, 5, 300)
    b[:200] = a[:200]
    expected = skm.cohen_kappa_score(a, b, weights="quadratic")
    assert metrics.quadratic_kappa(a, b) == pytest.approx(expected)


def test_confusion_matrix_matches_sklearn():
    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 5, 200), rng.integers(0, 5, 200)
    assert metrics.confusion_matrix(a, b, 5) == skm.confusion_matrix(a, b, labels=range(5)).tolist()


def test_detection_ap_hand_computed():
    truths = [{"boxes": [[0, 0, 10, 10], [20, 20, 30, 30]], "labels": ["ma", "ma"]}]
    # three detections: a hit (0.9), a miss (0.8), a hit (0.7) -> precision 1, 1/2, 2/3 at recall
    # 0.5, 0.5, 1.0 -> VOC AP = 0.5 * 1 + 0.5 * 2/3
    preds = [{"boxes": [[0, 0, 10, 10], [50, 50, 60, 60], [21, 21, 30, 30]],
              "labels": ["ma", "ma", "ma"], "scores": [0.9, 0.8, 0.7]}]
    result = metrics.detection_ap(preds, truths, 0.5)
    assert result["per_class"]["ma"]["ap"] == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert result["per_class"]["ma"]["recall"] == 1.0
    assert result["map"] == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_box_iou():
    iou = metrics.box_iou([[0, 0, 10, 10]], [[5, 0, 15, 10], [20, 20, 30, 30]])
    assert iou[0, 0] == pytest.approx(50 / 150)
    assert iou[0, 1] == 0
