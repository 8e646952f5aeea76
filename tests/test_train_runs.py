"""``eyescan train`` runs: a used --out, --overwrite, foreign checkpoints, data options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eyescan.api import hookimpl
from eyescan.data.splits import HoldOut
from eyescan.plugins import registry as plugins
from eyescan.testing import json_lines

from .test_training import _problem  # a 3-parameter regression
from .toy_plugin import ToyPlugin, ToyTask

SEEN: dict[str, object] = {}


class FitToyTask(ToyTask):
    """Trains a linear regression with the core's loop (no validation data)."""

    def train(self, data, options):
        import torch

        from eyescan.engine.training import TrainConfig, fit

        SEEN.clear()
        SEEN.update(options)
        batches, _, mse = _problem()
        name = options["model"] or "lin"
        card = {"task": "toy", "model": name, "training": {"data": str(data)}}
        config = TrainConfig(epochs=options["epochs"] or 2, lr=0.01)
        result = fit(torch.nn.Linear(3, 1), batches, None, [mse], config, options["out"], card,
                     on_event=options["on_event"], resume=options["resume"])  # fmt: skip
        return result.summary()


class FitToyPlugin(ToyPlugin):
    @hookimpl
    def register_tasks(self, register):
        register(FitToyTask())

    @hookimpl
    def register_models(self, register):
        import torch

        for name in ("lin", "lin2"):  # same tensors: only the run identity tells them apart
            register("toy", name, lambda **_: torch.nn.Linear(3, 1))


@pytest.fixture
def train(invoke, tmp_path):
    plugins.reset_registry([("toy", FitToyPlugin())])

    def run(*extra):
        return invoke("train", "toy", tmp_path, "--out", tmp_path / "run", "--json", *extra)

    return run


def test_no_validation_data_note_and_card(train, tmp_path):
    result = train()
    assert result.exit_code == 0, result.output
    assert "note: lin: no validation data" in " ".join(result.stderr.split())
    summary = json_lines(result.stdout)[-1]
    assert summary["selected_by"] == "train_loss" and "best_train_loss" in summary
    card = json.loads((tmp_path / "run" / "lin.json").read_text())
    assert card["training"]["selected_by"] == "train_loss"
    assert "train_loss" in card["training"] and "val_loss" not in card["training"]


def test_used_out_is_refused_then_overwritten(train, tmp_path):
    assert train().exit_code == 0
    metrics = (tmp_path / "run" / "metrics.jsonl").read_text()
    refused = train()
    assert refused.exit_code == 1
    message = refused.stderr.strip()
    assert message.count("\n") == 0 and "--resume" in message and "--overwrite" in message
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == metrics  # untouched
    again = train("--overwrite", "--epochs", "1")
    assert again.exit_code == 0, again.output
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1]
    assert SEEN["overwrite"] is True
    assert train("--resume", "--overwrite").exit_code == 2


def test_resume_of_another_models_checkpoint_is_refused(train):
    assert train("--epochs", "1").exit_code == 0
    result = train("--model", "lin2", "--resume", "--epochs", "2")
    assert result.exit_code == 1
    assert "checkpoint is of another run" in " ".join(result.stderr.split())
    assert "Traceback" not in result.output
    resumed = train("--resume", "--epochs", "2")
    assert resumed.exit_code == 0, resumed.output
    assert json_lines(resumed.stdout)[-1]["epochs_run"] == 2


def test_columns_and_holdout_reach_the_hook(train):
    assert train().exit_code == 0
    result = train("--overwrite", "--columns", "image=path, label=treatment",
                   "--holdout", "0.3", "--holdout-seed", "4")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert SEEN["columns"] == {"image": "path", "label": "treatment"}
    assert SEEN["holdout"] == HoldOut(0.3, 4)
    assert train("--overwrite").exit_code == 0
    assert SEEN["columns"] is None and SEEN["holdout"] is None  # the core default
    assert train("--overwrite", "--holdout", "0").exit_code == 0
    assert SEEN["holdout"] is False
    assert train("--overwrite", "--holdout-seed", "7").exit_code == 0
    assert SEEN["holdout"] == HoldOut(seed=7)


@pytest.mark.parametrize(
    "extra", [["--holdout", "1"], ["--holdout", "-0.1"], ["--columns", "image"]]
)
def test_bad_data_options_are_usage_errors(train, extra):
    result = train(*extra)
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().count("\n") == 0 and extra[0] in result.stderr


def test_evaluate_passes_split_and_data_options(invoke, tmp_path, monkeypatch):
    seen = {}

    def evaluate(self, model, data, options):
        seen.update(options)
        return {"summary": {"images": 0}, "images": []}

    plugins.reset_registry([("toy", ToyPlugin())])
    trained = invoke("train", "toy", tmp_path, "--out", tmp_path / "run", "--json")
    weights = Path(json_lines(trained.stdout)[0]["weights"])
    monkeypatch.setattr(ToyTask, "evaluate", evaluate)
    args = ["evaluate", "toy", tmp_path, "--weights", weights]
    result = invoke(
        *args, "--split", "val", "--columns", "label=y", "--holdout", "0.25", "--annotator", "2"
    )
    assert result.exit_code == 0, result.output
    assert seen == {"split": "val", "reader": None, "columns": {"label": "y"},
                    "holdout": HoldOut(0.25, 0), "annotator": 2}  # fmt: skip
    assert invoke(*args, "--split", "validation").exit_code == 2
