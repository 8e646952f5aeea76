"""One training loop for every task.

:func:`fit` trains a model on batches (dicts of tensors) with a weighted sum
of losses, validates every epoch, keeps the best weights by validation loss,
or by the validation metric the recipe's ``"select"`` names (``"kappa"``,
``"map"``: a key of ``validate``'s scores, maximised; safetensors + model
card), checkpoints every epoch so ``resume=True`` picks up where a run stopped,
stops early after ``patience`` epochs without improvement, and writes one JSON
line of metrics per epoch.

A checkpoint records whose run it is (task, model, model options and the
recipe's hash, :func:`run_identity`); ``resume`` refuses another run's
checkpoint. Without validation data the best weights are chosen by the
training loss, and the card says so (``selected_by: train_loss``).

Under ``torchrun`` the same call trains data-parallel (see
:mod:`eyescan.engine.distributed` and docs/scaling.md): the model is wrapped in
DistributedDataParallel, each process takes its share of every epoch's
batches, losses are averaged over all processes and only rank 0 writes.
"""

from __future__ import annotations

import contextlib
import itertools
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

from eyescan.engine import distributed
from eyescan.engine.recipes import recipe_hash
from eyescan.errors import EyescanError
from eyescan.imaging.imageio import atomic_path
from eyescan.models.weights import save_weights

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
    steps_per_epoch: int | None = None  # cap on batches per epoch (all processes together)
    grad_clip: float | None = None
    device: str = "cpu"  # cpu | cuda | cuda:N | auto (this process's GPU when there is one)
    amp: str | None = None  # None | bf16 | fp16: mixed-precision autocast (fp16 scales gradients)
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


def autocast(amp: str | None, device: str) -> contextlib.AbstractContextManager:
    """Mixed-precision context for ``amp`` (``bf16`` or ``fp16``) on ``device``."""
    if not amp:
        return contextlib.nullcontext()
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16}
    if amp not in dtypes:
        raise TrainingError(f"unknown amp {amp!r} (bf16, fp16)")
    return torch.autocast(device_type=torch.device(device).type, dtype=dtypes[amp])


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


#: Recipe fields that may change between a run and its resumption.
RESUMABLE_CHANGES = ("epochs", "device", "amp", "patience", "steps_per_epoch")


def run_identity(card: dict[str, Any], config: TrainConfig) -> dict[str, Any]:
    """What makes a checkpoint this run's: task, model, its options and the recipe's hash."""
    recipe = {k: v for k, v in asdict(config).items() if k not in RESUMABLE_CHANGES}
    return {
        "task": card.get("task"),
        "model": card.get("model"),
        "model_options": card.get("model_options", {}),
        "recipe_sha256": recipe_hash(recipe),
    }


def check_identity(state: dict[str, Any], identity: dict[str, Any], path: Path) -> None:
    """Refuse to resume from a checkpoint another run (model, options, recipe) wrote."""
    try:
        saved = json.loads(state.get("identity") or "null")
    except (TypeError, ValueError):
        saved = None
    if saved is None:
        raise TrainingError(
            f"{path}: checkpoint does not say which run wrote it (older eyescan); "
            "start again with --overwrite or use another --out"
        )
    for key in ("task", "model", "model_options", "recipe_sha256"):
        if saved.get(key) != identity.get(key):
            what = "recipe" if key == "recipe_sha256" else key.replace("_", " ")
            raise TrainingError(
                f"{path}: checkpoint is of another run ({what} {saved.get(key)!r}, "
                f"this run {identity.get(key)!r}); use another --out, or --overwrite"
            )


