"""rop through the CLI: train (plain, distilled, stage 2, teacher, CV), predict, evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from eyescan.reports.records import validate_prediction
from eyescan.testing import invoke_cli, json_lines
from eyescan_rop.synthetic import write_rop_dataset

TINY = {"image_size": 32, "epochs": 1, "val_fraction": 0.25, "lr": 1e-3}
HEADLINE = ("accuracy", "precision", "f1", "sensitivity", "specificity", "auc_roc")


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
    card = json.loads(Path(distilled["weights"]).with_suffix(".json").read_text())
    stage2_card = json.loads(Path(second["weights"]).with_suffix(".json").read_text())
    assert card["stage2_sha256"] == stage2_card["sha256"] == second["stage2_sha256"]
    assert stage2_card["init"][0]["sha256"] == card["sha256"]
    assert stage2_card["training"]["data"]["split"] == "train"
    assert second["data_split"]["rule"].startswith("hold-out")

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
        companion, provider = record["companions"]  # stage 2, and the vessel map's provider
        assert companion["role"] == "stage2" and companion["sha256"] == card["stage2_sha256"]
        assert provider["role"] == "vessel_probability from vessels"
        out = record["outputs"]
        assert out["stage1"] in ("normal", "rop") and 0 <= out["rop_probability"] <= 1
        assert out["stage2_run"] == (out["stage1"] == "rop")
        assert (out["tr_rop_probability"] is None) != out["stage2_run"]
        assert (tmp_path / "p" / record["files"]["gradcam_stage1"]).exists()
        assert ("gradcam_stage2" in record["files"]) == out["stage2_run"]

    plots = tmp_path / "plots"
    result = invoke_cli(
        "evaluate", "rop", data, "--weights", distilled["weights"], "--json", "--plots", plots
    )
    assert result.exit_code == 0, result.stderr
    summary = json_lines(result.stdout)[-1]
    for key in ("stage1_accuracy", "stage1_auc_roc", "stage2_sensitivity", "cascade_accuracy"):
        assert key in summary and key in summary["ci95"]
    assert set(summary["ci95"]) == {f"stage{k}_{m}" for k in (1, 2) for m in HEADLINE} | {
        "cascade_accuracy"
    }
    assert "bootstrap" in summary["ci_method"]
    # The held-out patients, never seen in training: the same rule as the training run's.
    assert summary["data_split"]["split"] == "test"
    assert summary["data_split"]["rule"] == second["data_split"]["rule"]
    assert summary["images"] == summary["data_split"]["count"]
    assert not set(summary["data_split"]["ids"]) & set(second["data_split"]["ids"])
    assert (plots / "index.html").exists() and list(plots.glob("*confusion*.png"))


def test_teacher_trains_through_the_cli(data, tmp_path):
    recipe = _recipe(tmp_path, "teacher", steps_per_epoch=1, val_fraction=0)
    summary = _train(data, tmp_path / "t", recipe, "--model", "ms-rop")
    card = json.loads(Path(summary["weights"]).with_suffix(".json").read_text())
    assert card["model"] == "ms-rop" and card["parameters"] == 26_585_796
    assert summary["selected_by"] == "train_loss" and "best_train_loss" in summary
    assert card["init"] == [] and card["training"]["val_images"] == 0


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


def _shipped_copy(folder: Path) -> Path:
    import shutil

    from eyescan_rop.task import WEIGHTS_DIR

    for name in ("mn-rop", "mn-tr-rop"):
        for suffix in (".safetensors", ".json"):
            shutil.copy(WEIGHTS_DIR / f"{name}{suffix}", folder / f"{name}{suffix}")
    return folder / "mn-rop.safetensors"


def _image(folder: Path) -> Path:
    from PIL import Image

    from eyescan_rop.synthetic import make_rop_fundus

    path = folder / "x.png"
    Image.fromarray(make_rop_fundus(64, seed=5, label=2).image).save(path)
    return path


def test_stage2_link_with_a_wrong_or_no_hash_is_refused(tmp_path):
    stage1 = _shipped_copy(tmp_path)
    image = _image(tmp_path)
    card_file = stage1.with_suffix(".json")
    card = json.loads(card_file.read_text())
    for sha in ("0" * 64, None):
        changed = (
            {**card, "stage2_sha256": sha}
            if sha
            else {k: v for k, v in card.items() if k != "stage2_sha256"}
        )
        card_file.write_text(json.dumps(changed))
        result = invoke_cli("predict", "rop", image, "--weights", stage1, "--out", tmp_path / "o")
        assert result.exit_code != 0
        message = result.stderr.strip()
        assert "stage-2" in message or "stage 2" in message
        assert len(message.splitlines()) == 1 and "Traceback" not in message
    # A stage-2 file replaced behind the card's back: its own card hash no longer matches.
    card_file.write_text(json.dumps(card))
    stage2 = tmp_path / "mn-tr-rop.safetensors"
    stage2.write_bytes(stage2.read_bytes()[:-4] + b"\0\0\0\0")
    result = invoke_cli("predict", "rop", image, "--weights", stage1, "--out", tmp_path / "p")
    assert result.exit_code != 0 and "does not match its model card" in result.stderr


def test_dragon_style_csv_trains_and_evaluates_with_columns(dragon_table, dragon_columns, tmp_path):
    table = dragon_table
    recipe = _recipe(tmp_path, "s2", stage=2, val_fraction=0)
    summary = _train(
        table, tmp_path / "s2", recipe, "--model", "mn-rop", "--columns", dragon_columns
    )
    assert summary["data_split"]["count"] == 6  # the Train rows only
    assert summary["data_split"]["rule"] == "the data set's own split"
    result = invoke_cli(
        "evaluate",
        "rop",
        table,
        "--weights",
        summary["weights"],
        "--columns",
        dragon_columns,
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    lines = json_lines(result.stdout)
    summary = lines[-1]
    assert summary["images"] == summary["stage2_images"] == 6 and "stage1_accuracy" not in summary
    assert {r["input"].split("/Dataset/")[1].split("/")[0] for r in lines[:-1]} == {"Test"}
    assert set(summary["ci95"]) == {f"stage2_{m}" for m in HEADLINE}


def test_evaluation_returns_scores_for_the_plots(data):
    from eyescan.api import get_registry, models
    from eyescan_rop.evaluation import binary_scores, evaluate, fast_scores

    loaded = models.load(get_registry(), "rop")
    result = evaluate(loaded, data, {})
    scores = result["scores"]
    n = result["summary"]["images"]
    assert scores["classes"] == ["normal", "rop"] and len(scores["y_true"]) == n
    assert all(abs(sum(p) - 1) < 1e-9 for p in scores["y_prob"])
    assert result["summary"]["ci95"]["stage1_accuracy"] is None or (
        result["summary"]["ci95"]["stage1_accuracy"][0]
        <= result["summary"]["stage1_accuracy"]
        <= result["summary"]["ci95"]["stage1_accuracy"][1]
    )
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 2, 40), rng.random(40)
    p[:5] = 0.5  # ties
    fast, exact = fast_scores(y, p), binary_scores(y, p)
    assert fast == pytest.approx(exact)


def test_export_of_the_cascade_passes_parity(tmp_path):
    """Stage 1 exported to ONNX is checked beside its weights, so its stage-2 link is found."""
    import shutil

    from eyescan_rop.task import WEIGHTS_DIR

    for name in ("mn-rop", "mn-tr-rop"):
        for suffix in (".safetensors", ".json"):
            shutil.copy(WEIGHTS_DIR / f"{name}{suffix}", tmp_path / f"{name}{suffix}")
    weights = tmp_path / "mn-rop.safetensors"
    result = invoke_cli("export", "rop", "--weights", weights, "--onnx", tmp_path / "mn-rop.onnx")
    assert result.exit_code == 0, result.stderr
    assert "parity ok" in result.stderr + result.stdout
