"""The shipped weights: real photographs in, MA/HE maps and image-level scores out; and the
README's official-test-set table reproduced by ``eyescan evaluate`` (skipped where the
IDRiD part A copies are absent)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eyescan.testing import invoke_cli, json_lines, load_script

PLUGIN = Path(__file__).resolve().parents[1]
WEIGHTS = PLUGIN / "eyescan_redlesion" / "weights"
SHIPPED = "redseg-mobilenet"
EXAMPLES = PLUGIN.parents[1] / "examples"
README = PLUGIN / "README.md"
PART_A = PLUGIN.parents[2] / "shared" / "data" / "IDRiD" / "A. Segmentation (partial copies)"
BOXES = PART_A / "all-81-1024px-letterboxed-yolo"


def _table_script():
    return load_script(PLUGIN / "scripts" / "readme_tables.py")


def _card() -> dict:
    return json.loads((WEIGHTS / f"{SHIPPED}.json").read_text())


def test_shipped_model_is_the_default_and_names_its_data():
    card = _card()
    assert card["model"] == SHIPPED and "cross-validation" in card["chosen_by"]
    assert set(card["thresholds"]) == {"ma", "he"}
    assert "out-of-fold" in card["thresholds_from"]  # never the test set
    sources = {d["source"]: d for d in card["training"]["data_sources"]}
    part_a = sources["idrid-part-a"]
    assert "CC BY 4.0" in part_a["terms"] and part_a["images"] == 54
    assert "non-commercial" in sources["aptos2019"]["terms"]  # via the fundus backbone
    assert card["research_only"] is True and "not for commercial use" in card["use_terms"]


def test_shipped_model_predicts_real_photographs(tmp_path):
    """The bundled example photographs (CC0, CC BY): maps, overlay, counts, image-level scores."""
    result = invoke_cli("predict", "redlesion", EXAMPLES, "--out", tmp_path / "o", "--json")
    assert result.exit_code == 0, result.stderr
    records = json_lines(result.stdout)
    assert len(records) == len(list(EXAMPLES.glob("*.jpg")))
    assert all(r["ok"] and r["model"] == SHIPPED for r in records)
    for record in records:
        values = record["outputs"]
        for name in ("ma", "he"):
            assert 0.0 <= values[f"{name}_score"] <= 1.0
            assert values[f"{name}_present"] == (
                values[f"{name}_score"] >= values["thresholds"][name]
            )
            assert values[f"{name}_count"] >= 0
        assert values["model_fov_width"] == 1024
        assert not record.get("synthetic_only")
        assert set(record["files"]) == {"ma_probability", "he_probability", "overlay"}


def test_shipped_model_reproduces_the_readme_test_table():
    """``eyescan evaluate redlesion`` on the official test set 55–81 gives the card's
    numbers, and the README quotes them as ``readme_tables.py`` prints them."""
    if not BOXES.exists():
        pytest.skip(f"IDRiD part A boxes not found at {BOXES}")
    result = invoke_cli("evaluate", "redlesion", BOXES, "--json")
    assert result.exit_code == 0, result.stderr
    summary = json_lines(result.stdout)[-1]
    assert summary["images"] == 27 and summary["data_split"]["split"] == "test"
    card = _card()["metrics"]
    for key in ("ma_froc", "he_froc", "ma_froc_at_1_fp", "he_froc_at_1_fp"):
        assert summary[key] == pytest.approx(card[key], abs=1e-6, nan_ok=True), key
    table = _table_script()
    row = table.test_row(table.STAGES[f"stage{_card()['training']['stage']}"], summary)
    assert row in README.read_text(), f"README lacks the row {row}"
