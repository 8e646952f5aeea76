"""The shared training loop on a tiny regression problem."""

from __future__ import annotations

import json

import pytest
import torch

from eyescan.engine.training import TrainConfig, TrainingError, WeightedLoss, fit


def _problem():
    torch.manual_seed(0)
    x = torch.randn(64, 3)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]])

    def batches(epoch):
        for i in range(0, 64, 16):
            yield {"image": x[i : i + 16], "target": y[i : i + 16]}

    def val():
        yield {"image": x, "target": y}

    mse = WeightedLoss("mse", lambda out, b: torch.nn.functional.mse_loss(out, b["target"]))
    return batches, val, mse


def test_fit_learns_and_writes_artifacts(tmp_path):
    batches, val, mse = _problem()
    model = torch.nn.Linear(3, 1)
    config = TrainConfig(epochs=30, optimizer="adam", lr=0.05)
    result = fit(model, batches, val, [mse], config, tmp_path, {"task": "t", "model": "lin"})
    assert result.best_val_loss < 0.05
    assert (tmp_path / "lin.safetensors").exists() and (tmp_path / "lin.json").exists()
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 30 and "val_loss" in json.loads(lines[0])


def test_fit_is_reproducible(tmp_path):
    batches, val, mse = _problem()
    results = []
    for run in ("a", "b"):
        torch.manual_seed(123)
        model = torch.nn.Linear(3, 1)
        config = TrainConfig(epochs=3, optimizer="sgd", lr=0.01, seed=7)
        results.append(
            fit(model, batches, val, [mse], config, tmp_path / run, {"model": "lin"}).best_val_loss
        )
    assert results[0] == results[1]


def test_resume_continues_from_checkpoint(tmp_path):
    batches, val, mse = _problem()
    config = TrainConfig(epochs=2, optimizer="adam", lr=0.05)
    fit(torch.nn.Linear(3, 1), batches, val, [mse], config, tmp_path, {"model": "lin"})
    config.epochs = 4
    result = fit(
        torch.nn.Linear(3, 1), batches, val, [mse], config, tmp_path, {"model": "lin"}, resume=True
    )
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    epochs = [json.loads(x)["epoch"] for x in lines]
    assert epochs == [1, 2, 3, 4] and result.epochs_run == 4


def test_early_stopping(tmp_path):
    batches, val, mse = _problem()
    config = TrainConfig(epochs=50, optimizer="sgd", lr=0.0, patience=2)
    result = fit(torch.nn.Linear(3, 1), batches, val, [mse], config, tmp_path, {"model": "lin"})
    assert result.stopped_early and result.epochs_run == 3


def test_nan_loss_stops_with_clear_message(tmp_path):
    batches, val, _ = _problem()
    nan = WeightedLoss("nan", lambda out, b: out.sum() * float("nan"))
    with pytest.raises(TrainingError, match="loss became nan"):
        fit(
            torch.nn.Linear(3, 1),
            batches,
            val,
            [nan],
            TrainConfig(epochs=1),
            tmp_path,
            {"model": "lin"},
        )


def test_weighted_losses_are_summed(tmp_path):
    batches, val, mse = _problem()
    double = WeightedLoss("mse2", mse.fn, weight=2.0)
    model = torch.nn.Linear(3, 1)
    result = fit(
        model,
        batches,
        val,
        [mse, double],
        TrainConfig(epochs=1, lr=0.0),
        tmp_path,
        {"model": "lin"},
    )
    record = result.history[0]
    assert record["train_loss"] == pytest.approx(3 * record["train_mse"])
