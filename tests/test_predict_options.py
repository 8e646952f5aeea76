"""Task-specific predict flags: declared by the task, parsed and listed by the core CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from eyescan.api import PredictOption, hookimpl
from eyescan.plugins import registry as plugins
from eyescan.plugins.registry import get_registry
from eyescan.testing import json_lines

from .toy_plugin import ToyPlugin, ToyTask


class OptionToyTask(ToyTask):
    """The toy task with two flags of its own: one adds an output, one does not."""

    predict_options = (
        PredictOption("double", "also report the score doubled"),
        PredictOption("quiet_log", "a flag that adds no output", output=False),
    )

    def predict(self, model, batch):
        predictions = super().predict(model, batch)
        for prediction in predictions:
            if self.options.get("double"):
                prediction.values["double"] = 2 * prediction.values["score"]
            prediction.values["explained"] = bool(self.options.get("explain"))
        return predictions


class OptionToyPlugin(ToyPlugin):
    @hookimpl
    def register_tasks(self, register):
        register(OptionToyTask())


@pytest.fixture
def toy(invoke, tmp_path):
    plugins.reset_registry([("toy", OptionToyPlugin())])
    trained = invoke("train", "toy", tmp_path, "--out", tmp_path / "run", "--json")
    assert trained.exit_code == 0, trained.output
    image = tmp_path / "a.png"
    Image.fromarray(np.full((8, 8, 3), 51, np.uint8)).save(image)
    weights = json_lines(trained.stdout)[0]["weights"]

    def predict(*extra):
        return invoke("predict", "toy", image, "--weights", weights, "--out", tmp_path / "out",
                      "--json", *extra)  # fmt: skip

    return predict


def test_task_flag_reaches_a_copy_of_the_task(toy):
    result = toy("--double", "--explain")
    assert result.exit_code == 0, result.output
    (record,) = json_lines(result.stdout)
    assert record["outputs"]["double"] == pytest.approx(0.8, abs=1e-6)
    assert record["outputs"]["explained"] is True
    assert record["requested"] == ["explain", "double"]
    registered = get_registry().task("toy")
    assert dict(registered.options) == {}  # never mutated


def test_no_flag_and_negative_flag(toy):
    (plain,) = json_lines(toy().stdout)
    assert "double" not in plain["outputs"] and "requested" not in plain
    (negative,) = json_lines(toy("--no-double", "--quiet-log").stdout)
    assert "double" not in negative["outputs"] and "requested" not in negative  # no output


def test_unknown_flag_is_a_usage_error_naming_the_known_ones(toy):
    result = toy("--morphometry")
    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert "no such option: --morphometry" in message
    assert "--double" in message and "--quiet-log" in message
    assert "Traceback" not in result.output


def test_help_lists_the_task_flags(invoke):
    plugins.reset_registry([("toy", OptionToyPlugin())])
    result = invoke("predict", "toy", "--help")
    assert result.exit_code == 0, result.output
    assert "toy options" in result.stdout
    assert "--double / --no-double" in result.stdout and "also report the score" in result.stdout
    assert "--quiet-log" in result.stdout
    general = invoke("predict", "--help")
    assert general.exit_code == 0 and "--weights" in general.stdout
    assert "eyescan predict TASK --help" in general.stdout
    assert "toy options" not in general.stdout


def test_resume_redoes_records_made_without_a_requested_output(toy, tmp_path):
    assert toy().exit_code == 0
    (again,) = json_lines(toy("--double", "--resume").stdout)
    assert not again.get("resumed") and "double" in again["outputs"]
    (third,) = json_lines(toy("--double", "--resume").stdout)
    assert third.get("resumed")
    saved = json.loads((tmp_path / "out" / "a.json").read_text())
    assert saved["requested"] == ["double"]


def test_core_options_still_parse_around_task_flags(toy, tmp_path):
    result = toy("--double", "--batch-size", "2", "--workers", "1")
    assert result.exit_code == 0, result.output
    assert json_lines(result.stdout)[0]["outputs"]["double"] > 0
