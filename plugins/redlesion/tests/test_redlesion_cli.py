"""The whole pipeline through the CLI on a tiny synthetic IDRiD-layout set:
stage 1 → stage 2 (from stage 1's weights) → predict → evaluate; and a manifest
without splits, whose hold-out keeps training and scored images apart."""

from __future__ import annotations

import json

import pytest

from eyescan.testing import invoke_cli, json_lines
from eyescan_redlesion.data import write_synthetic_idrid

TINY = {"input_width": None, "repeats": 1, "val_images": 1, "optimizer": "adam", "epochs": 1}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("redlesion")
    data = write_synthetic_idrid(root / "IDRiD", n_train=3, n_test=2, size=(48, 64), seed=3)
    stage1 = {**TINY, "stage": 1, "lr": 1e-3, "topk_period": 1, "model_options": {"width": 0.0625}}
    stage2 = {**TINY, "stage": 2, "lr": 1e-4, "init_weights": str(root / "s1/redseg.safetensors")}
    for name, recipe in (("s1", stage1), ("s2", stage2)):
        (root / f"{name}.json").write_text(json.dumps(recipe))
        result = invoke_cli(
            "train", "redlesion", data, "--config", root / f"{name}.json", "--out", root / name,
            "--json",
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr + result.stdout
    return root, data


def test_two_stages_are_recorded_in_the_model_card(trained):
    root, _ = trained
    card = json.loads((root / "s2/redseg.json").read_text())
    assert card["model_options"] == {"width": 0.0625}
    training = card["training"]
    assert training["stage"] == 2 and training["loss"] == "redlesion-mse"
    assert [s["stage"] for s in training["stages"]] == [1, 2]
    assert training["stages"][0]["topk"]["lambda0"] == 0.14
    first = json.loads((root / "s1/redseg.json").read_text())
    assert card["init"][0]["sha256"] == first["sha256"] and training["init"] == card["init"]
    assert first["init"] == [] and training["stages"][0]["init"] == []  # stage 1 from scratch
    assert training["selected_by"] == "val_loss" and training["val_rule"].startswith("hold-out")
    assert len(training["deep_supervision"]) == 8
    assert set(card["thresholds"]) == {"ma", "he"}


def test_predict_writes_maps_overlay_and_counts(trained):
    root, data = trained
    images = data / "A. Segmentation" / "1. Original Images" / "b. Testing Set"
    result = invoke_cli(
        "predict", "redlesion", images, "--weights", root / "s2/redseg.safetensors",
        "--out", root / "pred", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    record = json_lines(result.stdout)[0]
    outputs = record["outputs"]
    for name in ("ma", "he"):
        assert isinstance(outputs[f"{name}_count"], int)
        assert isinstance(outputs[f"{name}_area_px"], int)
        assert outputs[f"{name}_score"] == outputs[f"{name}_max_probability"]
        threshold = outputs["thresholds"][name]
        assert outputs[f"{name}_present"] is (outputs[f"{name}_score"] >= threshold)
    assert set(record["files"]) == {"ma_probability", "he_probability", "overlay"}
    assert all((root / "pred" / f).exists() for f in record["files"].values())


def test_evaluate_reports_pixel_and_lesion_metrics(trained):
    root, data = trained
    result = invoke_cli(
        "evaluate", "redlesion", data, "--weights", root / "s2/redseg.safetensors", "--json"
    )
    assert result.exit_code == 0, result.stderr
    summary = json_lines(result.stdout)[-1]
    headline = (
        "auc_pr",
        "auc_roc",
        "precision",
        "recall",
        "f1",
        "lesion_recall",
        "lesion_precision",
    )
    for name in ("ma", "he"):
        for key in (*headline, "image_auc", "froc"):
            assert f"{name}_{key}" in summary and f"{name}_{key}" in summary["ci95"]
        assert summary[f"{name}_mask_images"] == 2 and summary[f"{name}_froc"] is None
    assert "bootstrap over images" in summary["ci_method"]
    assert summary["data_split"]["ids"] == ["IDRiD_04", "IDRiD_05"]


def test_training_never_sees_the_test_images(trained):
    root, _ = trained
    for stage in ("s1", "s2"):
        data = json.loads((root / f"{stage}/redseg.json").read_text())["training"]["data"]
        assert data["split"] == "train" and data["ids"] == ["IDRiD_01", "IDRiD_02", "IDRiD_03"]
        assert data["rule"] == "the data set's own split"


def test_a_manifest_without_splits_is_held_out_for_evaluation(trained, tmp_path):
    root, data = trained
    seg = data / "A. Segmentation"
    rows = ["image,ma,he"]
    for image in sorted(seg.rglob("IDRiD_*.jpg")):
        masks = {
            name: next(iter(seg.rglob(f"{image.stem}_{name.upper()}.tif")), None)
            for name in ("ma", "he")
        }
        rows.append(",".join([str(image), *(str(m) if m else "" for m in masks.values())]))
    (tmp_path / "all.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "r.json").write_text(
        json.dumps(
            {**TINY, "stage": 1, "epochs": 1, "val_images": 0, "model_options": {"width": 0.0625}}
        )
    )
    result = invoke_cli(
        "train", "redlesion", tmp_path / "all.csv", "--config", tmp_path / "r.json",
        "--out", tmp_path / "run", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr + result.stdout
    trained_on = json.loads((tmp_path / "run/redseg.json").read_text())["training"]["data"]
    assert trained_on["rule"].startswith("hold-out") and trained_on["count"] == 4
    result = invoke_cli(
        "evaluate", "redlesion", tmp_path / "all.csv", "--weights",
        tmp_path / "run/redseg.safetensors", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    scored = json_lines(result.stdout)[-1]["data_split"]
    assert scored["count"] == 1 and not set(scored["ids"]) & set(trained_on["ids"])


def test_stage_two_without_init_weights_and_predict_without_weights_fail_clearly(tmp_path):
    (tmp_path / "s2.json").write_text(json.dumps({"stage": 2}))
    data = tmp_path / "IDRiD" / "A. Segmentation" / "1. Original Images"
    data.mkdir(parents=True)
    result = invoke_cli("train", "redlesion", tmp_path / "IDRiD", "--config", tmp_path / "s2.json")
    assert result.exit_code == 1 and "init_weights" in result.stderr
    (tmp_path / "old.json").write_text(json.dumps({"stage": 1, "imagenet_weights": "auto"}))
    result = invoke_cli("train", "redlesion", tmp_path / "IDRiD", "--config", tmp_path / "old.json")
    assert result.exit_code == 1 and '"init"' in result.stderr
    image = tmp_path / "a.png"
    from PIL import Image

    Image.new("RGB", (32, 32)).save(image)
    result = invoke_cli("predict", "redlesion", image, "--model", "redseg")  # none shipped
    assert result.exit_code == 1 and "--weights" in result.stderr
