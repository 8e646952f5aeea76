"""The scripts that turn a trained grader and detector into shipped files: the
lesion-grade calibration on validation images and the fundus-pretrained backbone."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from eyescan.api import get_registry, weights
from eyescan.api import init as init_from_file
from eyescan.api import models as loading
from eyescan.testing import invoke_cli
from eyescan_drgrade.manifest import manifest_samples, write_manifest
from eyescan_drgrade.models import GradeNet

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
TINY = {"epochs": 1, "batch_size": 4, "val_fraction": 0.3, "seed": 0}


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _train(tmp_path: Path, data: Path, model: str, recipe: dict) -> Path:
    config = tmp_path / f"{model}.json"
    config.write_text(json.dumps({**TINY, **recipe}))
    out = tmp_path / model
    result = invoke_cli("train", "drgrade", data, "--model", model, "--config", config,
                        "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    return out / f"{model}.safetensors"


@pytest.fixture(scope="module")
def trained(grading_layouts, tmp_path_factory):
    """A 48-px grader on IDRiD + APTOS and a 64-px detector on the IDRiD boxes, one epoch each."""
    idrid, aptos = grading_layouts
    root = tmp_path_factory.mktemp("screen")
    manifest = write_manifest(manifest_samples(idrid, aptos), root / "manifest.csv")
    grader = _train(root, manifest, "grader", {"model_options": {"image_size": 48}})
    detector = _train(
        root,
        idrid,
        "detector",
        {"ignore_unknown_labels": True, "model_options": {"image_size": 64}},
    )
    return idrid, manifest, grader, detector


def test_calibration_chooses_on_detector_validation_images_and_writes_the_card(trained, capsys):
    idrid, manifest, grader, detector = trained
    calibrate = _script("calibrate_screen")
    args = [str(detector), str(idrid), "--grader", str(grader), "--grader-data", str(manifest)]
    assert calibrate.main([*args, "--write"]) == 0
    *rows, choice = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["score_threshold"] for r in rows] == list(calibrate.THRESHOLDS)
    card = weights.read_card(detector)
    held = card["training"]["val_images"]
    assert choice["images"] == held == len(card["calibration"]["ids"]) > 0
    assert all(i.startswith("train/") for i in choice["ids"])  # never a test image
    chosen = choice["chosen"]
    assert chosen["moderate_lesions"] in calibrate.MODERATE
    combination = choice["combination"]  # on grader validation images the detector never saw
    assert 0 < combination["images"] < calibrate.MIN_SHARED
    assert combination["recommended"] == "classifier"  # too few to choose another rule
    assert set(combination["by_source"]) <= {"idrid", "aptos2019"}
    loaded = loading.load(get_registry(), "drgrade", "detector", detector)  # card still valid
    assert loaded.module.score_threshold == chosen["score_threshold"]
    assert loaded.module.moderate_lesions == chosen["moderate_lesions"]
    assert loaded.module.severe_haemorrhages == chosen["severe_haemorrhages"]


def test_backbone_file_initialises_a_new_grader(trained, tmp_path):
    _, _, grader, _ = trained
    out = tmp_path / "backbone" / "mobilenet_v3_small.safetensors"
    card = _script("export_backbone").export(grader, out)
    assert card["task"] == "backbone" and card["sha256"] == weights.sha256_file(out)
    assert "non-commercial" in json.dumps(card["training"]["data_sources"])  # APTOS terms
    fresh = GradeNet(image_size=224, dme=False)
    done = init_from_file.initialise(fresh, {"file": str(out), "into": "net"})
    assert done and done[0]["sha256"] == card["sha256"]
    source = loading.load(get_registry(), "drgrade", "grader", grader).module
    first = "features.0.0.weight"
    assert torch.equal(fresh.net.state_dict()[first], source.net.state_dict()[first])
    head = source.net.classifier[1].weight[:4]  # the head is not in the file: a new one
    assert not torch.equal(fresh.net.classifier[1].weight, head)
