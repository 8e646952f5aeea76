"""Grading and detection metrics against reference implementations and hand-computed cases;
per-image detection statistics for the bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from eyescan.api import metrics
from eyescan_drgrade.evaluation import detection_metrics, dme_metrics, grade_metrics


def kappa_by_formula(truth, predicted, k=5):
    """Quadratic weighted kappa from its definition: 1 - sum(W*O) / sum(W*E)."""
    observed = np.zeros((k, k))
    np.add.at(observed, (truth, predicted), 1)
    expected = np.outer(observed.sum(1), observed.sum(0)) / observed.sum()
    i, j = np.indices((k, k))
    w = (i - j) ** 2 / (k - 1) ** 2
    return 1 - (w * observed).sum() / (w * expected).sum()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kappa_matches_sklearn_and_the_formula(seed):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 5, 200)
    predicted = np.clip(truth + rng.integers(-1, 2, 200) * (rng.random(200) < 0.4), 0, 4)
    got = grade_metrics(truth, predicted)["kappa"]
    assert got == pytest.approx(cohen_kappa_score(truth, predicted, weights="quadratic"))
    assert got == pytest.approx(kappa_by_formula(truth, predicted))


def test_dme_metrics_match_sklearn_and_count_joint_hits():
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 3, 120)
    predicted = np.where(rng.random(120) < 0.7, truth, rng.integers(0, 3, 120))
    grade_right = rng.random(120) < 0.6
    m = dme_metrics(truth, predicted, grade_right)
    assert m["dme_kappa"] == pytest.approx(cohen_kappa_score(truth, predicted, weights="quadratic"))
    assert m["dme_kappa"] == pytest.approx(kappa_by_formula(truth, predicted, k=3))
    assert m["dme_accuracy"] == pytest.approx((truth == predicted).mean())
    assert m["joint_accuracy"] == pytest.approx(((truth == predicted) & grade_right).mean())
    matrix = np.array(m["dme_confusion_matrix"])
    assert matrix.shape == (3, 3) and matrix.trace() == (truth == predicted).sum()


def test_grade_metrics_hand_case():
    truth = [0, 0, 1, 2, 3, 4, 2, 0]
    predicted = [0, 1, 1, 2, 2, 4, 1, 0]
    score = [0.1, 0.3, 0.2, 0.9, 0.8, 0.95, 0.4, 0.05]
    m = grade_metrics(truth, predicted, score)
    assert m["accuracy"] == pytest.approx(5 / 8)
    # referable = grade >= 2: truths 2,3,4,2 ; predicted referable 2,2,4 -> one missed (the 2 -> 1)
    assert m["referable_sensitivity"] == pytest.approx(3 / 4)
    assert m["referable_specificity"] == pytest.approx(1.0)
    assert m["referable_auc"] == pytest.approx(1.0)  # every referable scores above every other
    matrix = np.array(m["confusion_matrix"])
    assert matrix.shape == (5, 5) and matrix.sum() == 8
    assert matrix[0, 1] == 1 and matrix[2, 1] == 1 and matrix[3, 2] == 1


def test_detection_map_hand_computed_voc_case():
    truths = [
        {
            "boxes": [[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 70, 70]],
            "labels": ["microaneurysm", "microaneurysm", "haemorrhage"],
        },
        {"boxes": [[5, 5, 15, 15]], "labels": ["microaneurysm"]},
    ]
    predictions = [
        {
            "boxes": [[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [50, 50, 70, 68]],
            "labels": ["microaneurysm", "microaneurysm", "microaneurysm", "haemorrhage"],
            "scores": [0.9, 0.8, 0.6, 0.95],
        },
        {"boxes": [[40, 40, 50, 50]], "labels": ["microaneurysm"], "scores": [0.7]},
    ]
    m = detection_metrics(predictions, truths, score_threshold=0.65)
    # MA, by score: TP, FP (duplicate), FP, TP of 3 truths -> precision 1, .5, .33, .5 at
    # recall 1/3, 1/3, 1/3, 2/3; VOC all-point AP = 1/3 * 1 + 1/3 * 0.5 = 0.5.
    assert m["ap_microaneurysm"] == pytest.approx(0.5)
    assert m["ap_haemorrhage"] == pytest.approx(1.0)  # IoU 360/400 = 0.9
    assert math.isnan(m["ap_hard_exudate"])  # no truths: left out of the mean
    assert m["map"] == pytest.approx(0.75)
    # at score >= 0.65: MA keeps 0.9 (TP), 0.8 (FP), 0.7 (FP)
    assert m["precision_microaneurysm"] == pytest.approx(1 / 3)
    assert m["recall_microaneurysm"] == pytest.approx(1 / 3)
    assert m["precision_haemorrhage"] == pytest.approx(1.0)
    assert m["recall_haemorrhage"] == pytest.approx(1.0)
    assert m["precision"] == pytest.approx(2 / 4) and m["recall"] == pytest.approx(2 / 4)


def test_detection_iou_below_half_is_a_miss():
    truths = [{"boxes": [[0, 0, 10, 10]], "labels": ["hard_exudate"]}]
    shifted = [{"boxes": [[5, 0, 15, 10]], "labels": ["hard_exudate"], "scores": [0.99]}]
    m = detection_metrics(shifted, truths, 0.5)  # IoU 50/150 = 1/3
    assert m["ap_hard_exudate"] == 0.0 and m["recall_hard_exudate"] == 0.0


def _random_detections(seed: int, images: int = 12):
    rng = np.random.default_rng(seed)
    names = ["microaneurysm", "haemorrhage", "hard_exudate"]
    predictions, truths = [], []
    for _ in range(images):
        n_t, n_p = int(rng.integers(0, 6)), int(rng.integers(0, 9))
        corners = rng.uniform(0, 90, (n_t, 2))
        t_boxes = np.hstack([corners, corners + rng.uniform(4, 12, (n_t, 2))])
        jitter = rng.normal(0, 2, (n_p, 4))
        picks = rng.integers(0, max(n_t, 1), n_p)
        p_boxes = t_boxes[picks] + jitter if n_t else rng.uniform(0, 90, (n_p, 4))
        p_boxes[:, 2:] = np.maximum(p_boxes[:, 2:], p_boxes[:, :2] + 1)
        truths.append({"boxes": t_boxes, "labels": list(rng.choice(names, n_t))})
        predictions.append(
            {
                "boxes": p_boxes,
                "labels": list(rng.choice(names, n_p)),
                "scores": np.round(rng.uniform(0, 1, n_p), 2),  # ties across images
            }
        )
    return predictions, truths


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_per_image_matches_give_the_pooled_metrics(seed):
    """Pooled mAP/precision/recall from per-image matches equal the core's detection_ap:
    the bootstrap recomputes them on resampled images without matching again."""
    predictions, truths = _random_detections(seed)
    reference = detection_metrics(predictions, truths, 0.5)
    matches = [metrics.match_detections(p, t) for p, t in zip(predictions, truths)]
    pooled = metrics.pooled_detection(matches, 0.5)
    assert pooled["map"] == pytest.approx(reference["map"])
    assert pooled["detection_precision"] == pytest.approx(reference["precision"], nan_ok=True)
    assert pooled["detection_recall"] == pytest.approx(reference["recall"], nan_ok=True)
    twice = metrics.pooled_detection(matches + matches, 0.5)  # a resample drawing every image twice
    doubled = detection_metrics(predictions * 2, truths * 2, 0.5)
    assert twice["map"] == pytest.approx(doubled["map"])


@pytest.mark.parametrize("seed", range(6))
def test_resample_metrics_equal_the_reported_ones(seed):
    from eyescan_drgrade.evaluation import resample_grade_metrics

    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 40))
    truth = rng.integers(0, 5, n) if seed else np.full(n, 1)  # seed 0: no referable eye
    predicted = np.clip(truth + rng.integers(-1, 2, n), 0, 4)
    score = np.round(rng.random(n), 1)  # ties
    slow, fast = (
        grade_metrics(truth, predicted, score),
        resample_grade_metrics(truth, predicted, score),
    )
    for key, value in fast.items():
        assert value == pytest.approx(slow[key], nan_ok=True), key
