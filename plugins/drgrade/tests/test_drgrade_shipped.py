"""The shipped weights: real photographs in, grade / DME risk / boxes out; and the README's
IDRiD table reproduced by ``eyescan evaluate`` (skipped where IDRiD part B is absent)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from eyescan.testing import invoke_cli, json_lines

PLUGIN = Path(__file__).resolve().parents[1]
WEIGHTS = PLUGIN / "eyescan_drgrade" / "weights"
EXAMPLES = PLUGIN.parents[1] / "examples"
README = PLUGIN / "README.md"
IDRID = PLUGIN.parents[2] / "shared" / "data" / "IDRiD" / "B. Disease Grading"


def _table_script():
    spec = importlib.util.spec_from_file_location(
        "readme_table", PLUGIN / "scripts" / "readme_table.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_screen_grades_real_photographs(tmp_path):
    """The bundled example photographs (CC BY): grade, referable, DME risk and boxes."""
    result = invoke_cli("predict", "drgrade", EXAMPLES, "--out", tmp_path / "o", "--json")
    assert result.exit_code == 0, result.stderr
    records = json_lines(result.stdout)
    assert len(records) == len(list(EXAMPLES.glob("*.jpg")))
    assert all(r["ok"] and r["model"] == "screen" for r in records)
    for record in records:
        values = record["outputs"]
        assert 0 <= values["grade"] <= 4 and values["referable"] == (values["grade"] >= 2)
        assert 0 <= values["dme_risk"] <= 2 and len(values["dme_probabilities"]) == 3
        assert abs(sum(values["probabilities"]) - 1) < 1e-3
        assert isinstance(values["lesions"], list) and "grade_lesions" in values
        assert not record.get("synthetic_only")  # trained on real photographs
    card = json.loads((WEIGHTS / "screen.json").read_text())
    sources = {d["source"]: d for d in card["training"]["data_sources"]}  # both parts' data
    assert sources["aptos2019"]["images"]["grader"] > 2000
    assert "non-commercial" in sources["aptos2019"]["terms"]
    assert set(sources["idrid"]["images"]) == {"grader", "detector"}
    assert "CC BY 4.0" in sources["idrid"]["terms"]


def test_shipped_screen_reproduces_the_readme_idrid_table():
    """``eyescan evaluate drgrade IDRiD`` gives the card's numbers, and the README quotes
    them as ``readme_table.py`` prints them (values and 95 % intervals)."""
    if not IDRID.exists():
        pytest.skip(f"IDRiD part B not found at {IDRID}")
    result = invoke_cli("evaluate", "drgrade", IDRID, "--json")
    assert result.exit_code == 0, result.stderr
    summary = json_lines(result.stdout)[-1]
    card = json.loads((WEIGHTS / "screen.json").read_text())["evaluations"][f"{IDRID.name}/test"]
    for key in ("kappa", "accuracy", "referable_auc", "dme_accuracy", "dme_kappa", "map"):
        assert summary[key] == pytest.approx(card[key], abs=1e-6), key
    assert summary["graded_images"] == 103
    table = _table_script()
    label = f"IDRiD test ({summary['graded_images']})"
    rows = [
        table.grading_row(f"{label} | classifier", summary),
        table.dme_row("IDRiD test", summary),
    ]
    readme = README.read_text()
    for row in rows:
        assert row in readme, f"README lacks the row {row}"
    cells = [table.cell(summary, k) for k in ("kappa", "referable_auc", "map")]
    root = (PLUGIN.parents[1] / "README.md").read_text()  # the project README's summary row
    assert all(c in root for c in cells), cells
