"""Metrics against scikit-learn on random data."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from eyescan.evaluation import metrics


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
    preds = [
        {
            "boxes": [[0, 0, 10, 10], [50, 50, 60, 60], [21, 21, 30, 30]],
            "labels": ["ma", "ma", "ma"],
            "scores": [0.9, 0.8, 0.7],
        }
    ]
    result = metrics.detection_ap(preds, truths, 0.5)
    assert result["per_class"]["ma"]["ap"] == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert result["per_class"]["ma"]["recall"] == 1.0
    assert result["map"] == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_box_iou():
    iou = metrics.box_iou([[0, 0, 10, 10]], [[5, 0, 15, 10], [20, 20, 30, 30]])
    assert iou[0, 0] == pytest.approx(50 / 150)
    assert iou[0, 1] == 0


def _devkit_ap(predictions, truths, cls, iou_threshold=0.5):
    """AP as the Pascal VOC 2010+ devkit computes it (VOCevaldet.m / voc_eval.py), written
    independently of eyescan: each detection, by falling score, goes to the truth box it
    overlaps most; a hit when IoU >= threshold and that box is still free, else a miss.
    All-point interpolated area under the precision envelope."""
    dets = sorted(
        ((s, i, b) for i, p in enumerate(predictions)
         for b, label, s in zip(p["boxes"], p["labels"], p["scores"]) if label == cls),
        key=lambda d: -d[0],
    )  # fmt: skip
    gts = [[b for b, label in zip(t["boxes"], t["labels"]) if label == cls] for t in truths]
    used = [[False] * len(g) for g in gts]
    npos = sum(len(g) for g in gts)
    tp, fp = [], []
    for _, i, (x1, y1, x2, y2) in dets:
        best, arg = 0.0, -1
        for j, (a1, b1, a2, b2) in enumerate(gts[i]):
            iw, ih = min(x2, a2) - max(x1, a1), min(y2, b2) - max(y1, b1)
            if iw > 0 and ih > 0:
                inter = iw * ih
                iou = inter / ((x2 - x1) * (y2 - y1) + (a2 - a1) * (b2 - b1) - inter)
                if iou > best:
                    best, arg = iou, j
        hit = best >= iou_threshold and not used[i][arg]
        if hit:
            used[i][arg] = True
        tp.append(int(hit))
        fp.append(int(not hit))
    ctp, cfp = np.cumsum(tp), np.cumsum(fp)
    rec = np.concatenate([[0], ctp / npos, [1]])
    prec = np.concatenate([[0], ctp / np.maximum(ctp + cfp, 1e-12), [0]])
    for k in range(len(prec) - 2, -1, -1):
        prec[k] = max(prec[k], prec[k + 1])
    steps = np.flatnonzero(rec[1:] != rec[:-1])
    return float(np.sum((rec[steps + 1] - rec[steps]) * prec[steps + 1]))


@pytest.mark.parametrize("seed", range(5))
def test_detection_ap_matches_the_voc_devkit(seed):
    """Random scenes: truth boxes on a grid, detections jittered copies, duplicates and
    noise (clustered boxes: the next test)."""
    rng = np.random.default_rng(seed)
    classes = ["a", "b"]
    predictions, truths = [], []
    for _ in range(6):
        cells = rng.choice(16, size=int(rng.integers(1, 8)), replace=False)
        corners = [(c % 4 * 40.0, c // 4 * 40.0) for c in cells]
        boxes = [[x, y, x + 30, y + 30] for x, y in corners]
        labels = [str(rng.choice(classes)) for _ in boxes]
        truths.append({"boxes": boxes, "labels": labels})
        pred = {"boxes": [], "labels": [], "scores": []}
        for box, label in zip(boxes, labels):
            for _ in range(int(rng.integers(0, 3))):  # 0 (missed), 1 or 2 (duplicate) detections
                shift = rng.uniform(-12, 12, 2)
                pred["boxes"].append([box[0] + shift[0], box[1] + shift[1],
                                      box[2] + shift[0], box[3] + shift[1]])  # fmt: skip
                pred["labels"].append(label if rng.random() > 0.15 else str(rng.choice(classes)))
                pred["scores"].append(float(rng.random()))
        for _ in range(int(rng.integers(0, 3))):  # detections of nothing
            x, y = rng.uniform(0, 130, 2)
            pred["boxes"].append([x, y, x + 20, y + 20])
            pred["labels"].append(str(rng.choice(classes)))
            pred["scores"].append(float(rng.random()))
        predictions.append(pred)
    result = metrics.detection_ap(predictions, truths, 0.5)
    for cls in classes:
        if any(cls in t["labels"] for t in truths):
            want = _devkit_ap(predictions, truths, cls)
            assert result["per_class"][cls]["ap"] == pytest.approx(want, abs=1e-9), cls


def test_a_second_detection_of_a_matched_box_is_a_miss_not_moved_to_its_neighbour():
    """Clustered boxes (CODRAS bundles lesions): the devkit gives each detection the box it
    overlaps most; when that one is taken it is a false positive, even if a neighbour
    overlaps it by more than 0.5. Falling back to the neighbour would give AP 1.0."""
    truths = [{"boxes": [[0, 0, 10, 10], [2, 0, 12, 10]], "labels": ["he", "he"]}]
    # first detection: A exactly; second: A 0.905, B 0.739 -> A is taken -> a miss
    preds = [{"boxes": [[0, 0, 10, 10], [0.5, 0, 10.5, 10]], "labels": ["he"] * 2,
              "scores": [0.9, 0.8]}]  # fmt: skip
    iou = metrics.box_iou(preds[0]["boxes"][1], truths[0]["boxes"])[0]
    assert iou[0] > iou[1] > 0.5
    scores, flags, n = metrics.match_detections(preds[0], truths[0])["he"]
    assert flags.tolist() == [1.0, 0.0] and n == 2
    result = metrics.detection_ap(preds, truths)["per_class"]["he"]
    assert result["ap"] == pytest.approx(0.5) == _devkit_ap(preds, truths, "he")
    assert (result["precision"], result["recall"]) == (0.5, 0.5)
    assert metrics.pooled_detection([{"he": (scores, flags, n)}])["ap"]["he"] == pytest.approx(0.5)


@pytest.mark.parametrize("seed", range(5))
def test_detection_ap_matches_the_voc_devkit_on_clustered_boxes(seed):
    """Overlapping truth boxes and detections between them: the devkit's rule exactly."""
    rng = np.random.default_rng(100 + seed)
    predictions, truths = [], []
    for _ in range(5):
        corners = rng.uniform(0, 30, (int(rng.integers(1, 7)), 2))  # a crowded 40-px patch
        truths.append({"boxes": np.hstack([corners, corners + 10]).tolist(),
                       "labels": ["a"] * len(corners)})  # fmt: skip
        near = np.repeat(corners, rng.integers(0, 4, len(corners)), axis=0)  # 0-3 copies each
        near = near + rng.uniform(-3, 3, near.shape)
        between = (corners + corners[rng.permutation(len(corners))]) / 2  # between two boxes
        found = np.vstack([near, between])
        predictions.append({"boxes": np.hstack([found, found + 10]).tolist(),
                            "labels": ["a"] * len(found),
                            "scores": rng.random(len(found)).tolist()})  # fmt: skip
    want = _devkit_ap(predictions, truths, "a")
    assert metrics.detection_ap(predictions, truths)["per_class"]["a"]["ap"] == pytest.approx(
        want, abs=1e-9
    )
    parts = [metrics.match_detections(p, t) for p, t in zip(predictions, truths)]
    assert metrics.pooled_detection(parts)["ap"]["a"] == pytest.approx(want, abs=1e-9)


