"""Both stages end to end through the CLI: train → predict → evaluate, on tiny synthetic data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from eyescan.api import Prediction, get_registry, imageio, models
from eyescan.reports.records import validate_prediction
from eyescan.testing import invoke_cli, json_lines
from eyescan_strabismus.synthetic import make_face, write_dataset
from eyescan_strabismus.task import (
    DETECTOR,
    StrabismusTask,
    _region_values,
    classify,
)

TINY_DETECTOR = {
    "epochs": 1,
    "batch_size": 4,
    "steps_per_epoch": 2,
    "val_fraction": 0.25,
    "model_options": {"width": 0.25, "out_channels": 32, "min_size": 96, "max_size": 96},
}
TINY_CLASSIFIER = {"epochs": 1, "batch_size": 4, "steps_per_epoch": 2, "input_size": 32}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("strabismus")
    data = write_dataset(root / "data", n_train=12, n_test=6, size=96, seed=7, no_face_fraction=0.2)
    (root / "det.json").write_text(json.dumps(TINY_DETECTOR))
    result = invoke_cli(
        "train",
        "strabismus",
        data,
        "--model",
        DETECTOR,
        "--config",
        root / "det.json",
        "--out",
        root / "det",
        "--json",
    )
    assert result.exit_code == 0, result.output
    detector = Path(json_lines(result.stdout)[0]["weights"])
    recipe = {**TINY_CLASSIFIER, "detector": str(detector)}
    (root / "cls.json").write_text(json.dumps(recipe))
    result = invoke_cli(
        "train",
        "strabismus",
        data,
        "--model",
        "rfcnn-lite",
        "--config",
        root / "cls.json",
        "--out",
        root / "cls",
        "--json",
    )
    assert result.exit_code == 0, result.output
    classifier = Path(json_lines(result.stdout)[0]["weights"])
    return data, detector, classifier


def test_training_writes_both_models_with_cards(tiny_run):
    _, detector, classifier = tiny_run
    det_card = json.loads(detector.with_suffix(".json").read_text())
    cls_card = json.loads(classifier.with_suffix(".json").read_text())
    assert det_card["model"] == DETECTOR and det_card["model_options"]["width"] == 0.25
    assert cls_card["model"] == "rfcnn-lite" and cls_card["input_size"] == 32
    assert (classifier.parent / cls_card["detector"]).resolve() == detector.resolve()


def test_predict_outputs_box_score_probability(tiny_run, tmp_path):
    data, _, classifier = tiny_run
    result = invoke_cli(
        "predict",
        "strabismus",
        data / "test" / "images",
        "--weights",
        classifier,
        "--out",
        tmp_path,
        "--json",
    )
    assert result.exit_code == 0, result.output
    records = json_lines(result.stdout)
    assert len(records) == 6
    for record in records:
        assert validate_prediction(record) == []
        out = record["outputs"]
        assert {
            "eye_region_found",
            "box",
            "detector_score",
            "low_detector_confidence",
            "strabismus_probability",
            "result",
        } <= set(out)
        assert (tmp_path / record["files"]["annotated"]).exists()
        if out["eye_region_found"]:
            assert len(out["box"]) == 4 and 0 <= out["strabismus_probability"] <= 1
            assert (tmp_path / record["files"]["crop"]).exists()
        else:
            assert out["result"] == "no eye region found" and out["box"] is None


def test_predict_with_the_detector_alone(tiny_run, tmp_path):
    data, detector, _ = tiny_run
    result = invoke_cli(
        "predict",
        "strabismus",
        data / "test" / "images",
        "--model",
        DETECTOR,
        "--weights",
        detector,
        "--out",
        tmp_path,
        "--json",
    )
    assert result.exit_code == 0, result.output
    out = json_lines(result.stdout)[0]["outputs"]
    assert "strabismus_probability" not in out and "detector_score" in out


def test_evaluate_prints_the_seed_metrics(tiny_run):
    data, detector, classifier = tiny_run
    result = invoke_cli("evaluate", "strabismus", data, "--weights", classifier, "--json")
    assert result.exit_code == 0, result.output
    summary = json_lines(result.stdout)[-1]
    assert summary["kind"] == "summary"
    assert {"tp", "tn", "fp", "fn", "sensitivity", "specificity", "accuracy", "auc"} <= set(summary)
    assert summary["tp"] + summary["tn"] + summary["fp"] + summary["fn"] == summary["images"]
    assert "pipeline_no_eye_region" in summary  # detector → crop → classifier on the same set
    result = invoke_cli(
        "evaluate", "strabismus", data, "--model", DETECTOR, "--weights", detector, "--json"
    )
    assert result.exit_code == 0, result.output
    summary = json_lines(result.stdout)[-1]
    assert 0 <= summary["ap50"] <= 1 and summary["images"] == 6


def test_no_eye_region_is_a_normal_outcome(tiny_run, tmp_path):
    _, _, classifier = tiny_run
    model = models.load(get_registry(), "strabismus", "rfcnn-lite", classifier)
    image = np.full((50, 70, 3), 90, np.uint8)
    empty = {"boxes": np.zeros((0, 4)), "scores": np.zeros(0)}
    weak = {"boxes": np.array([[5.0, 5.0, 60.0, 20.0]]), "scores": np.array([0.3])}
    for detection in (empty, weak):
        (prediction,) = classify(model, [image], [detection])
        assert prediction.values["result"] == "no eye region found"
        assert prediction.values["strabismus_probability"] is None
        files = StrabismusTask(explain=True).report(prediction, tmp_path, "blank")
        assert set(files) == {"annotated"}


def test_low_detector_confidence_is_flagged():
    found = _region_values((1.0, 2.0, 30.0, 9.0), 0.6)
    assert found["eye_region_found"] and found["low_detector_confidence"]
    assert not _region_values((1.0, 2.0, 30.0, 9.0), 0.95)["low_detector_confidence"]
    assert not _region_values(None, 0.0)["eye_region_found"]


def test_explain_writes_a_gradcam_of_the_crop(tiny_run, tmp_path):
    _, _, classifier = tiny_run
    model = models.load(get_registry(), "strabismus", "rfcnn-lite", classifier)
    face = make_face(96, seed=1)
    detection = {"boxes": np.array([face.box]), "scores": np.array([0.99])}
    (prediction,) = classify(model, [face.image], [detection], explain=True)
    assert prediction.arrays["heat"].shape == prediction.arrays["crop"].shape[:2]
    assert 0 <= prediction.arrays["heat"].min() and prediction.arrays["heat"].max() <= 1
    files = StrabismusTask().report(prediction, tmp_path, "face")
    assert imageio.read_image(tmp_path / files["gradcam"]).shape == prediction.arrays["crop"].shape


def test_detector_is_found_by_card_then_beside_then_shipped(tmp_path, tiny_run):
    _, detector, _ = tiny_run
    task = StrabismusTask()

    class Loaded:
        def __init__(self, weights, card):
            self.weights, self.card = weights, card

    classifier = tmp_path / "rfcnn-lite.safetensors"
    assert task.detector_path(Loaded(classifier, {"detector": str(detector)})) == detector
    beside = tmp_path / "eye-detector.safetensors"
    beside.write_bytes(b"")
    assert task.detector_path(Loaded(classifier, {})) == beside
    beside.unlink()
    shipped = task.default_weights(DETECTOR)
    if shipped is None:
        with pytest.raises(Exception, match="no eye-region detector"):
            task.detector_path(Loaded(classifier, {}))
    else:
        assert task.detector_path(Loaded(classifier, {})) == shipped


def test_prediction_without_a_box_draws_only_the_message():
    from eyescan_strabismus.task import annotate

    image = np.zeros((20, 30, 3), np.uint8)
    values = {"result": "no eye region found", "box": None, "strabismus_probability": None}
    assert annotate(Prediction(values, {}, image)).shape == image.shape