@dataclass
class FitResult:
    best_weights: Path
    best_epoch: int
    best_val_loss: float
    epochs_run: int
    history: list[dict[str, Any]]
    stopped_early: bool
    selected_by: str = "val_loss"  # or "train_loss" without validation data, or "val_METRIC"

    @property
    def maximised(self) -> bool:
        """``selected_by`` is a metric to maximise (``best_val_loss`` is its negative)."""
        return self.selected_by not in ("val_loss", "train_loss")

    def summary(self) -> dict[str, Any]:
        """The run's lines of a train summary (weights, best epoch and its selection loss)."""
        return {
            "weights": str(self.best_weights),
            "best_epoch": self.best_epoch,
            "selected_by": self.selected_by,
            f"best_{self.selected_by}": -self.best_val_loss
            if self.maximised
            else self.best_val_loss,
            "epochs_run": self.epochs_run,
            "stopped_early": self.stopped_early,
        }


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
    options: dict[str, Any] | None = None,
) -> FitResult:
    """Train ``model``; returns where the best weights are and the history.

    ``train_batches(epoch)`` yields the batches of one epoch; ``val_batches()``
    the validation batches (loss only); ``validate(model)`` may add metrics.
    ``forward(model, batch)`` defaults to ``model(batch["image"])``.
    ``on_event`` receives ``{"event": "step"|"epoch"|"note", ...}`` for progress
    display (``note``: a ``message`` for stderr, e.g. that there is no validation data).

    ``options`` (a train hook's options) supplies ``on_event`` and ``resume``
    where they are not given.

    Under torchrun every process must yield the same batches (seeded);
    ``forward`` then receives the DDP-wrapped model (call it, do not reach
    into its attributes); ``validate`` and ``on_event`` run on rank 0 only.
    """
    if options is not None:
        on_event = on_event or options.get("on_event")
        resume = resume or bool(options.get("resume"))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    forward = forward or (lambda m, b: m(b["image"]))
    main = distributed.is_main()
    emit = (on_event if main else None) or (lambda event: None)
    seed_everything(config.seed)
    device = distributed.resolve_device(config.device)
    parallel = distributed.init_from_env(device)
    rank, world = distributed.rank(), distributed.world_size()
    model.to(device)
    optimizer = make_optimizer(model.parameters(), config)
    scheduler = make_scheduler(optimizer, config)
    best_path = out_dir / f"{card.get('model', 'model')}.safetensors"
    state_path = out_dir / "last_state.pt"
    metrics_path = out_dir / "metrics.jsonl"
    history: list[dict[str, Any]] = []
    start_epoch, best_loss, best_epoch, bad_epochs = 1, math.inf, 0, 0
    identity = run_identity(card, config)
    select = config.extra.get("select") if validate is not None else None
    selected_by = (
        f"val_{select}" if select else "val_loss" if val_batches is not None else "train_loss"
    )
    if selected_by == "train_loss":
        emit(
            {
                "event": "note",
                "message": f"{card.get('model', 'model')}: no validation data; the best "
                "weights are chosen by the training loss (card: selected_by train_loss)",
            }
        )
    if resume and state_path.exists():
        state = load_checkpoint(state_path, device)
        check_identity(state, identity, state_path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler"):
            scheduler.load_state_dict(state["scheduler"])
        start_epoch = int(state["epoch"]) + 1
        best_loss, best_epoch = float(state["best_loss"]), int(state["best_epoch"])
        bad_epochs = int(state["bad_epochs"])
        torch.set_rng_state(state["rng"].cpu())
        history = resumed_history(metrics_path, start_epoch, rewrite=main)
    elif metrics_path.exists() and main:
        metrics_path.unlink()
    net = distributed.wrap(model, device, bool(config.extra.get("find_unused_parameters")))
    scaler = torch.amp.GradScaler(torch.device(device).type, enabled=config.amp == "fp16")

    # A run that had stopped early stays stopped when resumed (no extra epoch).
    stopped_early = config.patience is not None and bad_epochs >= config.patience
    epoch = start_epoch - 1
    for epoch in range(start_epoch, config.epochs + 1 if not stopped_early else start_epoch):
        net.train()
        started = time.perf_counter()
        sums: dict[str, float] = {}
        steps = 0
        batches: Iterable[dict[str, torch.Tensor]] = train_batches(epoch)
        if config.steps_per_epoch:
            batches = itertools.islice(batches, config.steps_per_epoch)
        for batch in distributed.shard_batches(batches, rank, world):
            batch = _to_device(batch, device)
            with autocast(config.amp, device):
                loss, parts = total_loss(losses, forward(net, batch), batch)
            finite = bool(torch.isfinite(loss))
            if not (distributed.all_true(finite, device) if parallel else finite):
                raise TrainingError(
                    f"loss became {float(loss.detach()) if not finite else 'nan on another rank'}"
                    f" at epoch {epoch}, step {steps + 1}; stopped. "
                    f"Last good weights: {best_path if best_path.exists() else 'none yet'}"
                    " (lower the learning rate or check the data)"
                )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if config.grad_clip:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            steps += 1
            sums["loss"] = sums.get("loss", 0.0) + float(loss.detach())
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
            emit({"event": "step", "epoch": epoch, "step": steps, "loss": float(loss.detach())})
        if steps == 0:
            raise TrainingError("no training batches: the training set is empty")
        record: dict[str, Any] = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"]}
        means = distributed.mean_across(sums, steps, device)
        record.update({f"train_{k}": v for k, v in means.items()})
        val_loss = record["train_loss"]  # the selection loss: training loss without validation
        if val_batches is not None:
            distributed.broadcast_buffers(model)
            mine = distributed.shard_batches(val_batches(), rank, world, pad=False)
            total, count = _loss_sums(model, mine, losses, forward, device, config.amp)
            total, count = distributed.sum_across([total, count], device)
            val_loss = total / max(1.0, count)
            record["val_loss"] = val_loss
        if validate is not None:
            scores = None
            if main:
                model.eval()
                with torch.no_grad():
                    scores = validate(model)
            record.update({f"val_{k}": v for k, v in distributed.from_main(scores).items()})
        record["seconds"] = round(time.perf_counter() - started, 2)
        if scheduler is not None:
            scheduler.step()
        if select:  # a validation metric to maximise: its negative is the selection loss
            val_loss = -float(record.get(f"val_{select}", -math.inf))
        improved = val_loss < best_loss
        if improved:
            best_loss, best_epoch, bad_epochs = val_loss, epoch, 0
        if improved and main:
            save_weights(
                model,
                best_path,
                {
                    **card,
                    "training": {
                        **card.get("training", {}),
                        "recipe": asdict(config),
                        "recipe_sha256": identity["recipe_sha256"],
                        "best_epoch": epoch,
                        "selected_by": selected_by,
                        selected_by: -val_loss if select else val_loss,
                        **({"processes": world} if world > 1 else {}),
                    },
                },
            )
        if not improved:
            bad_epochs += 1
        record["best"] = improved
        history.append(record)
        if main:
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
                        "identity": json.dumps(identity, sort_keys=True, default=str),
                    },
                    tmp,
                )
        emit({"event": "epoch", **record})
        if config.patience is not None and bad_epochs >= config.patience:
            stopped_early = True
            break
    distributed.barrier()  # rank 0's files exist before any process returns
    return FitResult(best_path, best_epoch, best_loss, epoch, history, stopped_early, selected_by)


