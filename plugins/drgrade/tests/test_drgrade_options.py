"""Core predict options on the drgrade task: --threshold (referable on P(referable)), --fov."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eyescan.api import DataError, EyescanError, get_registry, imageio, models
from eyescan_drgrade.task import DrGradeTask

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
PHOTOS = ["idrid_008_dr2_dme2.jpg", "idrid_029_dr0_dme0.jpg"]


@pytest.fixture(scope="module")
def run():
    model = models.load(get_registry(), "drgrade")
    task = DrGradeTask()
    images = [imageio.read_image(EXAMPLES / name) for name in PHOTOS]
    items = [task.preprocess(im, name, provided={}) for im, name in zip(images, PHOTOS)]
    default = task.configured({}).predict(model, items)
    return task, model, images, items, default


def test_default_referable_is_the_grade_rule(run):
    *_, default = run
    for pred in default:
        assert pred.values["referable"] == (pred.values["grade"] >= 2)
        assert "referable_threshold" not in pred.values and "fov_source" not in pred.values


def test_the_threshold_decides_referable_on_p_referable_and_is_recorded(run):
    task, model, _, items, default = run
    p = [pred.values["referable_probability"] for pred in default]
    for threshold in (0.01, 0.5, 0.99, min(p), max(p)):
        preds = task.configured({"threshold": threshold}).predict(model, items)
        for pred, before, prob in zip(preds, default, p):
            assert pred.values["referable_threshold"] == threshold
            assert pred.values["referable"] == (prob >= threshold)
            assert pred.values["grade"] == before.values["grade"]  # the grade is unchanged
    low = task.configured({"threshold": min(p)}).predict(model, items)
    assert all(pred.values["referable"] for pred in low)
    if max(p) < 0.99:
        high = task.configured({"threshold": 0.99}).predict(model, items)
        assert not any(pred.values["referable"] for pred in high)


def test_a_threshold_outside_zero_one_is_refused(run):
    task, model, _, items, _ = run
    with pytest.raises(EyescanError, match="--threshold"):
        task.configured({"threshold": 0}).predict(model, items[:1])


def test_a_given_fov_frames_the_square_view(run):
    task, model, images, _, default = run
    image = images[0]
    h, w = image.shape[:2]
    half = np.zeros((h, w), bool)
    half[:, : w // 2] = True
    item = task.preprocess(image, PHOTOS[0], provided={"fov": half})
    np.testing.assert_array_equal(item["fov"], half)
    (pred,) = task.configured({}).predict(model, [item])
    assert pred.values["fov_source"] == "given"
    assert pred.values["probabilities"] != default[0].values["probabilities"]
    for lesion in pred.values.get("lesions", []):  # the view holds the left half only
        assert lesion["box"][0] <= w // 2
    with pytest.raises(DataError, match=r"idrid_008_dr2_dme2\.jpg: the given FOV mask"):
        task.preprocess(image, PHOTOS[0], provided={"fov": half.T})
