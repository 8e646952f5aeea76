"""Companion models in every record: role, weights hash, ``synthetic_only``; the warning."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eyescan.api import hookimpl, models
from eyescan.models.loading import LoadedModel
from eyescan.plugins import registry as plugins
from eyescan.plugins.registry import get_registry
from eyescan.testing import json_lines

from .toy_plugin import ToyPlugin, ToyTask


class CompanionToyTask(ToyTask):
    """The toy task that runs a second toy model beside the one asked for."""

    helper: Path | None = None  # set by the test
    lazily = False  # load the companion in predict instead of prepare

    def prepare(self, model):
        if not self.lazily:
            self._helper(model)

    def _helper(self, model):
        return models.load_companion(get_registry(), "toy", "helper", weights=self.helper,
                                     parent=model)  # fmt: skip

    def predict(self, model, batch):
        if self.lazily:
            self._helper(model)
        return super().predict(model, batch)

    def evaluate(self, model, data, options):
        self._helper(model)
        return super().evaluate(model, data, options)


class CompanionToyPlugin(ToyPlugin):
    @hookimpl
    def register_tasks(self, register):
        register(CompanionToyTask())


def _synthetic_copy(weights: Path, folder: Path) -> Path:
    folder.mkdir()
    copy = folder / weights.name
    shutil.copy(weights, copy)
    card = json.loads(weights.with_suffix(".json").read_text())
    copy.with_suffix(".json").write_text(json.dumps({**card, "synthetic_only": True}))
    return copy


@pytest.fixture
def setup(invoke, tmp_path, monkeypatch):
    plugins.reset_registry([("toy", CompanionToyPlugin())])
    trained = invoke("train", "toy", tmp_path, "--out", tmp_path / "run", "--json")
    weights = Path(json_lines(trained.stdout)[0]["weights"])
    helper = _synthetic_copy(weights, tmp_path / "helper")
    monkeypatch.setattr(CompanionToyTask, "helper", helper)
    image = tmp_path / "in" / "a.png"
    image.parent.mkdir()
    Image.fromarray(np.full((8, 8, 3), 51, np.uint8)).save(image)
    return weights, helper, image


def test_loaded_model_provenance_and_companion_roles():
    parent = LoadedModel("toy", "scale", None, card={})
    assert parent.provenance() == {"companions": [], "synthetic_only": False}
    parent.companions.append({"role": "helper", "sha256": "a", "synthetic_only": True})
    assert parent.provenance()["synthetic_only"] is True
    assert LoadedModel("toy", "s", None, card={"synthetic_only": True}).synthetic_only


@pytest.mark.parametrize("lazily", [False, True], ids=["prepare", "during-predict"])
def test_records_carry_companions_and_the_note_names_them(
    setup, invoke, tmp_path, monkeypatch, lazily
):
    monkeypatch.setattr(CompanionToyTask, "lazily", lazily)
    weights, helper, image = setup
    out = tmp_path / "out"
    result = invoke("predict", "toy", image, "--weights", weights, "--out", out, "--json")
    assert result.exit_code == 0, result.output
    (record,) = json_lines(result.stdout)
    (companion,) = record["companions"]
    assert companion["role"] == "helper" and companion["synthetic_only"] is True
    card = json.loads(helper.with_suffix(".json").read_text())
    assert companion["sha256"] == card["sha256"] and companion["weights"] == str(helper)
    assert record["synthetic_only"] is True
    note = " ".join(result.stderr.split())
    assert "helper model scale" in note and "synthetic images only" in note
    assert str(helper) in note
    assert note.count("synthetic images only") == 1  # named once, not once a record
    assert json.loads((out / "a.json").read_text())["companions"] == record["companions"]


def test_records_without_companions_say_so(invoke, tmp_path):
    plugins.reset_registry([("toy", ToyPlugin())])
    trained = invoke("train", "toy", tmp_path, "--out", tmp_path / "run", "--json")
    weights = json_lines(trained.stdout)[0]["weights"]
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    result = invoke("predict", "toy", tmp_path / "a.png", "--weights", weights, "--out",
                    tmp_path / "out", "--json")  # fmt: skip
    (record,) = json_lines(result.stdout)
    assert record["companions"] == [] and record["synthetic_only"] is False
    assert "synthetic" not in result.stderr


def test_resume_redoes_records_made_with_other_companions(setup, invoke, tmp_path):
    weights, _, image = setup
    out = tmp_path / "out"
    args = ["predict", "toy", image, "--weights", weights, "--out", out, "--json", "--resume"]
    assert invoke(*args).exit_code == 0
    (same,) = json_lines(invoke(*args).stdout)
    assert same.get("resumed")
    saved = json.loads((out / "a.json").read_text())
    saved["companions"][0]["sha256"] = "0" * 64  # as if made with another helper
    (out / "a.json").write_text(json.dumps(saved))
    (again,) = json_lines(invoke(*args).stdout)
    assert not again.get("resumed") and again["companions"][0]["sha256"] != "0" * 64


def test_evaluate_summary_carries_provenance(setup, invoke, tmp_path):
    weights, helper, image = setup
    result = invoke("evaluate", "toy", image.parent, "--weights", weights, "--json")
    assert result.exit_code == 0, result.output
    summary = json_lines(result.stdout)[-1]
    assert summary["kind"] == "summary" and summary["synthetic_only"] is True
    assert [c["role"] for c in summary["companions"]] == ["helper"]
    assert "synthetic images only" in " ".join(result.stderr.split())


def test_loading_a_role_again_replaces_its_entry(setup):
    weights, helper, _ = setup
    registry = get_registry()
    parent = models.load(registry, "toy", None, weights)
    for _ in range(2):
        models.load_companion(registry, "toy", "helper", weights=helper, parent=parent)
    models.load_companion(registry, "toy", "other", weights=weights, parent=parent)
    assert [c["role"] for c in parent.companions] == ["helper", "other"]
    assert parent.provenance()["synthetic_only"] is True


def test_research_only_weights_say_so_once(setup, invoke, tmp_path):
    """A card with ``research_only`` gets a note on stderr naming its terms, once a run."""
    weights, _, image = setup
    card_file = weights.with_suffix(".json")
    card = json.loads(card_file.read_text())
    terms = "trained on photographs with no licence: research use only"
    card_file.write_text(json.dumps({**card, "research_only": True, "use_terms": terms}))
    second = image.with_name("b.png")
    shutil.copy(image, second)
    result = invoke("predict", "toy", image.parent, "--weights", weights, "--out",
                    tmp_path / "out", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    note = " ".join(result.stderr.split())
    assert note.count("for research use only") == 1 and terms in note
    plain = invoke("predict", "toy", image, "--weights", _plain_copy(weights, card, tmp_path),
                   "--out", tmp_path / "out2", "--json")  # fmt: skip
    assert "research use only" not in " ".join(plain.stderr.split())


def _plain_copy(weights: Path, card: dict, tmp_path: Path) -> Path:
    folder = tmp_path / "plain"
    folder.mkdir()
    copy = folder / weights.name
    shutil.copy(weights, copy)
    copy.with_suffix(".json").write_text(json.dumps(card))
    return copy
