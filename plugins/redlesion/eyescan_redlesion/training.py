"""Two-stage training (top-k balanced BCE, then MSE) and evaluation of Red-Seg.

Stage 1 trains from the ImageNet VGG16 encoder (when its file is present) with
the top-k loss; stage 2 starts from stage 1's best weights (recipe key
``init_weights``) with the MSE loss. Each stage is one ``eyescan train`` run;
the model card of stage 2 records stage 1's weights, hash and card.

Learning rates: the seed's Caffe losses are sums over the pixels of one
1072×712 image (lr 1e-8 / 1e-9, weight decay 5e-4); ours are divided by the
pixel count N = 763 264. SGD's step −lr·(∇L_sum + wd·w) is reproduced exactly
by lr' = lr·N and wd' = wd/N: lr' ≈ 7.6e-3 (stage 1) and 7.6e-4 (stage 2),
wd' ≈ 6.55e-10. (Keeping wd = 5e-4 with lr' would decay the weights N times
harder than the seed did.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eyescan.api import DataError, find_reader, get_registry, metrics, training, weights
from eyescan_redlesion.data import LESIONS, LesionSample, load_sample
from eyescan_redlesion.lesions import (
    best_f1_threshold,
    break_even,
    detection_counts,
    detection_rates,
)
from eyescan_redlesion.losses import DeepSupervision, TopKBalancedBCE, probability_mse
from eyescan_redlesion.task import DEFAULT_THRESHOLDS, lesion_probabilities, normalise

SEED_WIDTH = 1072
SEED_PIXELS = SEED_WIDTH * 712
#: Both stages as in the seed: SGD, momentum 0.9, weight decay 5e-4 (÷ N, see above), one
#: image a step, 1072-px-wide images, 6 augmented copies per image and epoch.
COMMON: dict[str, Any] = {
    "batch_size": 1,
    "optimizer": "sgd",
    "momentum": 0.9,
    "weight_decay": 5e-4 / SEED_PIXELS,
    "repeats": 6,
    "val_images": 4,
    "augment": True,
}
#: Stage 1: 300 epochs, λ0 0.14, S 10 000, lr rescaled for mean-reduced losses. Images are
#: resized to ``input_width`` (default the seed's 1072; ``null``: native size) unless the run
#: starts from ``init_weights``, whose card's width is then kept.
STAGE1: dict[str, Any] = {
    **COMMON,
    "stage": 1,
    "epochs": 300,
    "lr": 1e-8 * SEED_PIXELS,
    "lambda0": 0.14,
    "topk_period": 10_000,
    "imagenet_weights": "auto",
    "model_options": {},
}
#: Stage 2: from stage 1's weights (``init_weights``), lr 1/10 of stage 1, 20 epochs;
#: the model, its options and the input width come from stage 1's card.
STAGE2: dict[str, Any] = {**COMMON, "stage": 2, "epochs": 20, "lr": 1e-9 * SEED_PIXELS}
LOSS_NAMES = {1: "redlesion-topk-bce", 2: "redlesion-mse"}


def recipe_for(options: dict[str, Any]) -> dict[str, Any]:
    """The stage's defaults, then the --config recipe, then --epochs/--batch-size."""
    config = dict(options.get("config") or {})
    stage = config.get("stage", 1)
    if stage not in (1, 2):
        raise DataError(f"recipe stage must be 1 or 2, got {stage!r}")
    recipe = {**(STAGE1 if stage == 1 else STAGE2), **config}
    for key in ("epochs", "batch_size"):
        if options.get(key) is not None:
            recipe[key] = options[key]
    return recipe


@dataclass
class Start:
    """The model a stage starts from, and what the card says about that start."""

    module: torch.nn.Module
    name: str
    options: dict[str, Any]
    init: dict[str, Any]  # how it was initialised
    history: list[dict[str, Any]] = field(default_factory=list)  # earlier stages
    input_width: int | None = None  # stage 1's, for stage 2