def test_resampled_detection_ap_and_rank_auc_equal_the_full_computations():
    """Per-image matches pooled over any resample give detection_ap's AP; rank AUC = sklearn's."""
    rng = np.random.default_rng(0)
    label = "eye region"
    preds = [
        {
            "boxes": rng.random((4, 4)) * 10 + [0, 0, 20, 20],
            "labels": [label] * 4,
            "scores": np.round(rng.random(4), 1),  # ties across images
        }
        for _ in range(60)
    ]
    truths = [
        {"boxes": np.array([[0.0, 0.0, 25.0, 25.0]]), "labels": [label]}
        if i % 5
        else {"boxes": np.zeros((0, 4)), "labels": []}
        for i in range(60)
    ]
    parts = [metrics.match_detections(p, t) for p, t in zip(preds, truths)]
    for _ in range(3):
        idx = rng.integers(0, 60, 60)
        core = metrics.detection_ap([preds[i] for i in idx], [truths[i] for i in idx])
        pooled = metrics.pooled_detection([parts[i] for i in idx])
        assert pooled["ap"][label] == pytest.approx(core["per_class"][label]["ap"])
    truth, prob = rng.random(80) > 0.5, np.round(rng.random(80), 2)
    assert metrics.rank_auc(truth, prob) == pytest.approx(metrics.auc_roc(truth, prob))
    rates = metrics.binary_rates(truth, prob, 0.5)
    full = metrics.binary_metrics(truth, prob, threshold=0.5)
    assert all(rates[k] == pytest.approx(full[k]) for k in rates)


