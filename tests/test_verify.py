"""``eyescan verify``: shipped weights match their cards, reference outputs reproduce."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from eyescan.models.verify import VERIFY_SCHEMA, compare_outputs, image_sha256
from eyescan.plugins.registry import get_registry
from eyescan.testing import json_lines

TASK = "vessels"  # the fastest: about 1 s for its reference prediction on one CPU


@pytest.fixture
def copied(tmp_path, monkeypatch):
    """The vessels task pointed at a copy of its weights folder (returned)."""
    task = get_registry().task(TASK)
    folder = tmp_path / "weights"
    shutil.copytree(task.weights_dir, folder)
    monkeypatch.setattr(task, "weights_dir", folder)
    return folder


def test_shipped_weights_and_reference_pass(invoke):
    result = invoke("verify", TASK, "--json")
    assert result.exit_code == 0, result.output
    records = json_lines(result.stdout)
    assert {r["schema"] for r in records} == {VERIFY_SCHEMA}
    assert all(r["ok"] and r["reason"] is None for r in records)
    weights = [r for r in records if r["check"] == "weights"]
    shipped = sorted(get_registry().task(TASK).weights_dir.rglob("*.safetensors"))
    assert [Path(r["target"]) for r in weights] == shipped  # sub-folders included
    (reference,) = [r for r in records if r["check"] == "reference"]
    assert reference["compared"] > 0 and reference["mismatches"] == []


def test_table_without_json(invoke):
    result = invoke("verify", TASK)
    assert result.exit_code == 0, result.output
    assert "reference" in result.stdout and "ok" in result.stdout


def test_tampered_weights_fail_without_a_traceback(invoke, copied):
    task = get_registry().task(TASK)
    path = copied / f"{task.default_model}.safetensors"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    result = invoke("verify", TASK, "--json")
    assert result.exit_code == 1, result.output
    records = {(r["check"], Path(r["target"]).name): r for r in json_lines(result.stdout)}
    bad = records[("weights", path.name)]
    assert not bad["ok"] and "SHA-256" in bad["reason"]
    reference = next(r for (check, _), r in records.items() if check == "reference")
    assert not reference["ok"] and "does not match its model card" in reference["reason"]
    others = [r for (check, name), r in records.items() if check == "weights" and r is not bad]
    assert others and all(r["ok"] for r in others)
    assert "Traceback" not in result.output
    assert f"error: {TASK} weights:" in " ".join(result.stderr.split())


def test_changed_reference_output_fails(invoke, copied):
    task = get_registry().task(TASK)
    path = copied / f"{task.default_model}.reference.json"
    reference = json.loads(path.read_text(encoding="utf-8"))
    reference["outputs"]["vessel_fraction"] += 0.01
    path.write_text(json.dumps(reference), encoding="utf-8")
    result = invoke("verify", TASK, "--json")
    assert result.exit_code == 1, result.output
    (failed,) = [r for r in json_lines(result.stdout) if not r["ok"]]
    assert failed["check"] == "reference" and "vessel_fraction" in failed["reason"]
    assert [m["key"] for m in failed["mismatches"]] == ["vessel_fraction"]


def test_missing_reference_fails(invoke, copied):
    task = get_registry().task(TASK)
    (copied / f"{task.default_model}.reference.json").unlink()
    result = invoke("verify", TASK)
    assert result.exit_code == 1
    assert "--update" in " ".join(result.stderr.split())


def test_tolerances():
    ref = {"f": 0.5, "big": 2000.0, "n": 3, "count": 1000, "ok": True, "none": None,
           "nested": {"p": [0.1, 0.9]}, "text": "ignored"}  # fmt: skip
    same = {**ref, "f": 0.5009, "big": 2001.9, "count": 1010, "text": "other", "extra": 1}
    assert compare_outputs(ref, same) == []
    worse = {**ref, "f": 0.502, "big": 2002.1, "n": 4, "count": 1011, "ok": False,
             "none": 0.0, "nested": {"p": [0.1]}}  # fmt: skip
    keys = {m["key"] for m in compare_outputs(ref, worse)}
    assert keys == {"f", "big", "n", "count", "ok", "none", "nested.p#len", "nested.p[1]"}
    assert compare_outputs({"a": 1}, {})[0]["actual"] == "missing"


def test_reference_images():
    registry = get_registry()
    fundus = registry.task(TASK).reference_image()
    assert fundus.dtype == np.uint8 and fundus.ndim == 3 and fundus.shape[1] == 400
    face = registry.task("strabismus").reference_image()  # drawn by the generator
    assert face.dtype == np.uint8 and face.shape[2] == 3
    assert image_sha256(face) == image_sha256(registry.task("strabismus").reference_image())
    assert image_sha256(face) != image_sha256(fundus)