def dihedral(
    image: torch.Tensor, masks: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random one of the 8 flips/rotations by 90° (the seed's rotations and mirrors)."""
    flips = torch.randint(0, 2, (3,), generator=generator).tolist()
    for flip, dims in zip(flips[:2], ((-1,), (-2,))):
        if flip:
            image, masks = image.flip(dims), masks.flip(dims)
    if flips[2]:
        image, masks = image.transpose(-1, -2), masks.transpose(-1, -2)
    return image, masks


def collate(
    items: list[tuple[torch.Tensor, torch.Tensor]], stride: int = 16
) -> dict[str, torch.Tensor]:
    """Stack images (3×H×W) and masks (ma, he, 2×H×W), zero-padded to a common multiple
    of ``stride``; ``valid`` marks the real pixels (the losses ignore the padding)."""
    height = max(i.shape[-2] for i, _ in items)
    width = max(i.shape[-1] for i, _ in items)
    height, width = height + (-height) % stride, width + (-width) % stride
    n = len(items)
    image = torch.zeros(n, 3, height, width)
    masks = torch.zeros(n, 3, height, width)
    for k, (img, msk) in enumerate(items):
        h, w = img.shape[-2:]
        image[k, :, :h, :w] = img
        masks[k, :2, :h, :w] = msk
        masks[k, 2, :h, :w] = 1.0
    return {"image": image, "ma": masks[:, 0:1], "he": masks[:, 1:2], "valid": masks[:, 2:3]}


def _tensors(sample: LesionSample) -> tuple[torch.Tensor, torch.Tensor]:
    image = torch.from_numpy(normalise(sample.image).transpose(2, 0, 1).copy())
    masks = torch.from_numpy(np.stack([sample.ma, sample.he]).astype(np.float32))
    return image, masks


def _initial_model(registry: Any, options: dict[str, Any], recipe: dict[str, Any]) -> Start:
    """Stage 1: a new model (ImageNet VGG16 encoder when the file is there); otherwise
    the ``init_weights`` model (stage 2 must have them)."""
    from eyescan.api import models

    init = recipe.get("init_weights")
    if recipe["stage"] == 2 and not init:
        raise DataError(
            'stage 2 starts from stage 1\'s weights: set "init_weights" in the recipe '
            "(e.g. runs/redlesion-stage1/redseg.safetensors)"
        )
    if init:
        loaded = models.load(registry, "redlesion", options.get("model"), Path(init))
        previous = loaded.card.get("training", {})
        source = {
            "weights": str(init),
            "sha256": loaded.sha256,
            "stage": previous.get("stage"),
            "best_epoch": previous.get("best_epoch"),
        }
        return Start(
            loaded.module.train(),
            loaded.name,
            loaded.card.get("model_options", {}),
            source,
            previous.get("stages", []),
            (loaded.card.get("input") or {}).get("width"),
        )
    from eyescan_redlesion.models import find_imagenet_vgg16, load_imagenet_vgg16

    name = options.get("model") or "redseg"
    model_options = dict(recipe.get("model_options") or {})
    module = registry.model("redlesion", name).factory(**model_options)
    path = find_imagenet_vgg16(recipe.get("imagenet_weights"))
    if path is not None and float(model_options.get("width", 1.0)) == 1.0:
        load_imagenet_vgg16(module, path)
        encoder = f"ImageNet VGG16 ({path.name})"
    else:
        encoder = "random (no ImageNet VGG16 file used)"
    return Start(module, name, model_options, {"encoder": encoder})


def _pixel_loss(recipe: dict[str, Any], total_steps: int):
    if recipe["stage"] == 1:
        return TopKBalancedBCE(
            float(recipe["lambda0"]), int(recipe["topk_period"]), max(1, total_steps)
        )
    return probability_mse


def train(task: Any, data: Path, options: dict[str, Any]) -> dict[str, Any]:
    registry = get_registry()
    reader_name, reader = find_reader(registry, "redlesion", data, options.get("reader"))
    recipe = recipe_for(options)
    config = training.TrainConfig.from_dict(recipe)
    extra = config.extra
    torch.manual_seed(config.seed)
    start = _initial_model(registry, options, recipe)
    module = start.module
    default_width = start.input_width if recipe.get("init_weights") else SEED_WIDTH
    input_width = extra.get("input_width", default_width)
    loaded = [load_sample(s, input_width) for s in reader.read(data, "train")]
    n_val = int(extra["val_images"]) if len(loaded) > int(extra["val_images"]) else 0
    train_set, val_set = loaded[: len(loaded) - n_val], loaded[len(loaded) - n_val :]
    train_tensors = [_tensors(s) for s in train_set]
    steps = max(1, math.ceil(int(extra["repeats"]) * len(train_set) / config.batch_size))
    if config.steps_per_epoch:
        steps = min(steps, config.steps_per_epoch)
    total_steps = steps * config.epochs
    pixel_loss = _pixel_loss(recipe, total_steps)
    supervision = DeepSupervision(pixel_loss)
    stride = getattr(module, "stride", 16)

    def train_batches(epoch: int):
        generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        order = torch.randint(len(train_tensors), (steps * config.batch_size,), generator=generator)
        for k in range(steps):
            if isinstance(pixel_loss, TopKBalancedBCE):
                pixel_loss.iteration = (epoch - 1) * steps + k + 1
            chosen = order[k * config.batch_size : (k + 1) * config.batch_size]
            items = [train_tensors[int(i)] for i in chosen]
            if extra.get("augment", True):
                items = [dihedral(image, masks, generator) for image, masks in items]
            yield collate(items, stride)

    fixed = {"topk_fraction": float(recipe["lambda0"])} if recipe["stage"] == 1 else {}

    def val_batches():
        for sample in val_set:
            yield {**collate([_tensors(sample)], stride), **fixed}

    def validate(model: torch.nn.Module) -> dict[str, float]:
        truth, score = _pooled(model, val_set)
        return {f"{name}_auc_pr": metrics.auc_pr(truth[name], score[name]) for name in LESIONS}

    names = module.output_names()
    losses = [training.WeightedLoss(name, supervision.term(name)) for name in names]
    stage_record = {
        "stage": recipe["stage"],
        "loss": LOSS_NAMES[recipe["stage"]],
        "deep_supervision": names,
        "iterations": total_steps,
        "init": start.init,
    }
    if recipe["stage"] == 1:
        stage_record["topk"] = {
            "lambda0": float(recipe["lambda0"]),
            "period_S": int(recipe["topk_period"]),
            "total_M": total_steps,
        }
    card = {
        "task": "redlesion",
        "model": start.name,
        "model_options": start.options,
        "input": {"width": input_width, "normalisation": "imagenet", "pad_multiple": stride},
        "thresholds": dict(DEFAULT_THRESHOLDS),
        "training": {
            **stage_record,
            "stages": [*start.history, stage_record],
            "data": str(data),
            "reader": reader_name,
            "train_images": len(train_set),
            "val_images": [s.id for s in val_set],
            "lr_note": "losses are means over pixels: seed's lr × N and weight decay ÷ N "
            "reproduce its summed-loss SGD steps (N = 1072·712)",
            "command": options.get("command", ""),
        },
    }
    result = training.fit(
        module,
        train_batches,
        val_batches if val_set else None,
        losses,
        config,
        Path(options["out"]),
        card,
        forward=lambda model, batch: model.deep_outputs(batch["image"]),
        validate=validate if val_set else None,
        on_event=options.get("on_event"),
        resume=bool(options.get("resume")),
    )
    summary: dict[str, Any] = {
        "weights": str(result.best_weights),
        "stage": recipe["stage"],
        "best_epoch": result.best_epoch,
        "best_val_loss": result.best_val_loss,
        "epochs_run": result.epochs_run,
        "iterations": total_steps,
    }
    if val_set and result.best_weights.exists():
        summary["thresholds"] = _choose_thresholds(registry, result.best_weights, val_set)
    return summary


def _pooled(
    model: torch.nn.Module, samples: list[LesionSample]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """All pixels' truth and probability per lesion type (samples at model scale)."""
    was_training = model.training
    model.eval()
    truth: dict[str, list[np.ndarray]] = {name: [] for name in LESIONS}
    score: dict[str, list[np.ndarray]] = {name: [] for name in LESIONS}
    with torch.no_grad():
        for sample in samples:
            probs = lesion_probabilities(model, sample.image)
            for name in LESIONS:
                truth[name].append(getattr(sample, name).ravel())
                score[name].append(probs[name].ravel())
    model.train(was_training)
    return (
        {k: np.concatenate(v) for k, v in truth.items()},
        {k: np.concatenate(v) for k, v in score.items()},
    )


def _choose_thresholds(registry: Any, best: Path, val_set: list[LesionSample]) -> dict[str, float]:
    """Per-lesion thresholds with the best pixel F1 on the validation images, into the card."""
    from eyescan.api import models

    loaded = models.load(registry, "redlesion", None, best)
    truth, score = _pooled(loaded.module, val_set)
    thresholds = {
        name: best_f1_threshold(truth[name], score[name], DEFAULT_THRESHOLDS[name])
        for name in LESIONS
    }
    weights.update_card(best, thresholds=thresholds, thresholds_from="best pixel F1 on validation")
    return thresholds


def evaluate(model: Any, data: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Pixel P/R/AUC-PR per lesion over all test pixels, and lesion-level detection."""
    registry = get_registry()
    reader_name, reader = find_reader(registry, "redlesion", data, options.get("reader"))
    split = options.get("split") or "test"
    samples = reader.read(data, split)
    card = model.card or {}
    input_width = (card.get("input") or {}).get("width")
    thresholds = {**DEFAULT_THRESHOLDS, **(card.get("thresholds") or {})}
    per_image, truths, scores = [], {n: [] for n in LESIONS}, {n: [] for n in LESIONS}
    totals = {n: {"truths": 0, "detected": 0, "predicted": 0, "true_predicted": 0} for n in LESIONS}
    for sample in samples:
        loaded = load_sample(sample, input_width)
        probs = lesion_probabilities(model.module, loaded.image)
        row: dict[str, Any] = {"id": sample.id, "input": str(sample.image)}
        for name in LESIONS:
            truth = getattr(loaded, name)
            counts = detection_counts(truth, probs[name] >= thresholds[name])
            for key, value in counts.items():
                totals[name][key] += value
            row[f"{name}_truth_count"] = counts["truths"]
            row[f"{name}_count"] = counts["predicted"]
            row[f"{name}_detected"] = counts["detected"]
            row[f"{name}_auc_pr"] = metrics.auc_pr(truth, probs[name])
            truths[name].append(truth.ravel())
            scores[name].append(probs[name].ravel())
        per_image.append(row)
        if options.get("on_event"):
            options["on_event"]({"event": "image", "id": sample.id})
    summary: dict[str, Any] = {
        "data": str(data),
        "reader": reader_name,
        "split": split,
        "images": len(samples),
        "input_width": input_width,
        "region": "all pixels",
    }
    for name in LESIONS:
        truth, score = np.concatenate(truths[name]), np.concatenate(scores[name])
        m = metrics.binary_metrics(truth, score, threshold=thresholds[name])
        even = break_even(truth, score)
        summary.update(
            {
                f"{name}_auc_pr": m["auc_pr"],
                f"{name}_precision": m["precision"],
                f"{name}_recall": m["sensitivity"],
                f"{name}_f1": m["f1"],
                f"{name}_threshold": thresholds[name],
                f"{name}_break_even_precision": even["precision"],
                f"{name}_break_even_recall": even["recall"],
                **{f"{name}_{k}": v for k, v in detection_rates(totals[name]).items()},
                f"{name}_lesions": totals[name]["truths"],
                f"{name}_lesions_detected": totals[name]["detected"],
                f"{name}_components_predicted": totals[name]["predicted"],
            }
        )
    if options.get("update_card") and model.weights is not None:
        weights.update_card(model.weights, metrics=summary)
    return {"summary": summary, "images": per_image}
