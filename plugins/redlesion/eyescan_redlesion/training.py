"""Two-stage training of Red-Seg: top-k balanced BCE, then MSE.

Stage 1 starts from scratch or from the file the recipe's ``init`` names (the
seed's ImageNet VGG16: ``{"file": ".../vgg16-397923af.pth", "into": "encoder"}``,
loaded by ``api.init.initialise``; nothing is looked up or downloaded) with the
top-k loss; stage 2 starts from stage 1's best weights (recipe key
``init_weights``, loaded by the core loader, SHA-256 checked) with the MSE loss.
Each stage is one ``eyescan train`` run; the card's ``init`` and
``training.stages`` record where each stage started. Training reads the
``train`` split only (``api.read_split``); its validation images are split off
it by ``api.splits.hold_out`` (or are the data set's ``val`` images), and the
per-lesion thresholds are chosen on them.

Learning rates: the seed's Caffe losses are sums over the pixels of one
1072×712 image (lr 1e-8 / 1e-9, weight decay 5e-4); ours are divided by the
pixel count N = 763 264. SGD's step −lr·(∇L_sum + wd·w) is reproduced exactly
by lr' = lr·N and wd' = wd/N: lr' ≈ 7.6e-3 (stage 1) and 7.6e-4 (stage 2),
wd' ≈ 6.55e-10. (Keeping wd = 5e-4 with lr' would decay the weights N times
harder than the seed did.)
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eyescan.api import (
    DataError,
    Sample,
    augment,
    get_registry,
    metrics,
    read_task_split,
    recipes,
    splits,
)
from eyescan.api import training as engine
from eyescan_redlesion.data import (
    LESIONS,
    LesionSample,
    card_view,
    load_sample,
    normalise,
    reader_mask_threshold,
)
from eyescan_redlesion.evaluation import pooled
from eyescan_redlesion.lesions import DEFAULT_THRESHOLDS, best_f1_threshold
from eyescan_redlesion.losses import (
    DeepSupervision,
    TopKBalancedBCE,
    probability_mse,
    weighted_bce,
)

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
#: starts from ``init_weights``, whose card's width is then kept. ``init``: "none" (from
#: scratch) or a file for ``api.init.initialise`` (the seed: ImageNet VGG16 into "encoder").
STAGE1: dict[str, Any] = {
    **COMMON,
    "stage": 1,
    "epochs": 300,
    "lr": 1e-8 * SEED_PIXELS,
    "lambda0": 0.14,
    "topk_period": 10_000,
    "init": "none",
    "model_options": {},
}
#: Stage 2: from stage 1's weights (``init_weights``), lr 1/10 of stage 1, 20 epochs;
#: the model, its options and the input width come from stage 1's card.
STAGE2: dict[str, Any] = {**COMMON, "stage": 2, "epochs": 20, "lr": 1e-9 * SEED_PIXELS}
#: Stage-1 losses by the recipe's ``"loss"``: the seed's top-k (default) or weighted BCE
#: (``"pos_weight"``, default 20), which learned far faster from scratch in a one-off
#: CPU probe (issue 20 note); the card names the one used.
STAGE1_LOSSES = {"topk": "redlesion-topk-bce", "weighted-bce": "redlesion-weighted-bce"}
STAGE2_LOSS = "redlesion-mse"
#: Recipe keys of earlier versions, and what replaced them.
RETIRED_KEYS = {
    "imagenet_weights": 'name the file in "init": {"file": "…/vgg16-397923af.pth", '
    '"into": "encoder"} (nothing is looked up in the torch cache any more)',
}


def recipe_for(options: dict[str, Any]) -> dict[str, Any]:
    """The stage's defaults < the --config recipe < --epochs/--batch-size (``merge_recipe``)."""
    config = options.get("config") or {}
    stage = config.get("stage", 1)
    if stage not in (1, 2):
        raise DataError(f"recipe stage must be 1 or 2, got {stage!r}")
    for key, hint in RETIRED_KEYS.items():
        if key in config:
            raise DataError(f"recipe key {key!r} is no longer read: {hint}")
    recipe = recipes.merge_recipe(STAGE1 if stage == 1 else STAGE2, options)
    if stage == 1 and recipe.get("loss", "topk") not in STAGE1_LOSSES:
        raise DataError(f"recipe loss must be one of {', '.join(STAGE1_LOSSES)}")
    if recipe.get("init_weights") and recipe.get("init", "none") not in (None, "none"):
        raise DataError(
            "recipe: 'init_weights' (continue an eyescan model) and 'init' (a file into "
            "the new model) exclude each other"
        )
    if stage == 2 and not recipe.get("init_weights"):
        raise DataError(
            'stage 2 starts from stage 1\'s weights: set "init_weights" in the recipe '
            "(e.g. runs/redlesion-stage1/redseg.safetensors)"
        )
    return recipe


