"""End to end through the CLI: train, evaluate and predict on a tiny synthetic set."""

from __future__ import annotations

import json

import pytest

from eyescan.reports.records import validate_prediction
from eyescan.testing import invoke_cli, json_lines
from eyescan_drgrade.synthetic_set import write_synthetic_set

TINY = {
    "epochs": 1,
    "init": "none",
    "model_options": {"grader": {"image_size": 64}, "detector": {"image_size": 128}},
    "grader": {"batch_size": 8},
    "detector": {"batch_size": 4},
}


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
    assert card["model"] == "screen" and card["training"]["grader"]["init"] == []
    data = card["training"]["data"]  # the read_split record: the data set's own train split
    assert data["split"] == "train" and data["count"] == 10 and "own split" in data["rule"]
    grader = json.loads((run / "grader" / "grader.json").read_text())
    assert grader["init"] == [] and "patient" in grader["training"]["validation"]
    # 2 images per grade: no validation image, so the training loss chose (and says so)
    assert (
        grader["training"]["val_images"] == 0 and grader["training"]["selected_by"] == "train_loss"
    )
    assert summary["grader_selected_by"] == "train_loss" and "grader_best_train_loss" in summary


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
    # the part's options, completed by training: FOV margin, no DME labels -> no DME head
    assert card["model_options"]["grader"] == {"image_size": 64, "fov_margin": 0.02, "dme": False}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"grader": {"weights": str(run / "screen.safetensors")}}))
    result = invoke_cli(
        "train", "drgrade", data, "--model", "screen", "--config", bad, "--out", out
    )
    assert result.exit_code != 0 and "needs a drgrade grader" in result.stderr


def test_evaluate_reports_grading_and_detection_metrics(trained, tmp_path):
    data, run, _ = trained
    figures = tmp_path / "plots"
    result = invoke_cli(
        "evaluate",
        "drgrade",
        data,
        "--weights",
        run / "screen.safetensors",
        "--json",
        "--plots",
        figures,
    )
    assert result.exit_code == 0, result.stderr
    assert any("confusion" in p.name for p in figures.glob("*.png"))  # from result["scores"]
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
    assert summary["data_split"]["split"] == "test" and summary["data_split"]["count"] == 5
    assert set(summary["data_split"]["ids"]) == {f"drs_{i:04d}" for i in range(10, 15)}
    assert "bootstrap" in summary["ci_method"]
    for key in ("kappa", "accuracy", "referable_auc", "lesion_grade_kappa", "combined_kappa"):
        assert key in summary["ci95"]
    for key in ("map", "detection_precision", "detection_recall"):
        assert key in summary["ci95"]
        low_high = summary["ci95"][key]
        assert low_high is None or low_high[0] <= low_high[1]


def test_evaluate_returns_scores_for_plots(trained):
    from eyescan.api import get_registry, models
    from eyescan_drgrade.evaluation import evaluate

    data, run, _ = trained
    loaded = models.load(get_registry(), "drgrade", None, run / "screen.safetensors")
    result = evaluate(loaded, data, {"split": "test"})
    scores = result["scores"]
    assert len(scores["y_true"]) == len(scores["y_prob"]) == 5
    assert len(scores["classes"]) == 5 and all(len(p) == 5 for p in scores["y_prob"])
    assert all(abs(sum(p) - 1) < 1e-3 for p in scores["y_prob"])


def test_plain_grade_table_is_held_out_from_training(trained, tmp_path):
    """A CSV without a split column: training takes the hold-out rule's train part,
    evaluation scores only the held-out images, and the two never meet."""
    import csv

    data, _, _ = trained
    table = tmp_path / "plain.csv"
    with open(data / "grades.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle)]
    lines = ["image,grade"] + [f"{data / r['image']},{r['grade']}" for r in rows]
    table.write_text("\n".join(lines) + "\n")
    out, config = tmp_path / "run", tmp_path / "grader.json"
    config.write_text(
        json.dumps({"epochs": 1, "batch_size": 8, "model_options": {"image_size": 64}})
    )
    result = invoke_cli(
        "train",
        "drgrade",
        table,
        "--model",
        "grader",
        "--config",
        config,
        "--out",
        out,
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    card = json.loads((out / "grader.json").read_text())
    trained_on = set(card["training"]["data"]["ids"])
    assert "hold-out" in card["training"]["data"]["rule"] and len(trained_on) < 15
    result = invoke_cli(
        "evaluate",
        "drgrade",
        table,
        "--model",
        "grader",
        "--weights",
        out / "grader.safetensors",
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    summary = json_lines(result.stdout)[-1]
    scored = set(summary["data_split"]["ids"])
    assert scored and not scored & trained_on
    assert len(scored | trained_on) == 15 and summary["images"] == len(scored)


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
    assert "map" not in summary["ci95"] and "kappa" in summary["ci95"]


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
