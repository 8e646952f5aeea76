"""Any resolution: photos run at the model card's ``model_scale`` and mapped back (scale.py)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from eyescan.api import fundus, get_registry, read_split, synthetic
from eyescan.testing import invoke_cli, json_lines
from eyescan_vessels import scale
from eyescan_vessels.data import enhance, load_sample
from eyescan_vessels.evaluation import evaluate
from eyescan_vessels.inference import THRESHOLD, photo_probability, probability_map


@pytest.fixture(scope="module")
def shipped():
    from eyescan.api import models

    return models.load(get_registry(), "vessels", "unet")  # DRIVE-only: its card has no scale


def with_scale(loaded, diameter: float):
    return dataclasses.replace(
        loaded, card={**loaded.card, "model_scale": {"fov_diameter": diameter}}
    )


def run_task(loaded, image: np.ndarray, prepare: bool = True):
    task = get_registry().task("vessels").configured({})
    if prepare:
        task.prepare(loaded)
    (prediction,) = task.predict(loaded, [task.preprocess(image, "<test>")])
    return prediction


def upscale(image: np.ndarray, times: int) -> np.ndarray:
    h, w = image.shape[:2]
    return scale.resize_image(image, (h * times, w * times))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def test_fov_diameter_factor_window_and_cap():
    fov = np.zeros((100, 120), bool)
    fov[10:90, 20:110] = True  # 80 × 90 box: diameter 90
    assert scale.fov_diameter(fov) == 90
    assert scale.fov_diameter(np.zeros((5, 5), bool)) == 0
    assert scale.factor(fov, None) == 1.0  # no model scale: never resampled
    assert scale.factor(fov, 95.0) == 1.0 and scale.factor(fov, 85.0) == 1.0  # in [0.9, 1.1]
    assert scale.factor(fov, 45.0) == pytest.approx(0.5)
    assert scale.factor(fov, 95.0, skip=None) == pytest.approx(95 / 90)  # training: always
    tiny = np.zeros((1000, 1000), bool)
    tiny[500:505, 500:505] = True  # a failed FOV estimate: capped at MAX_SIDE diameters
    assert scale.factor(tiny, 100.0) == pytest.approx(scale.MAX_SIDE * 100 / 1000)
    assert scale.target_diameter({}) is None
    assert scale.target_diameter({"model_scale": {"fov_diameter": 540}}) == 540.0


def test_within_the_window_nothing_is_resampled(shipped):
    image = synthetic.make_fundus(96, seed=1).image
    diameter = scale.fov_diameter(fundus.fov_mask(image))
    prediction = run_task(with_scale(shipped, diameter * 1.05), image)
    assert prediction.values["scale_factor"] == 1.0
    expected = probability_map(shipped.module, enhance(image))
    assert np.array_equal(prediction.arrays["probability"], expected)


def test_a_card_without_model_scale_runs_as_before(shipped):
    for image in (
        synthetic.make_fundus(64, seed=2).image,
        upscale(synthetic.make_fundus(64).image, 3),
    ):
        prediction = run_task(shipped, image)
        expected = probability_map(shipped.module, enhance(image))
        assert np.array_equal(prediction.arrays["probability"], expected)
        assert "scale_factor" not in prediction.values
        prob, factor = photo_probability(shipped.module, image, fundus.fov_mask(image), None)
        assert factor == 1.0 and np.array_equal(prob, expected)


def test_a_photo_3x_larger_is_segmented_at_the_model_scale(shipped):
    small = synthetic.make_fundus(128, seed=3).image
    large = upscale(small, 3)
    diameter = scale.fov_diameter(fundus.fov_mask(small))
    scaled = with_scale(shipped, diameter)
    reference = run_task(scaled, small).arrays["probability"]  # factor 1: as the photo is
    for prepare in (True, False):  # prepared run, or predict resampling on its own
        prediction = run_task(scaled, large, prepare)
        prob = prediction.arrays["probability"]
        assert prob.shape == large.shape[:2] and prediction.arrays["mask"].shape == prob.shape
        assert prediction.values["scale_factor"] == pytest.approx(1 / 3, rel=0.02)
        back = scale.resize_probability(prob, small.shape[:2])
        assert np.corrcoef(back.ravel(), reference.ravel())[0, 1] > 0.9
        agreement = iou(back >= THRESHOLD, reference >= THRESHOLD)
        assert agreement > 0.7
    unscaled = run_task(shipped, large).arrays["probability"]  # the old behaviour, for contrast
    old = scale.resize_probability(unscaled, small.shape[:2])
    assert agreement > iou(old >= THRESHOLD, reference >= THRESHOLD)


def test_evaluate_resamples_like_predict_and_scores_at_photo_size(shipped, tmp_path):
    data = synthetic.write_drive_layout(tmp_path / "drive", n_train=0, n_test=2, size=96)
    plain = evaluate(shipped, data, {})
    assert "model_scale" not in plain["summary"]
    sample = read_split(get_registry(), "vessels", data, "test").samples[0]
    photo = load_sample(sample, 127)
    diameter = scale.fov_diameter(photo.fov)
    scaled = with_scale(shipped, 2 * diameter)
    result = evaluate(scaled, data, {})
    assert result["summary"]["model_scale"]["resampled_images"] == 2
    assert result["summary"]["model_scale"]["factors"][0] == pytest.approx(2.0, rel=0.05)
    prob, factor = photo_probability(scaled.module, photo.original, photo.fov, 2 * diameter)
    assert prob.shape == photo.vessels.shape and factor == pytest.approx(2.0, rel=0.05)
    from eyescan_vessels.evaluation import fov_metrics

    first = result["images"][0]
    assert first["id"] == sample.id
    assert first["auc_roc"] == pytest.approx(fov_metrics(prob, photo.vessels, photo.fov)["auc_roc"])


def test_training_with_fov_diameter_resamples_samples_and_sets_the_card(tmp_path, tiny_recipe):
    data = synthetic.write_drive_layout(tmp_path / "drive", n_train=2, n_test=1, size=64)
    sample = read_split(get_registry(), "vessels", data, "train").samples[0]
    photo = load_sample(sample, 127)
    diameter = scale.fov_diameter(photo.fov)
    resized = load_sample(sample, 127, fov_diameter=2 * diameter)
    assert scale.fov_diameter(resized.fov) == pytest.approx(2 * diameter, abs=2)
    assert resized.image.shape[:2] == resized.vessels.shape == resized.fov.shape
    assert resized.image.shape[0] == pytest.approx(2 * photo.image.shape[0], abs=2)
    assert resized.vessels.mean() == pytest.approx(photo.vessels.mean(), rel=0.25)
    recipe = {**tiny_recipe, "fov_diameter": 2 * diameter}
    (tmp_path / "recipe.json").write_text(json.dumps(recipe))
    result = invoke_cli(
        "train", "vessels", data, "--config", tmp_path / "recipe.json",
        "--out", tmp_path / "run", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    weights = Path(json_lines(result.stdout)[-1]["weights"])
    card = json.loads(weights.with_suffix(".json").read_text())
    assert card["model_scale"] == {"fov_diameter": float(2 * diameter)}
    from PIL import Image

    photo_path = tmp_path / "photo.png"  # 3× the training photos: brought to the model's scale
    Image.fromarray(upscale(synthetic.make_fundus(64, seed=5).image, 3)).save(photo_path)
    result = invoke_cli(
        "predict", "vessels", photo_path, "--weights", weights, "--out", tmp_path / "out", "--json"
    )
    assert result.exit_code == 0, result.output
    (record,) = [r for r in json_lines(result.stdout) if r.get("input")]
    outputs = record["outputs"]
    assert (outputs["height"], outputs["width"]) == (192, 192)
    assert outputs["model_fov_diameter"] == float(2 * diameter)
    assert outputs["scale_factor"] == pytest.approx(2 / 3, rel=0.05)


def test_enlarging_a_probability_map_gives_pillows_bilinear_numbers():
    from PIL import Image

    prob = np.random.default_rng(3).random((45, 67), dtype=np.float32)
    for shape in [(234, 350), (45, 90), (100, 67)]:
        plane = Image.fromarray(prob).resize((shape[1], shape[0]), Image.Resampling.BILINEAR)
        expected = np.clip(np.asarray(plane, np.float32), 0, 1)
        got = scale.resize_probability(prob, shape)
        assert got.dtype == np.float32 and got.shape == shape
        assert np.abs(got - expected).max() < 1e-6
    assert scale.resize_probability(prob, (20, 30)).shape == (20, 30)  # shrinking: Pillow