def validation_split(
    samples: list[Sample], recipe: dict[str, Any], seed: int = 0
) -> tuple[list[Sample], list[Sample], str]:
    """(train, validation, rule) of the ``train`` split's samples.

    The data set's own ``val`` images when it marks some; else the recipe's
    ``val_ids``; else ``val_images`` images held out by ``api.splits.hold_out``
    (seeded, grouped by patient); none when there are not more images than that.
    """
    marked = [s for s in samples if s.split == "val"]
    if marked:
        return [s for s in samples if s.split != "val"], marked, "the data set's val images"
    if recipe.get("val_ids"):
        kept, held = splits.hold_out(samples, ids=[str(i) for i in recipe["val_ids"]])
        return kept, held, "the recipe's val_ids"
    count = int(recipe.get("val_images") or 0)
    if count <= 0 or len(samples) <= count:
        return list(samples), [], "none (too few images)"
    kept, held = splits.hold_out(samples, count=count, seed=seed)
    return kept, held, f"hold-out of {count} training images, seed {seed}"


@dataclass
class Start:
    """The model a stage starts from, and what the card says about that start."""

    module: torch.nn.Module
    name: str
    options: dict[str, Any]
    init: list[dict[str, Any]]  # how it was initialised (the card's "init")
    history: list[dict[str, Any]] = field(default_factory=list)  # earlier stages
    input_width: int | None = None  # stage 1's, for stage 2
    fov_width: int | None = None  # stage 1's, for stage 2


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


