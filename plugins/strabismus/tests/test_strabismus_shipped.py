"""The shipped weights: small, hash-checked, and `eyescan predict strabismus` works as installed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import eyescan_strabismus
from eyescan.api import get_registry, imageio, metrics, models
from eyescan.testing import invoke_cli, json_lines
from eyescan_strabismus.synthetic import make_face

WEIGHTS = Path(eyescan_strabismus.__file__).parent / "weights"
SHIPPED = ("eye-detector", "rfcnn-lite")

pytestmark = pytest.mark.skipif(
    not all((WEIGHTS / f"{name}.safetensors").exists() for name in SHIPPED),
    reason="no shipped strabismus weights",
)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_are_small_and_load_with_their_hash(name):
    path = WEIGHTS / f"{name}.safetensors"
    assert path.stat().st_size < 5e6
    loaded = models.load(get_registry(), "strabismus", name)
    assert loaded.weights == path and loaded.card["sha256"] == loaded.sha256


def test_shipped_classifier_names_its_detector_by_hash():
    card = json.loads((WEIGHTS / "rfcnn-lite.json").read_text())
    detector = json.loads((WEIGHTS / "eye-detector.json").read_text())
    assert card["detector"] == {
        "model": "eye-detector",
        "file": "eye-detector.safetensors",
        "sha256": detector["sha256"],
    }


def test_predict_works_out_of_the_box(tmp_path):
    faces = [make_face(224, seed=90_000 + i, strabismus=bool(i % 2)) for i in range(4)]
    for i, face in enumerate(faces):
        imageio.save_png(tmp_path / "in" / f"face{i}.png", face.image)
    out_dir = tmp_path / "out"
    result = invoke_cli(
        "predict", "strabismus", tmp_path / "in", "--out", out_dir, "--json", "--explain",
        "--report", out_dir / "report.html",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    stderr = " ".join(result.stderr.split())
    assert "synthetic images only" in stderr  # the card says so
    assert "its detector model eye-detector" in stderr  # and of the companion detector
    detector_sha = json.loads((WEIGHTS / "eye-detector.json").read_text())["sha256"]
    records = sorted(json_lines(result.stdout), key=lambda r: r["id"])
    for face, record in zip(faces, records):
        (companion,) = record["companions"]
        assert companion["sha256"] == detector_sha and companion["synthetic_only"]
        assert record["synthetic_only"]
        out = record["outputs"]
        assert out["eye_region_found"], out
        assert metrics.box_iou(out["box"], face.box)[0, 0] >= 0.5
        assert out["result"] == ("strabismus" if face.label else "normal"), out
        assert (out_dir / record["files"]["crop"]).exists()
        assert imageio.read_image(out_dir / record["files"]["gradcam"]).ndim == 3  # --explain
    assert (out_dir / "report.html").read_text().count('alt="gradcam"') == len(faces)


def test_a_photo_without_a_face_is_reported_not_failed(tmp_path):
    imageio.save_png(tmp_path / "wall.png", np.full((160, 200, 3), 120, np.uint8))
    result = invoke_cli("predict", "strabismus", tmp_path / "wall.png", "--out", tmp_path, "--json")
    assert result.exit_code == 0, result.output
    (record,) = json_lines(result.stdout)
    assert record["ok"] and record["outputs"]["result"] == "no eye region found"