def test_froc_hand_computed():
    # image A: a hit (0.9) in box 1, a false positive (0.6), box 2 missed
    a = np.zeros((10, 10))
    a[1, 1], a[7, 7] = 0.9, 0.6
    a[1, 2] = 0.55  # the same component as 0.9: scored by its maximum
    # image B: a hit (0.7), a false positive (0.8), and 0.3 below the candidate threshold
    b = np.zeros((10, 10))
    b[2, 6], b[8, 8], b[5, 1] = 0.7, 0.8, 0.3
    labels, scores = metrics.lesion_candidates(a, 0.5)
    assert labels.max() == 2 and sorted(scores) == [0.6, 0.9]
    match_a = metrics.froc_matches(a, [[0, 0, 3, 3], [5, 0, 8, 3]], 0.5)
    match_b = metrics.froc_matches(b, [[5.5, 1.2, 7.9, 3.1]], 0.5)
    assert match_a[0].tolist() == [0.9, -np.inf] and match_a[1].tolist() == [0.6]
    assert match_b[0].tolist() == [0.7] and match_b[1].tolist() == [0.8]
    result = metrics.froc([match_a, match_b])
    # 3 lesions, 2 images; FP scores 0.8, 0.6. At 1/8 and 1/4 FP/image no FP is allowed:
    # only 0.9 (> 0.8) counts; from 1/2 (one FP) on, 0.7 (> 0.6) too; never box 2.
    assert result["sensitivities"] == pytest.approx([1 / 3, 1 / 3] + [2 / 3] * 5)
    assert result["froc"] == pytest.approx(4 / 7)
    assert result["lesions"] == 3 and result["images"] == 2 and result["false_positives"] == 2
    assert np.isnan(metrics.froc([metrics.froc_matches(a, [], 0.5)])["froc"])


def test_froc_candidates_respect_the_region_and_fractional_boxes():
    score = np.zeros((6, 6))
    score[0, 0] = score[4, 4] = 0.9
    region = np.ones((6, 6), bool)
    region[4, 4] = False  # e.g. outside the field of view: no candidate there
    found, false = metrics.froc_matches(score, [[0.5, 0.5, 0.6, 0.6]], 0.5, region)
    assert found.tolist() == [0.9] and false.tolist() == []  # the box lies in pixel (0, 0)
    found, false = metrics.froc_matches(score, [[1, 1, 3, 3]], 0.5)
    assert found.tolist() == [-np.inf] and false.tolist() == [0.9, 0.9]
    assert metrics.froc([(found, false)])["sensitivities"] == [0.0] * 7


def test_froc_peak_rule_counts_one_large_candidate_once():
    score = np.zeros((4, 12))
    score[1, 0:12] = 0.6
    score[1, 2] = 0.9  # one long candidate across three boxes, its peak in the first
    boxes = [[1, 0, 4, 3], [5, 0, 7, 3], [9, 0, 11, 3]]
    found, false = metrics.froc_matches(score, boxes, 0.5)
    assert found.tolist() == [0.9] * 3 and false.tolist() == []
    found, false = metrics.froc_matches(score, boxes, 0.5, hit="peak")
    assert found.tolist() == [0.9, -np.inf, -np.inf] and false.tolist() == []
    with pytest.raises(ValueError, match="hit"):
        metrics.froc_matches(score, boxes, 0.5, hit="centre")
