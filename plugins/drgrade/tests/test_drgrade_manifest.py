"""The grading manifest (IDRiD + APTOS in one table) and the grader's DME-risk head end
to end: made-up layouts of tiny synthetic photographs in tmp_path and, where present,
the real copies in ../shared/data."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from eyescan.api import DataError, find_reader, get_registry, read_split, splits
from eyescan.testing import invoke_cli, json_lines
from eyescan_drgrade.manifest import (
    MANIFEST_COLUMNS,
    GradingManifestReader,
    manifest_samples,
    write_manifest,
)

SHARED = Path(__file__).resolve().parents[4] / "shared" / "data"
IDRID = SHARED / "IDRiD" / "B. Disease Grading"
APTOS = SHARED / "APTOS2019"
RECIPE = Path(__file__).resolve().parents[1] / "eyescan_drgrade" / "recipes"
GRADER = {"epochs": 1, "batch_size": 8, "model_options": {"image_size": 48}}


@pytest.fixture(scope="module")
def layouts(grading_layouts) -> tuple[Path, Path, Path]:
    idrid, aptos = grading_layouts
    manifest = write_manifest(
        manifest_samples(idrid, aptos), idrid.parent / "runs" / "manifest.csv"
    )
    return idrid, aptos, manifest


def test_manifest_keeps_the_readers_ids_labels_and_splits(layouts):
    idrid, aptos, manifest = layouts
    assert manifest.read_text().splitlines()[0] == ",".join(MANIFEST_COLUMNS)
    assert find_reader(get_registry(), "drgrade", manifest)[0] == "manifest"
    samples = {s.id: s for s in GradingManifestReader().read(manifest)}
    assert len(samples) == 30
    first = samples["train/IDRiD_001"]
    assert (first.label, first.dme, first.split, first.source) == (1, 1, "train", "idrid")
    assert samples["test/IDRiD_001"].split == "test"  # same name, other split: other id
    aptos_one = samples["003a1b2c3d4e"]
    assert (aptos_one.label, aptos_one.dme, aptos_one.split) == (3, None, None)
    assert aptos_one.source == "aptos2019" and aptos_one.image.is_absolute()


def test_manifest_holds_out_the_same_images_as_each_data_set_alone(layouts):
    """Evaluating IDRiD or APTOS on its own folder scores exactly what a model trained
    on the manifest never saw: the IDRiD test set, the APTOS hold-out."""
    idrid, aptos, manifest = layouts
    registry = get_registry()
    test = {s.id for s in read_split(registry, "drgrade", manifest, "test").samples}
    train = read_split(registry, "drgrade", manifest, "train").samples
    alone = {
        s.id for d in (idrid, aptos) for s in read_split(registry, "drgrade", d, "test").samples
    }
    assert test == alone and not test & {s.id for s in train}
    assert sum(s.source == "aptos2019" for s in train) == 10  # 1 of 3 per grade held out


def test_grade_table_errors_on_dme_and_repeated_names(tmp_path, photo):
    photo(tmp_path / "a.png", 1, (32, 32))
    photo(tmp_path / "sub" / "a.png", 2, (32, 32))
    table = tmp_path / "grades.csv"
    table.write_text("image,grade,dme\na.png,1,3\n")
    with pytest.raises(DataError, match=r"grades.csv:2: DME risk 3 is outside 0-2"):
        GradingManifestReader().read(table)
    table.write_text("image,grade\na.png,1\nsub/a.png,2\n")
    with pytest.raises(DataError, match="'a' is listed twice .*'id' column"):
        GradingManifestReader().read(table)


def test_grader_with_dme_head_trains_on_idrid_and_aptos_then_predicts_and_evaluates(
    layouts, tmp_path
):
    """The real-data recipe, shrunk to one epoch of 48-px images (no DME option: the
    IDRiD labels switch the head on)."""
    idrid, aptos, manifest = layouts
    recipe = json.loads((RECIPE / "grader-idrid-aptos-cpu.json").read_text())
    del recipe["model_options"]["dme"]
    recipe = {**recipe, **GRADER, "model_options": {**recipe["model_options"], "image_size": 48}}
    config = tmp_path / "grader.json"
    config.write_text(json.dumps(recipe))
    out = tmp_path / "run"
    result = invoke_cli(
        "train", "drgrade", manifest, "--model", "grader", "--config", config, "--out", out,
        "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    card = json.loads((out / "grader.json").read_text())
    assert card["model_options"]["dme"] is True and card["model_options"]["fov_margin"] == 0.02
    training = card["training"]
    assert training["train_images"] + training["val_images"] == 20  # 10 IDRiD + 10 APTOS
    assert 0 < training["train_images_with_dme"] < training["train_images"]
    sources = {d["source"]: d for d in training["data_sources"]}  # the data and its terms
    assert (sources["idrid"]["images"], sources["aptos2019"]["images"]) == (10, 10)
    assert "CC BY 4.0" in sources["idrid"]["terms"]
    assert "non-commercial" in sources["aptos2019"]["terms"]
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert "train_drgrade-dme" in metrics[-1] and "val_dme_accuracy" in metrics[-1]
    weights = out / "grader.safetensors"

    image = idrid / "1. Original Images" / "b. Testing Set" / "IDRiD_002.png"
    predicted = invoke_cli("predict", "drgrade", image, "--model", "grader", "--weights",
                           weights, "--out", tmp_path / "out", "--json")  # fmt: skip
    (record,) = json_lines(predicted.stdout)
    values = record["outputs"]
    assert record["ok"] and 0 <= values["dme_risk"] <= 2 and len(values["dme_probabilities"]) == 3
    assert abs(sum(values["dme_probabilities"]) - 1) < 1e-3
    assert values["dme_risk"] == max(range(3), key=values["dme_probabilities"].__getitem__)
    assert 0 <= values["referable_probability"] <= 1 and len(values["probabilities"]) == 5

    evaluated = invoke_cli("evaluate", "drgrade", idrid, "--model", "grader", "--weights",
                           weights, "--json")  # fmt: skip
    assert evaluated.exit_code == 0, evaluated.stderr
    *images, summary = json_lines(evaluated.stdout)
    assert summary["images"] == summary["dme_images"] == 5 and summary["reader"] == "idrid"
    assert sum(map(sum, summary["dme_confusion_matrix"])) == 5
    assert all("dme_true" in r and "dme_risk" in r for r in images)
    for key in ("kappa", "accuracy", "referable_auc", "dme_accuracy", "dme_kappa",
                "joint_accuracy"):  # fmt: skip
        assert key in summary and key in summary["ci95"]
    assert summary["joint_accuracy"] <= min(summary["accuracy"], summary["dme_accuracy"])

    on_aptos = invoke_cli("evaluate", "drgrade", aptos, "--model", "grader", "--weights",
                          weights, "--json")  # fmt: skip
    summary = json_lines(on_aptos.stdout)[-1]
    assert summary["dme_images"] == 0 and "dme_accuracy" not in summary and "kappa" in summary


def test_dme_head_asked_for_without_dme_labels_is_a_one_line_error(layouts, tmp_path):
    _, aptos, _ = layouts
    config = tmp_path / "grader.json"
    config.write_text(json.dumps({**GRADER, "model_options": {"image_size": 48, "dme": True}}))
    result = invoke_cli("train", "drgrade", aptos, "--model", "grader", "--config", config,
                        "--out", tmp_path / "run")  # fmt: skip
    assert result.exit_code != 0 and "no training image has a DME risk" in result.stderr
    assert str(aptos) in result.stderr


@pytest.mark.skipif(
    not (IDRID.exists() and APTOS.exists()), reason="IDRiD or APTOS 2019 not in ../shared/data"
)
def test_real_manifest_of_idrid_and_aptos(tmp_path):
    samples = manifest_samples(IDRID, APTOS)
    assert Counter((s.source, s.split) for s in samples) == {
        ("idrid", "train"): 412,
        ("idrid", "test"): 103,
        ("aptos2019", None): 3000,
    }
    assert Counter(s.dme is None for s in samples) == {False: 515, True: 3000}
    manifest = write_manifest(samples, tmp_path / "manifest.csv")
    registry = get_registry()
    test = read_split(registry, "drgrade", manifest, "test").samples
    aptos_test = read_split(registry, "drgrade", APTOS, "test").samples
    assert {s.id for s in test if s.source == "aptos2019"} == {s.id for s in aptos_test}
    assert sum(s.source == "idrid" for s in test) == 103
    train = read_split(registry, "drgrade", manifest, "train").samples
    assert not splits.overlap(train, test)
