"""One training loop for every task.

:func:`fit` trains a model on batches (dicts of tensors) with a weighted sum
of losses, validates every epoch, keeps the best weights by validation loss
(safetensors + model card), checkpoints every epoch so ``resume=True`` picks
up where a run stopped, stops early after ``patience`` epochs without
improvement, and writes one JSON line of metrics per epoch.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eyescan.errors import EyescanError
from eyescan.imageio import atomic_path
from eyescan.weights import save_weights

LossFn = Callable[[Any, dict[str, torch.Tensor]], torch.Tensor]


class TrainingError(EyescanError):
    code = "training_failed"


@dataclass
class TrainConfig:
    """Recipe of a training run; every field can be set from ``--config`` JSON."""

    epochs: int = 40
    batch_size: int = 4
    optimizer: str = "sgd"  # sgd | adam | adamw
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    scheduler: str | None = None  # None | cosine | step
    step_size: int = 10
    gamma: float = 0.1
    patience: int | None = None  # early stopping on validation loss
    seed: int = 0
    steps_per_epoch: int | None = None  # cap on batches per epoch
    grad_clip: float | None = None
    device: str = "cpu"
    extra: dict[str, Any] = field(default_factory=dict)  # task-specific settings

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f for f in cls.__dataclass_fields__}
        extra = {k: v for k, v in values.items() if k not in known}
        config = cls(**{k: v for k, v in values.items() if k in known})
        config.extra.update(extra)
        return config


@dataclass
class WeightedLoss:
    name: str
    fn: LossFn
    weight: float = 1.0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_optimizer(
    params: Iterable[torch.nn.Parameter], config: TrainConfig
) -> torch.optim.Optimizer:
    name = config.optimizer.lower()
    if name == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    if name == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    raise TrainingError(f"unknown optimizer {config.optimizer!r} (sgd, adam, adamw)")


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> Any:
    if not config.scheduler:
        return None
    if config.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, config.epochs))
    if config.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, config.step_size, config.gamma)
    raise TrainingError(f"unknown scheduler {config.scheduler!r} (cosine, step)")


def _to_device(batch: dict[str, Any], device: str) -> dict[str, Any]:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def total_loss(
    losses: list[WeightedLoss], outputs: Any, batch: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum of all losses, and each loss's value for the log."""
    parts = {}
    total = None
    for loss in losses:
        value = loss.fn(outputs, batch)
        parts[loss.name] = float(value.detach())
        total = loss.weight * value if total is None else total + loss.weight * value
    assert total is not None, "fit needs at least one loss"
    return total, parts


@dataclass
class FitResult:
    best_weights: Path
    best_epoch: int
    best_val_loss: float
    epochs_run: int
    history: list[dict[str, Any]]
    stopped_early: bool