def random_crop(
    image: torch.Tensor,
    masks: torch.Tensor,
    size: int,
    generator: torch.Generator,
    lesion_fraction: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random ``size``² window of image and masks (all of a side that is shorter);
    with probability ``lesion_fraction`` centred on a lesion pixel (if the image has
    one), so that crops with lesions, the only ones the balanced loss learns from,
    are common."""
    h, w = image.shape[-2:]
    top, left = augment.random_crop_box((h, w), size, generator, None)
    if lesion_fraction > 0 and float(torch.rand((), generator=generator)) < lesion_fraction:
        pixels = torch.nonzero(masks.amax(dim=0) > 0.5)
        if len(pixels):
            y, x = pixels[int(torch.randint(len(pixels), (1,), generator=generator))].tolist()
            top = min(max(0, y - size // 2), max(0, h - size))
            left = min(max(0, x - size // 2), max(0, w - size))
    window = (..., slice(top, top + size), slice(left, left + size))
    return image[window], masks[window]


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
    """The ``init_weights`` model (core loader, hash-checked; stage 2 always), or a new
    model initialised as the recipe's ``init`` says (``api.init.initialise``)."""
    from eyescan.api import init as init_files
    from eyescan.api import models

    source = recipe.get("init_weights")
    if source:
        loaded = models.load(registry, "redlesion", options.get("model"), Path(source))
        previous = loaded.card.get("training", {})
        start = {
            "file": Path(source).name,
            "path": str(source),
            "sha256": loaded.sha256,
            "into": "(whole model)",
            "tensors_loaded": len(loaded.module.state_dict()),
            "from_stage": previous.get("stage"),
            "best_epoch": previous.get("best_epoch"),
        }
        return Start(
            loaded.module.train(),
            loaded.name,
            loaded.card.get("model_options", {}),
            [start],
            previous.get("stages", []),
            **card_view(loaded.card),
        )
    name = options.get("model") or "redseg"
    model_options = dict(recipe.get("model_options") or {})
    module = registry.model("redlesion", name).factory(**model_options)
    done = init_files.initialise(module, recipe.get("init"))
    return Start(module, name, model_options, done)


def _loss_name(recipe: dict[str, Any]) -> str:
    return STAGE1_LOSSES[recipe.get("loss", "topk")] if recipe["stage"] == 1 else STAGE2_LOSS


def _pixel_loss(recipe: dict[str, Any], total_steps: int):
    if recipe["stage"] == 2:
        return probability_mse
    if recipe.get("loss", "topk") == "weighted-bce":
        return functools.partial(weighted_bce, pos_weight=float(recipe.get("pos_weight", 20.0)))
    return TopKBalancedBCE(
        float(recipe["lambda0"]), int(recipe["topk_period"]), max(1, total_steps)
    )


def train(task: Any, data: Path, options: dict[str, Any]) -> dict[str, Any]:
    """One stage of Red-Seg training on the ``train`` split of ``data``; the run's summary."""
    registry = get_registry()
    recipe = recipe_for(options)
    chosen = read_task_split("redlesion", Path(data), options, "train")
    mask_threshold = reader_mask_threshold(registry, chosen.reader)
    config = engine.TrainConfig.from_dict(recipe)
    extra = config.extra
    torch.manual_seed(config.seed)
    start = _initial_model(registry, options, recipe)
    module = start.module
    continued = bool(recipe.get("init_weights"))
    input_width = extra.get("input_width", start.input_width if continued else SEED_WIDTH)
    fov_width = extra.get("fov_width", start.fov_width if continued else None)
    if fov_width:
        input_width = None  # the field of view's width sets the scale
    crop = extra.get("crop")
    train_samples, val_samples, val_rule = validation_split(chosen.samples, recipe, config.seed)
    train_set = [load_sample(s, input_width, mask_threshold, fov_width) for s in train_samples]
    val_set = [load_sample(s, input_width, mask_threshold, fov_width) for s in val_samples]
    train_tensors = [_tensors(s) for s in train_set]
    steps = max(1, math.ceil(int(extra["repeats"]) * len(train_set) / config.batch_size))
    if config.steps_per_epoch:
        steps = min(steps, config.steps_per_epoch)
    total_steps = steps * config.epochs
    pixel_loss = _pixel_loss(recipe, total_steps)
    topk = isinstance(pixel_loss, TopKBalancedBCE)
    supervision = DeepSupervision(pixel_loss)
    stride = getattr(module, "stride", 16)

    def train_batches(epoch: int):
        generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        order = torch.randint(len(train_tensors), (steps * config.batch_size,), generator=generator)
        for k in range(steps):
            if topk:
                pixel_loss.iteration = (epoch - 1) * steps + k + 1
            picked = order[k * config.batch_size : (k + 1) * config.batch_size]
            items = [train_tensors[int(i)] for i in picked]
            if extra.get("augment", True):
                items = [dihedral(image, masks, generator) for image, masks in items]
            if crop:
                fraction = float(extra.get("lesion_crops", 0.0))
                items = [random_crop(i, m, int(crop), generator, fraction) for i, m in items]
            yield collate(items, stride)

    fixed = {"topk_fraction": float(recipe["lambda0"])} if topk else {}

    def val_batches():
        for sample in val_set:
            yield {**collate([_tensors(sample)], stride), **fixed}

    def validate(model: torch.nn.Module) -> dict[str, float]:
        truth, score = pooled(model, val_set)
        found = {f"{name}_auc_pr": metrics.auc_pr(truth[name], score[name]) for name in LESIONS}
        found["mean_auc_pr"] = float(np.mean(list(found.values())))
        return found

    names = module.output_names()
    losses = [engine.WeightedLoss(name, supervision.term(name)) for name in names]
    stage_record: dict[str, Any] = {
        "stage": recipe["stage"],
        "loss": _loss_name(recipe),
        "deep_supervision": names,
        "iterations": total_steps,
        "init": start.init,
    }
    if isinstance(pixel_loss, functools.partial):
        stage_record["pos_weight"] = pixel_loss.keywords["pos_weight"]
    elif topk:
        stage_record["topk"] = {
            "lambda0": float(recipe["lambda0"]),
            "period_S": int(recipe["topk_period"]),
            "total_M": total_steps,
        }
    card = {
        "task": "redlesion",
        "model": start.name,
        "model_options": start.options,
        "input": {
            "width": input_width,
            "fov_width": fov_width,
            "normalisation": "imagenet",
            "pad_multiple": stride,
        },
        "thresholds": dict(DEFAULT_THRESHOLDS),
        "init": start.init,
        "training": {
            **stage_record,
            "stages": [*start.history, stage_record],
            "data": chosen.info,
            "data_path": str(data),
            "train_images": len(train_set),
            "crop": crop,
            "val_images": [s.id for s in val_set],
            "val_rule": val_rule,
            "lr_note": "losses are means over pixels: seed's lr × N and weight decay ÷ N "
            "reproduce its summed-loss SGD steps (N = 1072·712)",
            "command": options.get("command", ""),
        },
    }
    result = engine.fit(
        module,
        train_batches,
        val_batches if val_set else None,
        losses,
        config,
        Path(options["out"]),
        card,
        forward=lambda model, batch: model.deep_outputs(batch["image"]),
        validate=validate if val_set else None,
        options=options,
    )
    summary: dict[str, Any] = {
        **result.summary(),
        "stage": recipe["stage"],
        "iterations": total_steps,
        "data": chosen.info,
    }
    if val_set and result.best_weights.exists():
        summary["thresholds"] = choose_thresholds(registry, result.best_weights, val_set)
    return summary


def choose_thresholds(registry: Any, best: Path, val_set: list[LesionSample]) -> dict[str, float]:
    """Per-lesion thresholds with the best pixel F1 on the validation images, into the card."""
    from eyescan.api import models, weights

    loaded = models.load(registry, "redlesion", None, best)
    truth, score = pooled(loaded.module, val_set)
    thresholds = {
        name: best_f1_threshold(truth[name], score[name], DEFAULT_THRESHOLDS[name])
        for name in LESIONS
    }
    weights.update_card(best, thresholds=thresholds, thresholds_from="best pixel F1 on validation")
    return thresholds