#: Files a training run leaves in its ``--out`` folder (and sub-folders of cascades).
RUN_FILES = ("last_state.pt", "metrics.jsonl")


def prepare_out(out_dir: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to start a run in a folder that holds another one, unless told.

    A folder with a previous run's checkpoint or metrics is continued with
    ``resume``, started again with ``overwrite`` (its run files are removed,
    and the weights they chose), and otherwise refused.
    """
    out_dir = Path(out_dir)
    if resume or not out_dir.is_dir():
        return
    found = sorted(p for name in RUN_FILES for p in out_dir.rglob(name))
    if not found:
        return
    if not overwrite:
        raise TrainingError(
            f"{out_dir}: holds a previous training run ({found[0].relative_to(out_dir)}); "
            "pass --resume to continue it, --overwrite to start again, or another --out"
        )
    for path in found:
        folder = path.parent
        for weights in folder.glob("*.safetensors"):
            weights.unlink(missing_ok=True)
            weights.with_suffix(".json").unlink(missing_ok=True)
        path.unlink(missing_ok=True)


def load_checkpoint(path: Path, device: str = "cpu") -> dict[str, Any]:
    """Read ``last_state.pt`` with ``weights_only=True`` (a pickle that runs code is refused)."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrainingError(f"{path}: refused to load the checkpoint ({first})") from None
    if not isinstance(state, dict) or "model" not in state or "epoch" not in state:
        raise TrainingError(f"{path}: not an eyescan training checkpoint")
    return state


def resumed_history(path: Path, start_epoch: int, rewrite: bool = True) -> list[dict[str, Any]]:
    """Epoch records before ``start_epoch`` from ``metrics.jsonl``.

    A run killed between writing an epoch's line and its checkpoint (or in
    the middle of a line) leaves lines the resumed run redoes; with
    ``rewrite`` the file is rewritten without them, so no epoch appears twice.
    """
    history = []
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("epoch"), int):
            if record["epoch"] < start_epoch:
                history.append(record)
    if rewrite:
        with atomic_path(path) as tmp:
            tmp.write_text("".join(json.dumps(h) + "\n" for h in history), encoding="utf-8")
    return history


def evaluate_loss(
    model: torch.nn.Module,
    batches: Iterable[dict[str, torch.Tensor]],
    losses: list[WeightedLoss],
    forward: Callable[[torch.nn.Module, dict[str, torch.Tensor]], Any],
    device: str = "cpu",
    amp: str | None = None,
) -> float:
    """Mean total loss over validation batches, in eval mode without gradients."""
    total, count = _loss_sums(model, batches, losses, forward, device, amp)
    return total / max(1, count)


def _loss_sums(
    model: torch.nn.Module,
    batches: Iterable[dict[str, torch.Tensor]],
    losses: list[WeightedLoss],
    forward: Callable[[torch.nn.Module, dict[str, torch.Tensor]], Any],
    device: str,
    amp: str | None,
) -> tuple[float, int]:
    """Sum of the total loss over batches and their count (eval mode, no gradients)."""
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in batches:
            batch = _to_device(batch, device)
            with autocast(amp, device):
                loss, _ = total_loss(losses, forward(model, batch), batch)
            total += float(loss)
            count += 1
    return total, count


def write_json(path: Path, data: Any) -> None:
    from eyescan.imaging.imageio import write_text

    write_text(Path(path), json.dumps(data, indent=2) + "\n")
