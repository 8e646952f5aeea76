"""Both stages end to end through the CLI: train → predict → evaluate, on tiny synthetic data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from eyescan.api import Prediction, WeightsError, get_registry, imageio, models, weights
from eyescan.reports.records import validate_prediction
from eyescan.testing import invoke_cli, json_lines
from eyescan_strabismus.data import FolderReader
from eyescan_strabismus.pipeline import (
    DETECTOR,
    classify,
    detector_choice,
    link_detector,
    region_values,
)
from eyescan_strabismus.synthetic import make_face, write_dataset
from eyescan_strabismus.task import StrabismusTask

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
    link = cls_card["detector"]  # named by path and hash: the detector it goes with
    assert (classifier.parent / link["file"]).resolve() == detector.resolve()
    assert link["sha256"] == det_card["sha256"] and link["model"] == DETECTOR
    data = cls_card["training"]["data"]  # which images trained it (the core's split record)
    assert data["split"] == "train" and data["reader"] == "folders" and data["count"] == 12
    assert cls_card["training"]["validation"]["count"] == cls_card["training"]["val_images"]
    assert cls_card["training"]["selected_by"] == "val_loss"


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
    det_sha = json.loads(tiny_run[1].with_suffix(".json").read_text())["sha256"]
    for record in records:
        assert validate_prediction(record) == []
        (companion,) = record["companions"]  # the detector, named with its hash
        assert companion["role"] == "detector" and companion["sha256"] == det_sha
        assert companion["weights"] == str(tiny_run[1])
        out = record["outputs"]
        assert out["detector_sha256"] == det_sha
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
    assert summary["data_split"]["split"] == "test"
    assert summary["data_split"]["rule"] == "the data set's own split"
    # detector → crop → classifier on the same set, all of it, with the counts it stands on
    found, missing = summary["pipeline_eye_region_found"], summary["pipeline_no_eye_region"]
    assert found + missing == summary["pipeline_images"] == summary["images"]
    assert f"on all {summary['images']} images" in summary["pipeline_note"]
    n = summary["n"]
    assert n["pipeline_accuracy"] == n["pipeline_auc"] == n["accuracy"] == summary["images"]
    assert n["pipeline_sensitivity"] + n["pipeline_specificity"] == summary["images"]
    det_sha = json.loads(detector.with_suffix(".json").read_text())["sha256"]
    assert summary["pipeline_detector"]["sha256"] == det_sha
    result = invoke_cli(
        "evaluate", "strabismus", data, "--model", DETECTOR, "--weights", detector, "--json"
    )
    assert result.exit_code == 0, result.output
    summary = json_lines(result.stdout)[-1]
    assert 0 <= summary["ap50"] <= 1 and summary["images"] == 6
    assert {"ap50", "best_box_found_iou50", "mean_best_iou"} <= set(summary["ci95"])
    assert summary["data_split"]["count"] == 6


def test_evaluate_returns_scores_and_intervals(tiny_run):
    data, _, classifier = tiny_run
    task = StrabismusTask()
    model = models.load(get_registry(), "strabismus", "rfcnn-lite", classifier)
    result = task.evaluate(model, data, {"split": "test"})
    summary, scores = result["summary"], result["scores"]
    n = summary["images"]
    assert scores["classes"] == ["normal", "strabismus"]
    assert len(scores["y_true"]) == len(scores["y_prob"]) == n
    assert all(abs(sum(p) - 1) < 1e-6 for p in scores["y_prob"])
    assert [r["label"] for r in result["images"]] == scores["y_true"]
    headline = {"accuracy", "auc", "sensitivity", "specificity"}
    pipeline = {"pipeline_accuracy", "pipeline_auc", "pipeline_sensitivity"}
    assert headline | pipeline | {"pipeline_specificity"} <= set(summary["ci95"])
    assert "bootstrap" in summary["ci_method"]
    for key in headline:
        ci = summary["ci95"][key]
        assert ci is None or ci[0] <= ci[1]
    (companion,) = model.companions  # the evaluation's detector is on the record too
    assert companion["sha256"] == summary["pipeline_detector"]["sha256"]


def test_a_photo_without_an_eye_region_is_a_screening_failure(tiny_run, monkeypatch):
    from eyescan_strabismus import evaluation

    data, _, classifier = tiny_run
    model = models.load(get_registry(), "strabismus", "rfcnn-lite", classifier)

    def one_face(detector, images):  # the detector finds an eye region in the first only
        boxes = [
            np.array([[0.0, 0.0, 40.0, 20.0]]) if i == 0 else np.zeros((0, 4))
            for i in range(len(images))
        ]
        return [{"boxes": b, "scores": np.ones(len(b))} for b in boxes]

    monkeypatch.setattr(evaluation, "detect", one_face)
    result = StrabismusTask().evaluate(model, data, {"split": "test"})
    summary, rows = result["summary"], result["images"]
    n = summary["images"]
    assert summary["pipeline_images"] == n  # every photograph is scored end to end
    assert summary["pipeline_eye_region_found"] == 1 and summary["pipeline_no_eye_region"] == n - 1
    assert summary["pipeline_note"].startswith(f"pipeline metrics on all {n} images; {n - 1}")
    # the n - 1 photographs without an eye region are failures: at most one is right
    first = rows[0]
    right = int((first["pipeline_probability"] >= 0.5) == (first["label"] == 1))
    assert summary["pipeline_accuracy"] == pytest.approx(right / n)
    assert summary["pipeline_tp"] + summary["pipeline_tn"] == right
    assert (
        summary["pipeline_no_eye_region_strabismus"] + summary["pipeline_no_eye_region_normal"]
        == n - 1
    )
    assert summary["ci95"]["pipeline_accuracy"] is not None  # n photographs, not one


def test_evaluate_counts_by_subtype_from_a_manifest(tiny_run, tmp_path, monkeypatch):
    from eyescan_strabismus import evaluation

    data, _, classifier = tiny_run
    test = [s for s in FolderReader().read(data) if s.split == "test" and s.label is not None]
    rows = ["image,id,label,subtype,xmin,ymin,xmax,ymax,split"]
    for k, s in enumerate(test):  # absolute paths, and a manifest away from the images
        subtype = ("esotropia", "exotropia")[k % 2] if s.label == 1 else "normal"
        box = ",".join(f"{v:.1f}" for v in s.boxes[0])
        rows.append(f"{s.image.resolve()},{s.id},{s.label},{subtype},{box},test")
    manifest = tmp_path / "m.csv"
    manifest.write_text("\n".join(rows) + "\n")
    real_detect = evaluation.detect

    def miss_the_second(detector, images):  # no eye region on the second photograph
        out = real_detect(detector, images)
        if len(out) > 1:
            out[1] = {"boxes": np.zeros((0, 4)), "scores": np.zeros(0)}
        return out

    monkeypatch.setattr(evaluation, "detect", miss_the_second)
    model = models.load(get_registry(), "strabismus", "rfcnn-lite", classifier)
    result = StrabismusTask().evaluate(model, manifest, {"split": "test", "reader": "manifest"})
    summary, images = result["summary"], result["images"]
    assert summary["images"] == len(test) and images[1]["pipeline_probability"] is None
    for key, probability in (
        ("by_subtype", "strabismus_probability"),
        ("pipeline_by_subtype", "pipeline_probability"),
    ):
        table = summary[key]
        assert sum(entry["images"] for entry in table.values()) == len(test)
        for name, entry in table.items():
            mine = [r[probability] for r in images if r["subtype"] == name]
            called = sum(p is not None and p >= 0.5 for p in mine)
            assert entry["images"] == len(mine) and entry["strabismus"] == called
            assert entry["no_eye_region"] == sum(p is None for p in mine)
            assert entry["strabismus"] + entry["normal"] + entry["no_eye_region"] == len(mine)
            assert entry["strabismus_rate"] == pytest.approx(called / len(mine))
    positives = [r for r in images if r["label"] == 1]
    hits = sum(
        r["pipeline_probability"] is not None and r["pipeline_probability"] >= 0.5
        for r in positives
    )
    assert summary["pipeline_sensitivity"] == pytest.approx(hits / len(positives))
    assert summary["n"]["pipeline_sensitivity"] == len(positives)


def test_without_any_detector_the_pipeline_is_skipped_and_says_why(tiny_run, monkeypatch):
    data, _, classifier = tiny_run
    model = models.load(get_registry(), "strabismus", "rfcnn-lite", classifier)
    model.card = {k: v for k, v in model.card.items() if k != "detector"}
    task = StrabismusTask()
    monkeypatch.setattr(task, "default_weights", lambda name: None)
    summary = task.evaluate(model, data, {"split": "test"})["summary"]
    assert (
        summary["pipeline_images"] == 0 and "no eye-region detector" in summary["pipeline_skipped"]
    )
    assert "pipeline_accuracy" not in summary and summary["accuracy"] == summary["accuracy"]


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
        files = StrabismusTask().configured({"explain": True}).report(prediction, tmp_path, "blank")
        assert set(files) == {"annotated"}


def test_low_detector_confidence_is_flagged():
    found = region_values((1.0, 2.0, 30.0, 9.0), 0.6)
    assert found["eye_region_found"] and found["low_detector_confidence"]
    assert not region_values((1.0, 2.0, 30.0, 9.0), 0.95)["low_detector_confidence"]
    assert not region_values(None, 0.0)["eye_region_found"]


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


class _Loaded:
    def __init__(self, weights, card):
        self.weights, self.card, self.companions = weights, card, []


def test_detector_is_the_one_the_card_names_by_hash_else_the_shipped(tmp_path, tiny_run):
    _, detector, _ = tiny_run
    task = StrabismusTask()
    sha = weights.read_card(detector)["sha256"]
    classifier = tmp_path / "rfcnn-lite.safetensors"
    named = {"detector": {"model": DETECTOR, "file": str(detector), "sha256": sha}}
    path, expected, how = detector_choice(task, _Loaded(classifier, named))
    assert path == detector and expected == sha and "card" in how
    wrong = {"detector": {"model": DETECTOR, "file": str(detector), "sha256": "0" * 64}}
    with pytest.raises(WeightsError, match="trained with detector sha256 000000000000"):
        detector_choice(task, _Loaded(classifier, wrong))  # a mismatch is refused
    with pytest.raises(WeightsError, match="unhashed link"):
        detector_choice(task, _Loaded(classifier, {"detector": str(detector)}))
    beside = tmp_path / "eye-detector.safetensors"  # never picked up silently
    beside.write_bytes(b"")
    shipped = task.default_weights(DETECTOR)
    if shipped is None:
        with pytest.raises(WeightsError, match="no eye-region detector"):
            detector_choice(task, _Loaded(classifier, {}))
    else:
        path, expected, how = detector_choice(task, _Loaded(classifier, {}))
        assert path == shipped and expected is None and how.startswith("shipped")


def test_prepare_loads_the_detector_as_a_companion(tmp_path, tiny_run):
    _, detector, classifier = tiny_run
    copy = tmp_path / "copy"
    copy.mkdir()
    for suffix in (".safetensors", ".json"):
        (copy / f"rfcnn-lite{suffix}").write_bytes(classifier.with_suffix(suffix).read_bytes())
    link_detector(copy / "rfcnn-lite.safetensors", detector)  # relative path + sha256
    model = models.load(get_registry(), "strabismus", "rfcnn-lite", copy / "rfcnn-lite.safetensors")
    task = StrabismusTask()
    task.prepare(model)
    task.prepare(model)  # cached: loaded and listed once
    (companion,) = model.companions
    assert companion["sha256"] == weights.read_card(detector)["sha256"]
    assert companion["role"] == "detector" and companion["model"] == DETECTOR
    assert task.detector_for(model).sha256 == companion["sha256"]


def test_prediction_without_a_box_draws_only_the_message():
    from eyescan_strabismus.task import annotate

    image = np.zeros((20, 30, 3), np.uint8)
    values = {"result": "no eye region found", "box": None, "strabismus_probability": None}
    assert annotate(Prediction(values, {}, image)).shape == image.shape
