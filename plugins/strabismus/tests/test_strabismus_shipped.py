"""The shipped weights (trained on real face photographs): small, hash-checked, research-only,
`eyescan predict strabismus` works as installed, and the README's real-photo table is
reproduced by ``eyescan evaluate`` (skipped where the photographs are absent)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import eyescan_strabismus
from eyescan.api import get_registry, imageio, models
from eyescan.testing import invoke_cli, json_lines
from eyescan_strabismus.synthetic import make_face

WEIGHTS = Path(eyescan_strabismus.__file__).parent / "weights"
PLUGIN = Path(__file__).resolve().parents[1]
README = PLUGIN / "README.md"
DATA = Path(__file__).resolve().parents[4] / "shared" / "data" / "strabismus-faces"
SHIPPED = ("eye-detector", "rfcnn-lite")
RESULTS = ("pipeline_auc", "pipeline_sensitivity", "pipeline_specificity", "pipeline_accuracy")

pytestmark = pytest.mark.skipif(
    not all((WEIGHTS / f"{name}.safetensors").exists() for name in SHIPPED),
    reason="no shipped strabismus weights",
)


def _card(name: str) -> dict:
    return json.loads((WEIGHTS / f"{name}.json").read_text())


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_are_small_and_load_with_their_hash(name):
    path = WEIGHTS / f"{name}.safetensors"
    assert path.stat().st_size < 5e6
    loaded = models.load(get_registry(), "strabismus", name)
    assert loaded.weights == path and loaded.card["sha256"] == loaded.sha256


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_cards_name_the_real_data_and_its_terms(name):
    card = _card(name)
    assert card["research_only"] is True and "research use only" in card["use_terms"]
    assert not card.get("synthetic_only")
    (source,) = card["training"]["data_sources"]
    assert source["source"] == "strabismus-faces" and "no licence stated" in source["terms"]
    assert source["images"] == 199  # the training split less the 6 copies of test photos


def test_shipped_classifier_names_its_detector_by_hash():
    assert _card("rfcnn-lite")["detector"] == {
        "model": "eye-detector",
        "file": "eye-detector.safetensors",
        "sha256": _card("eye-detector")["sha256"],
    }


def test_predict_works_out_of_the_box(tmp_path):
    """Drawn faces (no photograph in the tests): every record ok, a result, the terms note."""
    faces = [make_face(224, seed=90_000 + i, strabismus=bool(i % 2)) for i in range(3)]
    for i, face in enumerate(faces):
        imageio.save_png(tmp_path / "in" / f"face{i}.png", face.image)
    out_dir = tmp_path / "out"
    result = invoke_cli(
        "predict", "strabismus", tmp_path / "in", "--out", out_dir, "--json", "--explain",
        "--report", out_dir / "report.html",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    stderr = " ".join(result.stderr.split())
    assert stderr.count("for research use only") == 1 and "synthetic" not in stderr
    detector_sha = _card("eye-detector")["sha256"]
    for record in json_lines(result.stdout):
        (companion,) = record["companions"]
        assert companion["sha256"] == detector_sha and not companion["synthetic_only"]
        out = record["outputs"]
        assert out["result"] in ("strabismus", "normal", "no eye region found")
        assert (out["strabismus_probability"] is None) == (not out["eye_region_found"])
    assert (out_dir / "report.html").exists()


def test_a_photo_without_a_face_is_reported_not_failed(tmp_path):
    imageio.save_png(tmp_path / "wall.png", np.full((160, 200, 3), 120, np.uint8))
    result = invoke_cli("predict", "strabismus", tmp_path / "wall.png", "--out", tmp_path, "--json")
    assert result.exit_code == 0, result.output
    (record,) = json_lines(result.stdout)
    assert record["ok"] and record["outputs"]["result"] == "no eye region found"


def readme_row(name: str, s: dict) -> str:
    """The README's end-to-end row of one classifier: n, counts, metrics with 95 % CIs."""

    def cell(key: str) -> str:
        low, high = s["ci95"][key]
        return f"{s[key]:.3f} ({low:.3f}–{high:.3f})"

    counts = [str(s[f"pipeline_{k}"]) for k in ("eye_region_found", "tp", "tn", "fp", "fn")]
    return "| " + " | ".join([name, str(s["pipeline_images"]), *counts,
                              *(cell(k) for k in RESULTS)]) + " |"  # fmt: skip


def test_shipped_model_reproduces_the_readme_table():
    if not DATA.exists():
        pytest.skip(f"strabismus-faces not found at {DATA}")
    result = invoke_cli("evaluate", "strabismus", DATA, "--json")  # the folder as it is
    assert result.exit_code == 0, result.stderr
    summary = json_lines(result.stdout)[-1]
    card = _card("rfcnn-lite")["metrics"]
    for key in (*RESULTS, "auc", "sensitivity", "specificity"):
        assert summary[key] == pytest.approx(card[key], abs=1e-6), key
    assert summary["pipeline_images"] == 80 and summary["reader"] == "strabismus-faces"
    assert readme_row("rfcnn-lite (shipped)", summary) in README.read_text()