def fit(
    model: torch.nn.Module,
    train_batches: Callable[[int], Iterable[dict[str, torch.Tensor]]],
    val_batches: Callable[[], Iterable[dict[str, torch.Tensor]]] | None,
    losses: list[WeightedLoss],
    config: TrainConfig,
    out_dir: Path,
    card: dict[str, Any],
    forward: Callable[[torch.nn.Module, dict[str, torch.Tensor]], Any] | None = None,
    validate: Callable[[torch.nn.Module], dict[str, float]] | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    resume: bool = False,
) -> FitResult:
    """Train ``model``; returns where the best weights are and the history.

    ``train_batches(epoch)`` yields the batches of one epoch; ``val_batches()``
    the validation batches (loss only); ``validate(model)`` may add metrics.
    ``forward(model, batch)`` defaults to ``model(batch["image"])``.
    ``on_event`` receives ``{"event": "step"|"epoch", ...}`` for progress display.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    forward = forward or (lambda m, b: m(b["image"]))
    emit = on_event or (lambda event: None)
    seed_everything(config.seed)
    device = config.device
    model.to(device)
    optimizer = make_optimizer(model.parameters(), config)
    scheduler = make_scheduler(optimizer, config)
    best_path = out_dir / f"{card.get('model', 'model')}.safetensors"
    state_path = out_dir / "last_state.pt"
    metrics_path = out_dir / "metrics.jsonl"
    history: list[dict[str, Any]] = []
    start_epoch, best_loss, best_epoch, bad_epochs = 1, math.inf, 0, 0
    if resume and state_path.exists():
        state = torch.load(state_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler"):
            scheduler.load_state_dict(state["scheduler"])
        start_epoch = int(state["epoch"]) + 1
        best_loss, best_epoch = float(state["best_loss"]), int(state["best_epoch"])
        bad_epochs = int(state["bad_epochs"])
        torch.set_rng_state(state["rng"])
        if metrics_path.exists():
            history = [json.loads(line) for line in metrics_path.read_text().splitlines() if line]
            history = [h for h in history if h["epoch"] < start_epoch]
    elif metrics_path.exists():
        metrics_path.unlink()

    stopped_early = False
    epoch = start_epoch - 1
    for epoch in range(start_epoch, config.epochs + 1):
        model.train()
        started = time.perf_counter()
        sums: dict[str, float] = {}
        steps = 0
        for batch in train_batches(epoch):
            batch = _to_device(batch, device)
            loss, parts = total_loss(losses, forward(model, batch), batch)
            if not torch.isfinite(loss):
                raise TrainingError(
                    f"loss became {float(loss)} at epoch {epoch}, step {steps + 1}; stopped. "
                    f"Last good weights: {best_path if best_path.exists() else 'none yet'}"
                    " (lower the learning rate or check the data)"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            steps += 1
            sums["loss"] = sums.get("loss", 0.0) + float(loss.detach())
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
            emit({"event": "step", "epoch": epoch, "step": steps, "loss": float(loss.detach())})
            if config.steps_per_epoch and steps >= config.steps_per_epoch:
                break
        if steps == 0:
            raise TrainingError("no training batches: the training set is empty")
        record: dict[str, Any] = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"]}
        record.update({f"train_{k}": v / steps for k, v in sums.items()})
        val_loss = record["train_loss"]
        if val_batches is not None:
            val_loss = evaluate_loss(model, val_batches(), losses, forward, device)
            record["val_loss"] = val_loss
        if validate is not None:
            model.eval()
            with torch.no_grad():
                record.update({f"val_{k}": v for k, v in validate(model).items()})
        record["seconds"] = round(time.perf_counter() - started, 2)
        if scheduler is not None:
            scheduler.step()
        improved = val_loss < best_loss
        if improved:
            best_loss, best_epoch, bad_epochs = val_loss, epoch, 0
            save_weights(
                model,
                best_path,
                {
                    **card,
                    "training": {
                        **card.get("training", {}),
                        "recipe": asdict(config),
                        "best_epoch": epoch,
                        "val_loss": val_loss,
                    },
                },
            )
        else:
            bad_epochs += 1
        record["best"] = improved
        history.append(record)
        with open(metrics_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        with atomic_path(state_path) as tmp:
            torch.save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "epoch": epoch,
                    "best_loss": best_loss,
                    "best_epoch": best_epoch,
                    "bad_epochs": bad_epochs,
                    "rng": torch.get_rng_state(),
                },
                tmp,
            )
        emit({"event": "epoch", **record})
        if config.patience is not None and bad_epochs >= config.patience:
            stopped_early = True
            break
    return FitResult(best_path, best_epoch, best_loss, epoch, history, stopped_early)


def evaluate_loss(
    model: torch.nn.Module,
    batches: Iterable[dict[str, torch.Tensor]],
    losses: list[WeightedLoss],
    forward: Callable[[torch.nn.Module, dict[str, torch.Tensor]], Any],
    device: str = "cpu",
) -> float:
    """Mean total loss over validation batches, in eval mode without gradients."""
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in batches:
            batch = _to_device(batch, device)
            loss, _ = total_loss(losses, forward(model, batch), batch)
            total += float(loss)
            count += 1
    return total / max(1, count)


def write_json(path: Path, data: Any) -> None:
    from eyescan.imageio import write_text

    write_text(Path(path), json.dumps(data, indent=2) + "\n")
