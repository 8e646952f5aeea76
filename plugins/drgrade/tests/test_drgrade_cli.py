"""End to end through the CLI: train, evaluate and predict on a tiny synthetic set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eyescan.reports.records import validate_prediction
from eyescan.testing import invoke_cli, json_lines
from eyescan_drgrade.synthetic_set import write_synthetic_set

TINY = {
    "epochs": 1,
    "pretrained": "none",
    "model_options": {"grader": {"image_size": 64}, "detector": {"image_size": 128}},
    "grader": {"batch_size": 8},
    "detector": {"batch_size": 4},
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Two busy cores: one torch thread avoids OpenMP threads waiting on each other."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, one_thread):
    root = tmp_path_factory.mktemp("drgrade")
    data = write_synthetic_set(root / "data", n_train=10, n_test=5, size=96, seed=2)
    config = root / "tiny.json"
    config.write_text(json.dumps(TINY))
    result = invoke_cli(
        "train", "drgrade", data, "--config", config, "--out", root / "run", "--json"
    )
    assert result.exit_code == 0, result.stderr
    return data, root / "run", json_lines(result.stdout)[-1]


def test_train_writes_grader_detector_and_screen(trained):
    _, run, summary = trained
    assert summary["weights"] == str(run / "screen.safetensors")
    for part in ("grader/grader", "detector/detector", "screen"):
        assert (run / f"{part}.safetensors").exists() and (run / f"{part}.json").exists()
    card = json.loads((run / "screen.json").read_text())
    assert card["model"] == "screen" and card["training"]["grader"]["initialisation"] == "none"


def test_screen_joins_separately_trained_parts(trained, tmp_path):
    from safetensors.torch import load_file

    data, run, _ = trained
    join = tmp_path / "join.json"
    join.write_text(
        json.dumps(
            {
                "model_options": {"combine": "classifier"},
                "grader": {"weights": str(run / "grader" / "grader.safetensors")},
                "detector": {"weights": str(run / "detector" / "detector.safetensors")},
            }
        )
    )
    out = tmp_path / "joined"
    result = invoke_cli(
        "train", "drgrade", data, "--model", "screen", "--config", join, "--out", out
    )
    assert result.exit_code == 0, result.stderr
    joined = load_file(out / "screen.safetensors")
    grader = load_file(run / "grader" / "grader.safetensors")
    assert all((joined[f"grader.{k}"] == v).all() for k, v in grader.items())
    card = json.loads((out / "screen.json").read_text())
    assert card["model_options"]["combine"] == "classifier"
    assert card["model_options"]["grader"] == {"image_size": 64}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"grader": {"weights": str(run / "screen.safetensors")}}))
    result = invoke_cli(
        "train", "drgrade", data, "--model", "screen", "--config", bad, "--out", out
    )
    assert result.exit_code != 0 and "needs a drgrade grader" in result.stderr


def test_evaluate_reports_grading_and_detection_metrics(trained):
    data, run, _ = trained
    result = invoke_cli(
        "evaluate", "drgrade", data, "--weights", run / "screen.safetensors", "--json"
    )
    assert result.exit_code == 0, result.stderr
    records = json_lines(result.stdout)
    summary = records[-1]
    assert summary["kind"] == "summary" and summary["images"] == 5
    for key in (
        "kappa",
        "accuracy",
        "referable_sensitivity",
        "map",
        "ap_haemorrhage",
        "recall_microaneurysm",
        "lesion_grade_kappa",
        "combined_kappa",
    ):
        assert key in summary
    assert len(summary["confusion_matrix"]) == 5
    assert sum(map(sum, summary["confusion_matrix"])) == 5
    assert {r["id"] for r in records[:-1]} == {f"drs_{i:04d}" for i in range(10, 15)}


def test_evaluate_grader_alone_from_the_grade_table(trained):
    data, run, _ = trained
    result = invoke_cli(
        "evaluate",
        "drgrade",
        data / "grades.csv",
        "--model",
        "grader",
        "--weights",
        run / "grader" / "grader.safetensors",
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    summary = json_lines(result.stdout)[-1]
    assert "kappa" in summary and "map" not in summary and summary["reader"] == "grades"


def test_predict_outputs_grade_probabilities_lesions_and_gradcam(trained, tmp_path):
    data, run, _ = trained
    image = data / "images" / "drs_0013.png"
    out = tmp_path / "out"
    result = invoke_cli(
        "predict",
        "drgrade",
        image,
        "--weights",
        run / "screen.safetensors",
        "--out",
        out,
        "--json",
        "--explain",
    )
    assert result.exit_code == 0, result.stderr
    (record,) = json_lines(result.stdout)
    assert validate_prediction(record) == []
    values = record["outputs"]
    assert 0 <= values["grade"] <= 4 and values["referable"] == (values["grade"] >= 2)
    assert len(values["probabilities"]) == 5
    assert abs(sum(values["probabilities"]) - 1) < 1e-3
    assert set(values["lesion_counts"]) == {"microaneurysm", "haemorrhage", "hard_exudate"}
    assert values["combine"] == "max"
    assert values["grade"] == max(values["grade_classifier"], values["grade_lesions"])
    assert (out / record["files"]["lesions"]).exists() and (
        out / record["files"]["gradcam"]
    ).exists()


def test_combination_rule_from_the_environment(trained, tmp_path, monkeypatch):
    data, run, _ = trained
    image, weights = data / "images" / "drs_0012.png", run / "screen.safetensors"

    def predict() -> dict:
        result = invoke_cli("predict", "drgrade", image, "-w", weights, "-o", tmp_path, "--json")
        (record,) = json_lines(result.stdout)
        return record

    monkeypatch.setenv("EYESCAN_DRGRADE_COMBINE", "classifier")
    outputs = predict()["outputs"]
    assert outputs["grade"] == outputs["grade_classifier"]
    monkeypatch.setenv("EYESCAN_DRGRADE_COMBINE", "vote")
    record = predict()
    assert not record["ok"] and "EYESCAN_DRGRADE_COMBINE" in record["error"]["message"]


def test_unknown_lesion_label_is_a_one_line_error(tmp_path):
    from eyescan.api import imageio, synthetic

    imageio.save_png(tmp_path / "a.png", synthetic.make_fundus(96, seed=1).image)
    boxes = tmp_path / "boxes.csv"
    boxes.write_text("image,label,xmin,ymin,xmax,ymax\na.png,cotton wool spot,10,10,20,20\n")
    result = invoke_cli(
        "train", "drgrade", boxes, "--model", "detector", "--epochs", "1", "--out", tmp_path / "r"
    )
    assert result.exit_code != 0
    assert "a.png" in result.stderr and "cotton wool spot" in result.stderr


def test_shipped_weights_predict(tmp_path):
    from eyescan.api import imageio, synthetic

    weights = Path(__file__).parents[1] / "eyescan_drgrade" / "weights" / "screen.safetensors"
    if not weights.exists():
        pytest.skip("no shipped weights yet")
    imageio.save_png(tmp_path / "eye.png", synthetic.make_fundus((128, 192), seed=9, grade=3).image)
    result = invoke_cli(
        "predict", "drgrade", tmp_path / "eye.png", "--out", tmp_path / "o", "--json"
    )
    assert result.exit_code == 0, result.stderr
    (record,) = json_lines(result.stdout)
    assert record["ok"] and record["model"] == "screen" and "lesions" in record["outputs"]
