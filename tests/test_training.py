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


def test_selection_by_a_validation_metric_keeps_its_best_epoch(tmp_path):
    batches, val, mse = _problem()
    scores = iter([0.2, 0.9, 0.5, 0.1])  # epoch 2 is best by the metric, not by the loss
    config = TrainConfig(epochs=4, optimizer="adam", lr=0.05, extra={"select": "kappa"})
    result = fit(
        torch.nn.Linear(3, 1), batches, val, [mse], config, tmp_path, {"model": "lin"},
        validate=lambda model: {"kappa": next(scores)},
    )  # fmt: skip
    summary = result.summary()
    assert (summary["selected_by"], summary["best_epoch"], summary["best_val_kappa"]) == (
        "val_kappa", 2, 0.9,
    )  # fmt: skip
    card = json.loads((tmp_path / "lin.json").read_text())["training"]
    assert card["selected_by"] == "val_kappa" and card["val_kappa"] == 0.9
    assert card["best_epoch"] == 2


def test_resuming_a_run_that_stopped_early_trains_no_more(tmp_path):
    batches, val, mse = _problem()
    config = TrainConfig(epochs=50, optimizer="sgd", lr=0.0, patience=2)
    fit(torch.nn.Linear(3, 1), batches, val, [mse], config, tmp_path, {"model": "lin"})
    before = (tmp_path / "metrics.jsonl").read_text()
    result = fit(
        torch.nn.Linear(3, 1), batches, val, [mse], config, tmp_path, {"model": "lin"}, resume=True
    )
    assert result.stopped_early and result.epochs_run == 3
    assert (tmp_path / "metrics.jsonl").read_text() == before


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


def test_resume_refuses_another_runs_checkpoint(tmp_path):
    batches, val, mse = _problem()
    config = TrainConfig(epochs=1, optimizer="adam", lr=0.05)
    fit(torch.nn.Linear(3, 1), batches, val, [mse], config, tmp_path, {"task": "t", "model": "a"})
    state = tmp_path / "last_state.pt"
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "last_state.pt").write_bytes(state.read_bytes())
    with pytest.raises(TrainingError, match="model 'a'"):
        fit(
            torch.nn.Linear(3, 1),
            batches,
            val,
            [mse],
            config,
            tmp_path / "b",
            {"task": "t", "model": "b"},
            resume=True,
        )
    other = TrainConfig(epochs=2, optimizer="adam", lr=0.01)  # another recipe, same model
    with pytest.raises(TrainingError, match="recipe"):
        fit(
            torch.nn.Linear(3, 1),
            batches,
            val,
            [mse],
            other,
            tmp_path,
            {"task": "t", "model": "a"},
            resume=True,
        )
    more = TrainConfig(epochs=2, optimizer="adam", lr=0.05)  # more epochs: the same run
    result = fit(
        torch.nn.Linear(3, 1),
        batches,
        val,
        [mse],
        more,
        tmp_path,
        {"task": "t", "model": "a"},
        resume=True,
    )
    assert result.epochs_run == 2


def test_without_validation_the_card_says_train_loss(tmp_path):
    batches, _, mse = _problem()
    notes = []
    result = fit(
        torch.nn.Linear(3, 1),
        batches,
        None,
        [mse],
        TrainConfig(epochs=2, lr=0.01),
        tmp_path,
        {"task": "t", "model": "lin"},
        on_event=lambda e: notes.append(e) if e["event"] == "note" else None,
    )
    card = json.loads((tmp_path / "lin.json").read_text())
    assert card["training"]["selected_by"] == "train_loss"
    assert "train_loss" in card["training"] and "val_loss" not in card["training"]
    assert notes and "no validation data" in notes[0]["message"]
    assert result.summary()["selected_by"] == "train_loss" and "best_train_loss" in result.summary()


def test_prepare_out_refuses_a_used_folder(tmp_path):
    from eyescan.engine.training import prepare_out

    batches, val, mse = _problem()
    fit(
        torch.nn.Linear(3, 1),
        batches,
        val,
        [mse],
        TrainConfig(epochs=1),
        tmp_path,
        {"model": "lin"},
    )
    with pytest.raises(TrainingError, match="--resume.*--overwrite"):
        prepare_out(tmp_path, resume=False, overwrite=False)
    prepare_out(tmp_path, resume=True, overwrite=False)
    prepare_out(tmp_path, resume=False, overwrite=True)
    assert not (tmp_path / "metrics.jsonl").exists() and not (tmp_path / "lin.safetensors").exists()
    prepare_out(tmp_path / "new", resume=False, overwrite=False)
