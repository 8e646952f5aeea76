"""``evaluate --update-card``: the core writes the card, never a shipped one unless named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eyescan.api import hookimpl
from eyescan.errors import WeightsError
from eyescan.models import weights as weights_io
from eyescan.models.loading import load
from eyescan.plugins import registry as plugins
from eyescan.plugins.registry import get_registry
from eyescan.testing import json_lines

from .toy_plugin import ToyPlugin, ToyTask


class ShippedToyTask(ToyTask):
    weights_dir: Path | None = None  # set by the test: the "installed package" folder


class ShippedToyPlugin(ToyPlugin):
    @hookimpl
    def register_tasks(self, register):
        register(ShippedToyTask())


@pytest.fixture
def shipped(invoke, tmp_path, monkeypatch):
    """Toy weights shipped in a package folder, and a data folder of 3 images."""
    plugins.reset_registry([("toy", ShippedToyPlugin())])
    trained = invoke("train", "toy", tmp_path, "--out", tmp_path / "run", "--json")
    weights = Path(json_lines(trained.stdout)[0]["weights"])
    package = tmp_path / "package"
    package.mkdir()
    for path in (weights, weights.with_suffix(".json")):
        shutil.copy(path, package / path.name)
    monkeypatch.setattr(ShippedToyTask, "weights_dir", package)
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8, 3), 60 * i, np.uint8)).save(data / f"{i}.png")
    return package / weights.name, data


def test_update_card_without_weights_is_refused(shipped, invoke):
    weights, data = shipped
    card = weights.with_suffix(".json").read_text()
    assert invoke("evaluate", "toy", data).exit_code == 0  # the shipped weights evaluate
    result = invoke("evaluate", "toy", data, "--update-card")
    assert result.exit_code == 2
    assert "--update-card needs --weights" in " ".join(result.stderr.split())
    assert weights.with_suffix(".json").read_text() == card  # untouched


def test_update_card_with_weights_writes_the_evaluation(shipped, invoke):
    weights, data = shipped
    before = weights.read_bytes()
    result = invoke("evaluate", "toy", data, "--weights", weights, "--update-card", "--json")
    assert result.exit_code == 0, result.output
    summary = json_lines(result.stdout)[-1]
    card = json.loads(weights.with_suffix(".json").read_text())
    evaluation = card["evaluation"]
    assert evaluation["data"] == str(data) and evaluation["split"] == "test"
    assert evaluation["summary"]["mean_score"] == summary["mean_score"]
    assert evaluation["date"].endswith("Z")
    assert card["metrics"]["images"] == 3
    assert card["evaluations"][f"{data.name}/test"]["mean_score"] == summary["mean_score"]
    again = invoke(
        "evaluate", "toy", data, "--weights", weights, "--update-card", "--split", "train"
    )
    assert again.exit_code == 0, again.output
    card = json.loads(weights.with_suffix(".json").read_text())
    assert set(card["evaluations"]) == {f"{data.name}/test", f"{data.name}/train"}
    assert weights.read_bytes() == before  # the weights file is not touched
    loaded = load(get_registry(), "toy", None, weights)  # hash still checks
    assert loaded.sha256 == card["sha256"] == weights_io.sha256_file(weights)


def test_update_card_needs_a_card(shipped, invoke, tmp_path):
    _, data = shipped
    plain = tmp_path / "plain.pt"
    plain.write_bytes(b"")
    result = invoke("evaluate", "toy", data, "--weights", plain, "--update-card")
    assert result.exit_code == 2 and "has no model card" in result.stderr


def test_update_card_refuses_a_card_that_no_longer_fits(shipped):
    weights, _ = shipped
    weights.write_bytes(weights.read_bytes() + b"\0")
    with pytest.raises(WeightsError, match="does not match"):
        weights_io.update_card(weights, note="x")
    with pytest.raises(WeightsError, match="cannot change sha256"):
        weights_io.update_card(weights, sha256="0" * 64)
