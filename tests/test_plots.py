"""Evaluation figures: from classifier scores, from segmentation curves, through the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eyescan.plugins import registry as plugins
from eyescan.reports import plots
from eyescan.testing import json_lines

from .toy_plugin import ToyPlugin, ToyTask


def _scores(classes: int, n: int = 60, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    logits = rng.normal(size=(n, classes)) + 2.0 * np.eye(classes)[y]
    prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return {"y_true": y.tolist(), "y_prob": prob.tolist()}


def _is_png(path: Path) -> bool:
    with Image.open(path) as image:
        return image.format == "PNG" and min(image.size) > 100


def test_binary_classifier_figures(tmp_path):
    result = {"scores": _scores(2), "images": [{"id": f"i{k}", "p": k / 10} for k in range(30)]}
    files = plots.write_plots(result, tmp_path)
    assert set(files) == {"roc", "pr", "confusion", "calibration", "per_image"}
    assert all(_is_png(p) for p in files.values())


def test_multiclass_curves_per_class_with_names():
    scores = {**_scores(3), "classes": ["none", "mild", "severe"]}
    curves = plots._class_curves(scores)
    assert set(curves) == {"none", "mild", "severe"}
    assert all(0.5 < c["roc"]["auc"] <= 1 for c in curves.values())


def test_binary_curves_are_thinned_and_skip_one_class():
    rng = np.random.default_rng(1)
    truth = rng.random(5000) < 0.2
    curves = plots.binary_curves(truth, truth + rng.normal(0, 0.8, 5000))
    assert len(curves["roc"]["fpr"]) <= plots.CURVE_POINTS
    assert curves["roc"]["fpr"][0] == 0 and curves["roc"]["tpr"][-1] == 1
    assert 0.7 < curves["roc"]["auc"] < 1 and 0.3 < curves["pr"]["auc"] < 1
    assert plots.binary_curves(np.zeros(10), np.ones(10)) == {}


def test_segmentation_curves_give_roc_and_pr(tmp_path):
    truth = np.arange(1000) % 3 == 0
    files = plots.write_plots({"curves": plots.binary_curves(truth, truth * 0.5 + 0.3)}, tmp_path)
    assert set(files) == {"roc", "pr"}


def test_vessels_evaluate_curves_use_the_pooled_areas():
    evaluation = pytest.importorskip("eyescan_vessels.evaluation")
    rng = np.random.default_rng(2)
    truth = rng.random(3000) < 0.1
    curves = evaluation.pooled_curves(
        truth, truth + rng.random(3000), {"auc_roc": 0.9, "auc_pr": 0.8}
    )
    assert curves["roc"]["auc"] == 0.9 and curves["pr"]["auc"] == 0.8
    assert curves["label"] == "pooled FOV pixels"


class ScoredToyTask(ToyTask):
    """The toy task whose evaluation also returns classifier scores."""

    def evaluate(self, model, data, options):
        result = super().evaluate(model, data, options)
        return {**result, "scores": {**_scores(2, 20), "classes": ["dark", "bright"]}}


class ScoredToyPlugin(ToyPlugin):
    from eyescan.api import hookimpl

    @hookimpl
    def register_tasks(self, register):
        register(ScoredToyTask())


def test_evaluate_plots_writes_figures_and_html(invoke, tmp_path):
    plugins.reset_registry([("toy", ScoredToyPlugin())])
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8, 3), 60 * i, np.uint8)).save(data / f"{i}.png")
    trained = invoke("train", "toy", data, "--out", tmp_path / "run", "--json")
    weights = json_lines(trained.stdout)[0]["weights"]
    result = invoke("evaluate", "toy", data, "--weights", weights, "--plots", tmp_path / "plots")
    assert result.exit_code == 0, result.output
    names = {p.name for p in (tmp_path / "plots").iterdir()}
    expected = {"roc.png", "pr.png", "confusion.png", "calibration.png", "per_image.png"}
    assert names == expected | {"index.html"}
    page = (tmp_path / "plots" / "index.html").read_text()
    assert page.count("data:image/png;base64,") == 5
    assert page.count('<tr class="image-row">') == 3
    assert "index.html" in result.stderr
