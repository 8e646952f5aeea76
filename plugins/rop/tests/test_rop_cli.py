"""The rop task through the CLI: train (plain, distilled, stage 2, teacher, CV), predict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eyescan.reports.records import validate_prediction
from eyescan.testing import invoke_cli, json_lines
from eyescan_rop.synthetic import write_rop_dataset

TINY = {"image_size": 32, "epochs": 1, "imagenet": False, "val_fraction": 0.25, "lr": 1e-3}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("rop")
    return write_rop_dataset(folder, n_patients=12, size=48, seed=3, proportions=(0.4, 0.3, 0.3))


def _recipe(folder: Path, name: str, **values) -> Path:
    path = folder / f"{name}.json"
    path.write_text(json.dumps({**TINY, **values}))
    return path


def _train(data: Path, out: Path, recipe: Path, *extra: str) -> dict:
    result = invoke_cli("train", "rop", data, "--out", out, "--config", recipe, "--json", *extra)
    assert result.exit_code == 0, result.stderr
    return json_lines(result.stdout)[-1]


def test_models_lists_parameters_and_macs():
    result = invoke_cli("models", "rop", "--json")
    assert result.exit_code == 0, result.stderr
    rows = {r["model"]: r for r in json_lines(result.stdout)}
    assert rows["ms-rop"]["parameters"] == 26_585_796 and rows["ms-rop"]["macs"] > 5e9
    assert rows["mn-rop"]["parameters"] == 3_506_874 and rows["mn-rop"]["macs"] < 0.4e9


def test_student_distillation_stage2_predict_evaluate(data, tmp_path):
    plain = _train(data, tmp_path / "s1", _recipe(tmp_path, "plain"), "--model", "mn-rop")
    assert plain["stage"] == 1 and not plain["distilled"]
    # Any trained rop classifier can teach; a small one keeps the test fast.
    kd = _recipe(tmp_path, "kd", teacher_weights=plain["weights"])
    distilled = _train(data, tmp_path / "kd1", kd)
    card = json.loads(Path(distilled["weights"]).with_suffix(".json").read_text())
    assert card["distilled_from"]["alpha"] == 0.95 and card["stage"] == 1
    stage2 = _recipe(
        tmp_path,
        "s2",
        stage=2,
        teacher_weights=plain["weights"],
        init_weights=distilled["weights"],
        stage1_weights=distilled["weights"],
    )
    second = _train(data, tmp_path / "kd2", stage2)
    assert second["stage"] == 2 and second["linked_to"] == distilled["weights"]

    images = sorted((data.parent / "images").glob("*.png"))[:3]
    result = invoke_cli(
        "predict",
        "rop",
        *images,
        "--weights",
        distilled["weights"],
        "--out",
        tmp_path / "p",
        "--json",
        "--explain",
    )
    assert result.exit_code == 0, result.stderr
    for record in json_lines(result.stdout):
        assert validate_prediction(record) == []
        out = record["outputs"]
        assert out["stage1"] in ("normal", "rop") and 0 <= out["rop_probability"] <= 1
        assert out["stage2_run"] == (out["stage1"] == "rop")
        assert (out["tr_rop_probability"] is None) != out["stage2_run"]
        assert (tmp_path / "p" / record["files"]["gradcam_stage1"]).exists()
        assert ("gradcam_stage2" in record["files"]) == out["stage2_run"]

    result = invoke_cli(
        "evaluate", "rop", data, "--weights", distilled["weights"], "--split", "train", "--json"
    )
    assert result.exit_code == 0, result.stderr
    summary = json_lines(result.stdout)[-1]
    for key in ("stage1_accuracy", "stage1_auc_roc", "stage2_sensitivity", "cascade_accuracy"):
        assert key in summary


def test_teacher_trains_through_the_cli(data, tmp_path):
    recipe = _recipe(tmp_path, "teacher", steps_per_epoch=1, val_fraction=0)
    summary = _train(data, tmp_path / "t", recipe, "--model", "ms-rop")
    card = json.loads(Path(summary["weights"]).with_suffix(".json").read_text())
    assert card["model"] == "ms-rop" and card["parameters"] == 26_585_796


def test_cross_validation_prints_the_seed_table(data, tmp_path):
    # A MobileNetV2 teacher stands in for MS-ROP to keep the test fast.
    recipe = _recipe(tmp_path, "cv", folds=2, teacher_model="mn-rop", val_fraction=0.3)
    result = invoke_cli("train", "rop", data, "--out", tmp_path / "cv", "--config", recipe)
    assert result.exit_code == 0, result.stderr
    assert "MN-ROP (distilled)" in result.stdout and "grouped_by: patient" in result.stdout
    table = (tmp_path / "cv" / "cv_table.md").read_text()
    assert "| MS-TR-ROP (teacher) |" in table and "sensitivity" in table
    results = json.loads((tmp_path / "cv" / "cv_results.json").read_text())
    assert len(results["folds"]) == 2 and "stage2/alone" in results["folds"][0]


def test_shipped_cascade_predicts_out_of_the_box(tmp_path):
    from PIL import Image

    from eyescan_rop.synthetic import make_rop_fundus

    path = tmp_path / "tr.png"
    Image.fromarray(make_rop_fundus(128, seed=11, label=2).image).save(path)
    result = invoke_cli("predict", "rop", path, "--out", tmp_path / "o", "--json")
    assert result.exit_code == 0, result.stderr
    out = json_lines(result.stdout)[0]["outputs"]
    assert out["models"] == {"stage1": "mn-rop", "stage2": "mn-rop"}
    assert out["diagnosis"] in ("normal", "rop", "tr-rop")


def test_bad_label_is_one_clear_error(tmp_path):
    (tmp_path / "m.csv").write_text("image,label\nx.png,sick\n")
    result = invoke_cli("train", "rop", tmp_path / "m.csv", "--out", tmp_path / "o")
    assert result.exit_code == 1 and "m.csv:2: label 'sick'" in result.stderr
