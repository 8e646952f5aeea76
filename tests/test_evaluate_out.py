"""``eyescan evaluate --out FILE``: the summary and per-image records as JSON Lines, and a CSV."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eyescan.api import hookimpl
from eyescan.plugins import registry as plugins
from eyescan.testing import json_lines

from .toy_plugin import ToyPlugin, ToyTask


class NestedToyTask(ToyTask):
    """Per-image records with keys that differ between images and nested values."""

    def evaluate(self, model, data, options):
        result = super().evaluate(model, data, options)
        for i, image in enumerate(result["images"]):
            image["box"] = {"x": i, "tags": ["a", "b"]}
            if i == 1:
                image["note"] = "only here"
                image["auc"] = float("nan")
        result["summary"]["ci95"] = {"mean_score": [0.1, 0.9]}
        return result


class NestedToyPlugin(ToyPlugin):
    @hookimpl
    def register_tasks(self, register):
        register(NestedToyTask())


@pytest.fixture
def evaluate(invoke, tmp_path):
    plugins.reset_registry([("toy", NestedToyPlugin())])
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8, 3), 60 * i, np.uint8)).save(data / f"{i}.png")
    trained = invoke("train", "toy", data, "--out", tmp_path / "run", "--json")
    weights = Path(json_lines(trained.stdout)[0]["weights"])
    return lambda *extra: invoke("evaluate", "toy", data, "--weights", weights, *extra)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_out_writes_jsonl_and_csv(evaluate, tmp_path):
    target = tmp_path / "results" / "eval.jsonl"  # the folder is made
    result = evaluate("--out", target)
    assert result.exit_code == 0, result.output
    assert "mean_score" in result.stdout  # the table is still printed
    records = json_lines(target.read_text(encoding="utf-8"))
    summary, images = records[0], records[1:]
    assert summary["schema"] == "eyescan.evaluation/1" and summary["kind"] == "summary"
    assert summary["images"] == 3 and summary["ci95"] == {"mean_score": [0.1, 0.9]}
    assert summary["companions"] == [] and summary["synthetic_only"] is False
    assert [r["kind"] for r in images] == ["image"] * 3
    assert [r["id"] for r in images] == ["0", "1", "2"]
    assert images[1]["auc"] is None  # NaN is null, never NaN
    assert all(r["weights_sha256"] == summary["weights_sha256"] for r in images)

    rows = read_csv(tmp_path / "results" / "eval.csv")
    assert len(rows) == 3
    assert list(rows[0])[:4] == ["schema", "task", "model", "weights_sha256"]
    assert {"id", "score", "box", "note", "auc"} <= set(rows[0])  # union of the keys
    assert rows[0]["note"] == "" and rows[1]["note"] == "only here"
    assert json.loads(rows[2]["box"]) == {"x": 2, "tags": ["a", "b"]}
    assert float(rows[0]["score"]) == pytest.approx(images[0]["score"])
    assert not list(target.parent.glob(".*"))  # no temporary files left behind


def test_out_with_json_prints_the_same_records(evaluate, tmp_path):
    target = tmp_path / "eval.jsonl"
    result = evaluate("--out", target, "--json")
    assert result.exit_code == 0, result.output
    printed = json_lines(result.stdout)
    written = json_lines(target.read_text(encoding="utf-8"))
    assert written == [printed[-1], *printed[:-1]]  # summary first in the file
    assert (tmp_path / "eval.csv").exists()


def test_out_refuses_a_csv_name(evaluate, tmp_path):
    result = evaluate("--out", tmp_path / "eval.csv")
    assert result.exit_code == 2
    assert "JSON Lines" in result.stderr and not (tmp_path / "eval.csv").exists()
