"""``eyescan evaluate`` output: 95 % intervals beside the metrics, the data split, plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eyescan.api import hookimpl
from eyescan.cli.evaluate import with_interval
from eyescan.plugins import registry as plugins
from eyescan.testing import json_lines

from .test_plots import _scores
from .toy_plugin import ToyPlugin, ToyTask

SPLIT = {"reader": "folder", "split": "test", "rule": "hold-out 0.2 of patients, seed 0",
         "count": 3, "ids_sha256": "ab" * 32, "ids": ["0", "1", "2"]}  # fmt: skip


class CiToyTask(ToyTask):
    """A toy classifier whose summary has intervals, a data split and scores for --plots."""

    def evaluate(self, model, data, options):
        result = super().evaluate(model, data, options)
        result["summary"].update(
            auc_roc=0.9794, f1=0.5, ci95={"auc_roc": [0.975, 0.983], "f1": None},
            ci_method="percentile bootstrap over images, 1000 resamples, seed 0",
            data_split=SPLIT,
        )  # fmt: skip
        return {**result, "scores": {**_scores(2, 20), "classes": ["dark", "bright"]}}


class CiToyPlugin(ToyPlugin):
    @hookimpl
    def register_tasks(self, register):
        register(CiToyTask())


@pytest.fixture
def evaluate(invoke, tmp_path):
    plugins.reset_registry([("toy", CiToyPlugin())])
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8, 3), 60 * i, np.uint8)).save(data / f"{i}.png")
    trained = invoke("train", "toy", data, "--out", tmp_path / "run", "--json")
    weights = Path(json_lines(trained.stdout)[0]["weights"])
    return lambda *extra: invoke("evaluate", "toy", data, "--weights", weights, *extra)


def test_with_interval():
    assert with_interval(0.9794, [0.975, 0.983]) == "0.9794 [0.975, 0.983]"
    assert with_interval(0.5, None) == "0.5000" and with_interval(3, [None, None]) == "3"


def test_table_shows_intervals_and_the_split(evaluate):
    result = evaluate()
    assert result.exit_code == 0, result.output
    table = result.stdout
    assert "0.9794 [0.975, 0.983]" in table
    assert "0.5000" in table and "ci95" not in table and "data_split" not in table
    assert "percentile bootstrap" in " ".join(table.split())
    note = " ".join(result.stderr.split())
    assert "data: test split: 3 images; hold-out 0.2" in note and "abababababab" in note


def test_json_summary_passes_intervals_and_split_through(evaluate):
    result = evaluate("--json")
    summary = json_lines(result.stdout)[-1]
    assert summary["ci95"] == {"auc_roc": [0.975, 0.983], "f1": None}
    assert summary["data_split"] == SPLIT
    assert summary["companions"] == [] and summary["synthetic_only"] is False


def test_plots_for_a_classifier(evaluate, tmp_path):
    result = evaluate("--plots", tmp_path / "plots")
    assert result.exit_code == 0, result.output
    names = {p.name for p in (tmp_path / "plots").iterdir()}
    assert {"roc.png", "pr.png", "confusion.png", "calibration.png", "index.html"} <= names
    page = (tmp_path / "plots" / "index.html").read_text()
    assert "0.975" in page and "0.983" in page  # the interval beside the metric


def test_data_notes_are_printed_as_warnings(capsys):
    from eyescan.cli.evaluate import _describe_split

    note = "byte-identical images test/b (b.jpg: grade 3) = train/a (a.jpg: grade 0) [x]"
    _describe_split({**SPLIT, "notes": [note]})
    assert f"warning: {note}" in " ".join(capsys.readouterr().err.split())
