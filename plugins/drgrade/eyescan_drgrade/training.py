"""Training of DR graders, lesion detectors and the two together.

``--model grader`` (or another grader) trains the classifier, ``--model detector``
the Faster R-CNN, ``--model screen`` both (into ``OUT/grader`` and
``OUT/detector``; or takes trained ones) and then joins them into
``OUT/screen.safetensors``.
Recipes (``--config``): grader and detector keys below; for ``screen`` the
sections ``"grader": {...}`` and ``"detector": {...}`` override the shared keys
(``eyescan.api.recipes.merge_recipe``). Training reads the ``train`` split by the
core's rule (``eyescan.api.read_split``: the data set's own split, else the
hold-out that evaluation scores); the validation part is split off it with
``eyescan.api.splits.hold_out`` (grouped by patient, stratified by grade), or is
the data set's own ``val`` split.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from eyescan.api import (
    DataError,
    WeightsError,
    augment,
    fundus,
    get_registry,
    imageio,
    read_task_split,
    recipes,
    splits,
    training,
    weights,
)
from eyescan.api import init as init_from_file
from eyescan_drgrade import models
from eyescan_drgrade.data import FOV_MARGIN, DrSample, square_fundus
from eyescan_drgrade.datasets import SOURCES
from eyescan_drgrade.evaluation import EVAL_BATCH, detection_metrics, grade_metrics
from eyescan_drgrade.inference import image_tensor, normalise, run_detector
from eyescan_drgrade.lesions import LESION_CLASSES, canonical_label, label_index
from eyescan_drgrade.losses import UNKNOWN

#: Grader recipe: the seed's augmentation (rotation 180°, flips) plus colour jitter.
GRADER_RECIPE: dict[str, Any] = {
    "epochs": 30,
    "batch_size": 16,
    "optimizer": "adamw",
    "lr": 1e-3,
    "weight_decay": 1e-4,
    "scheduler": "cosine",
    "val_fraction": 0.15,
    "init": "none",
    "sampler": "shuffle",
    "dme_weight": 1.0,
    "bn_recalibration": 20,
    "augment": {
        "rotation": 180.0,
        "hflip": True,
        "vflip": True,
        "transpose": False,
        "brightness": 0.2,
        "contrast": 0.2,
        "saturation": 0.2,
        "noise_std": 0.01,
    },
    "model_options": {},
}
#: Detector recipe: flips and transposition (exact for boxes) plus colour jitter.
DETECTOR_RECIPE: dict[str, Any] = {
    "epochs": 20,
    "batch_size": 4,
    "optimizer": "adamw",
    "lr": 1e-3,
    "weight_decay": 1e-4,
    "scheduler": "cosine",
    "grad_clip": 10.0,
    "val_fraction": 0.15,
    "init": "none",
    "ignore_unknown_labels": False,
    "bn_recalibration": 20,
    "augment": {
        "rotation": 0.0,
        "hflip": True,
        "vflip": True,
        "transpose": True,
        "brightness": 0.2,
        "contrast": 0.2,
        "saturation": 0.2,
        "noise_std": 0.01,
    },
    "model_options": {},
}
#: Recipe sections of the two parts (``screen`` trains both).
SECTIONS = ("grader", "detector")
#: Where a plain ``"init": "FILE"`` goes: a torchvision ImageNet state dict of the backbone.
INIT_DEFAULTS = {
    "grader": {"into": "net"},
    "detector": {"into": "backbone.body", "prefix": "features."},
}


def recipe(defaults: dict[str, Any], options: dict[str, Any], section: str | None) -> dict:
    """Defaults < ``--config`` < its ``section`` < CLI flags (the core's merge)."""
    return recipes.merge_recipe(defaults, options, section, sections=SECTIONS)


def init_spec(spec: Any, part: str) -> Any:
    """The recipe's ``init``; a bare file name is a torchvision backbone state dict
    (``INIT_DEFAULTS``), an object or list is passed on as written."""
    if isinstance(spec, str) and spec not in ("", "none", "scratch"):
        return {"file": spec, **INIT_DEFAULTS[part]}
    return spec


def train(task: Any, data: Path, options: dict[str, Any]) -> dict[str, Any]:
    registry = get_registry()
    model_name = options.get("model") or task.default_model
    factory = registry.model("drgrade", model_name).factory
    chosen = read_task_split("drgrade", data, options, "train")
    out = Path(options["out"])
    context = {
        "data": chosen.info,
        "data_path": str(data),
        "reader": chosen.reader,
        "command": options.get("command", ""),
        **data_sources(chosen.samples),
    }
    module = factory(**(options.get("config") or {}).get("model_options", {}))
    if isinstance(module, models.DRScreen):
        return train_screen(chosen.samples, options, out, context)
    part = "grader" if isinstance(module, models.GradeNet) else "detector"
    defaults = GRADER_RECIPE if part == "grader" else DETECTOR_RECIPE
    run = train_grader if part == "grader" else train_detector
    return run(model_name, chosen.samples, recipe(defaults, options, None), options, out, context)


def data_sources(samples: list[DrSample]) -> dict[str, Any]:
    """``{"data_sources": [{"source", "images", "terms"}, …]}`` of the training images
    (train and validation) whose reader names their data set; ``{}`` when none does."""
    counts = Counter(getattr(s, "source", None) for s in samples)
    if set(counts) == {None}:
        return {}
    unnamed = "not recorded (the reader names no data set)"
    return {
        "data_sources": [
            {"source": name, "images": n, "terms": SOURCES.get(name, unnamed)}
            for name, n in sorted(counts.items(), key=lambda kv: str(kv[0]))
        ]
    }


def parts_sources(cards: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``{"data_sources": […]}`` of a screen: every data set its parts were trained on,
    its terms and its image count per part (not the data the join command was given:
    parts taken with ``"weights"`` were trained elsewhere); ``{}`` when no part names one."""
    sources: dict[str, dict[str, Any]] = {}
    for part, card in cards.items():
        for entry in card.get("data_sources") or []:
            found = sources.setdefault(
                entry["source"], {"source": entry["source"], "terms": entry["terms"], "images": {}}
            )
            found["images"][part] = entry["images"]
    return {"data_sources": list(sources.values())} if sources else {}


def _trained_part(part: str, path: Path) -> tuple[dict[str, Any], dict[str, Any], dict]:
    """A trained grader or detector for a screen: (state, card, provenance), hash-checked
    through ``api.models.load_companion``."""
    from eyescan.api import models as loading

    card = weights.read_card(path)
    if (card.get("task"), card.get("model")) != ("drgrade", part):
        raise WeightsError(
            f"{path}: a screen needs a drgrade {part}, not {card.get('task')}/{card.get('model')}"
        )
    loaded = loading.load_companion(get_registry(), "drgrade", part, part, path)
    provenance = {
        "weights": str(path),
        "sha256": loaded.sha256,
        "synthetic_only": bool(loaded.card.get("synthetic_only")),
    }
    return loaded.module.state_dict(), loaded.card, provenance


def train_screen(
    samples: list[DrSample], options: dict[str, Any], out: Path, context: dict[str, Any]
) -> dict[str, Any]:
    """Train the grader and the detector, or take trained ones (a section's
    ``"weights"``: e.g. a grader from one data set, a detector from another), then
    save them together as ``screen``."""
    screen_options = dict((options.get("config") or {}).get("model_options", {}))
    summary: dict[str, Any] = {}
    states, cards = {}, {}
    for part, defaults, run in (
        ("grader", GRADER_RECIPE, train_grader),
        ("detector", DETECTOR_RECIPE, train_detector),
    ):
        part_recipe = recipe(defaults, options, part)
        if part_recipe.get("weights"):
            path = Path(part_recipe["weights"])
            summary[f"{part}_weights"] = str(path)
        else:
            part_recipe["model_options"] = screen_options.get(part, {})
            result = run(part, samples, part_recipe, options, out / part, context)
            path = Path(result["weights"])
            summary.update({f"{part}_{k}": v for k, v in result.items()})
        states[part], card, provenance = _trained_part(part, path)
        screen_options[part] = card.get("model_options", {})
        cards[part] = {**provenance, **card["training"], "init": card.get("init", [])}
    module = models.DRScreen(**screen_options)
    weights.load_into(module.grader, states["grader"], cards["grader"]["weights"])
    weights.load_into(module.detector, states["detector"], cards["detector"]["weights"])
    path = out / "screen.safetensors"
    card = {
        "task": "drgrade",
        "model": "screen",
        "model_options": screen_options,
        "training": {**context, **cards, **parts_sources(cards)},
    }
    if any(c["synthetic_only"] for c in cards.values()):
        card["synthetic_only"] = True  # a part trained on synthetic images only
    weights.save_weights(module, path, card)
    return {"weights": str(path), **summary}


def validation_seed(seed: int) -> int:
    """The hold-out seed of validation: a hash of the training seed, never the seed itself.

    The core's test hold-out ranks the unsplit images by a hash of the plain seed
    and takes the lowest; ranking the rest by that same seed again would fill
    validation with the images that had no split to lose (IDRiD next to APTOS:
    a third of IDRiD's training images, an eighth of APTOS's).
    """
    digest = hashlib.sha256(f"drgrade validation {seed}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def validation_split(
    samples: list[DrSample], fraction: float, seed: int
) -> tuple[list[DrSample], list[DrSample], str]:
    """The data set's ``val`` images, else a hold-out of the training part (grouped by
    patient, stratified by grade: ``api.splits.hold_out`` with :func:`validation_seed`);
    and the rule used."""
    marked = [s for s in samples if s.split == "val"]
    if marked:
        return [s for s in samples if s.split != "val"], marked, "the data set's val split"
    kept, held = splits.hold_out(samples, fraction, validation_seed(seed))
    return (
        kept,
        held,
        (
            f"hold-out {fraction:g} of the training part by patient, stratified by grade, "
            f"seed {validation_seed(seed)} (drawn from seed {seed})"
        ),
    )


def square_image(sample: DrSample, size: int, margin: float) -> tuple[np.ndarray, Any]:
    """The sample's FOV-cropped square view (``margin``: the model's ``fov_margin``)
    resized to ``size`` (uint8), and its frame."""
    square, frame = square_fundus(imageio.read_image(sample.image), margin)
    return fundus.resize(square, size), frame


def part_options(recipe_: dict[str, Any], **automatic: Any) -> dict[str, Any]:
    """``recipe_`` with its ``model_options`` completed: ``fov_margin`` (default
    :data:`FOV_MARGIN`) and the ``automatic`` values where the recipe gives none
    (or null), so the card records every preprocessing and head choice."""
    options = {"fov_margin": FOV_MARGIN, **dict(recipe_.get("model_options") or {})}
    for key, value in automatic.items():
        if options.get(key) is None:
            options[key] = value
    return {**recipe_, "model_options": options}


def _setup(model_name: str, recipe_: dict[str, Any], kind: type, what: str) -> tuple:
    """Registry, training config and a fresh module of the asked kind."""
    registry = get_registry()
    config = training.TrainConfig.from_dict(recipe_)
    module = registry.model("drgrade", model_name).factory(**config.extra["model_options"])
    if not isinstance(module, kind):
        raise DataError(f"model {model_name!r} is not a {what}")
    return registry, config, module


def _fit(
    module: nn.Module,
    config: Any,
    losses: list[Any],
    batches: tuple[Any, Any, Any],
    card: dict[str, Any],
    options: dict[str, Any],
    out: Path,
    forward: Any = None,
    init: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Run :func:`eyescan.api.training.fit` (``batches``: train, validation, validate;
    the last two None without a validation set) and summarise it."""
    train_batches, val_batches, validate = batches
    result = training.fit(
        module,
        train_batches,
        val_batches,
        losses,
        config,
        out,
        {
            "task": "drgrade",
            "model": card.pop("model"),
            "model_options": config.extra["model_options"],
            "init": init or [],
            "training": card,
        },
        forward=forward,
        validate=validate,
        options=options,
    )
    return {**result.summary(), "data": card["data"], "init": init or []}


def recalibrate_batch_norm(model: nn.Module, inputs: Any, forward: Any) -> None:
    """Precise BN: re-estimate batch-norm statistics as plain averages over ``inputs``.

    Running averages lag behind weights that still move fast (small models
    trained from scratch), and evaluation-mode outputs then fall apart; this
    pass, run at the end of every epoch, measures them for the current weights.
    """
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in layers]
    was_training = model.training
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        for x in inputs:
            forward(x)
    for layer, momentum in zip(layers, momenta):
        layer.momentum = momentum
    model.train(was_training)


def epoch_batches(config: Any) -> tuple[int | None, int]:
    """Batches per epoch (``steps_per_epoch``, applied here so that the end-of-epoch
    batch-norm pass runs) and batch-norm calibration batches."""
    cap, config.steps_per_epoch = config.steps_per_epoch, None
    return cap, int(config.extra.get("bn_recalibration") or 0)


# -- grader -----------------------------------------------------------------


def dme_of(sample: Any) -> int:
    """The sample's DME risk (0-2), or :data:`UNKNOWN` (APTOS, class folders)."""
    dme = getattr(sample, "dme", None)
    return UNKNOWN if dme is None else int(dme)


def train_grader(
    model_name: str,
    samples: list[DrSample],
    recipe_: dict[str, Any],
    options: dict[str, Any],
    out: Path,
    context: dict[str, Any],
) -> dict[str, Any]:
    """Train a grader; with DME labels (any training image's ``dme``) also its DME-risk
    head (model option ``dme``: automatic unless the recipe says), whose cross-entropy
    counts only the images with a known risk (``dme_weight`` × ``drgrade-dme``)."""
    graded = [s for s in samples if s.label is not None]
    if not graded:
        raise DataError(f"{context['data_path']}: no grades in the training data")
    with_dme = sum(dme_of(s) != UNKNOWN for s in graded)
    recipe_ = part_options(recipe_, dme=with_dme > 0)
    if recipe_["model_options"]["dme"] and not with_dme:
        raise DataError(
            f"{context['data_path']}: the recipe asks for a DME head (model_options.dme) "
            "but no training image has a DME risk"
        )
    registry, config, module = _setup(model_name, recipe_, models.GradeNet, "grader")
    extra = config.extra
    train_set, val_set, val_rule = validation_split(
        graded, float(extra["val_fraction"]), config.seed
    )
    size, margin = module.image_size, module.fov_margin
    images = torch.from_numpy(np.stack([square_image(s, size, margin)[0] for s in train_set]))
    images = images.permute(0, 3, 1, 2).contiguous()  # uint8 N×3×S×S
    grades = torch.tensor([s.label for s in train_set], dtype=torch.long)
    dmes = torch.tensor([dme_of(s) for s in train_set], dtype=torch.long)
    val_x = (
        normalise(
            torch.stack([image_tensor(square_image(s, size, margin)[0], size) for s in val_set])
        )
        if val_set
        else None
    )
    val_y = torch.tensor([s.label for s in val_set], dtype=torch.long)
    val_dme = torch.tensor([dme_of(s) for s in val_set], dtype=torch.long)
    init = init_from_file.initialise(module, init_spec(extra.get("init"), "grader"))
    augmentation = augment.AugmentConfig.from_dict(extra.get("augment"))
    counts = torch.bincount(grades, minlength=5).float()
    cap, calibration = epoch_batches(config)

    def train_batches(epoch: int):
        generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        n = len(train_set)
        if extra.get("sampler") == "balanced":
            weight = 1.0 / counts[grades].clamp_min(1)
            order = torch.multinomial(weight, n, replacement=True, generator=generator)
        else:
            order = torch.randperm(n, generator=generator)
        starts = list(range(0, n, config.batch_size))[:cap]
        for begin in starts:
            index = order[begin : begin + config.batch_size]
            views = torch.stack(
                [augment.augment_image(v, augmentation, generator) for v in images[index] / 255.0]
            )
            yield {"image": normalise(views), "grade": grades[index], "dme": dmes[index]}
        if calibration:
            plain = (
                normalise(images[order[b : b + config.batch_size]].float() / 255.0)
                for b in starts[:calibration]
            )
            recalibrate_batch_norm(module, plain, module)

    def val_batches():
        for begin in range(0, len(val_set), EVAL_BATCH):
            yield {
                "image": val_x[begin : begin + EVAL_BATCH],
                "grade": val_y[begin : begin + EVAL_BATCH],
                "dme": val_dme[begin : begin + EVAL_BATCH],
            }

    def validate(model: nn.Module) -> dict[str, float]:
        logits = torch.cat([model(b["image"]) for b in val_batches()])
        m = grade_metrics(val_y.numpy(), model.grades(logits).numpy())
        shown = {"kappa": m["kappa"], "accuracy": m["accuracy"]}
        known = val_dme != UNKNOWN
        if model.dme and bool(known.any()):
            risk = model.dme_probabilities(logits).argmax(dim=1)
            shown["dme_accuracy"] = float((risk[known] == val_dme[known]).float().mean())
        return {k: v for k, v in shown.items() if math.isfinite(v)}

    loss_name = extra.get("loss") or (
        "drgrade-ordinal" if module.head == "ordinal" else "drgrade-ce"
    )
    losses = [training.WeightedLoss(loss_name, registry.loss(loss_name))]
    if module.dme:
        weight = float(extra.get("dme_weight", 1.0))
        losses.append(training.WeightedLoss("drgrade-dme", registry.loss("drgrade-dme"), weight))
    return _fit(
        module,
        config,
        losses,
        (train_batches, *((val_batches, validate) if val_set else (None, None))),
        {
            "model": model_name,
            **context,
            "train_images": len(train_set),
            "val_images": len(val_set),
            "train_images_with_dme": int((dmes != UNKNOWN).sum()),
            "validation": val_rule,
        },
        options,
        out,
        init=init,
    )


# -- detector ---------------------------------------------------------------


def detection_target(sample: DrSample, frame: Any, size: int, ignore_unknown: bool) -> dict:
    """Boxes (square frame, ``size`` pixels) and labels of one annotated sample."""
    boxes, labels = [], []
    for name, box in zip(sample.boxes.labels, sample.boxes.boxes):
        lesion = canonical_label(name)
        if lesion is None:
            if ignore_unknown:
                continue
            raise DataError(
                f"{sample.image}: unknown lesion label {name!r} "
                f"(known: {', '.join(LESION_CLASSES)}; "
                "set ignore_unknown_labels in the recipe to skip others)"
            )
        boxes.append(box)
        labels.append(label_index(lesion))
    square = np.clip(frame.to_square(np.asarray(boxes, float), size), 0, size)
    keep = ((square[:, 2] - square[:, 0]) >= 1) & ((square[:, 3] - square[:, 1]) >= 1)
    return {
        "boxes": torch.tensor(square[keep], dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(np.asarray(labels, np.int64)[keep], dtype=torch.long),
    }


def flip_boxes(
    image: torch.Tensor, boxes: torch.Tensor, config: augment.AugmentConfig, flips: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random transpose and flips of a square image with its boxes (exact for boxes)."""
    size = image.shape[-1]
    if config.transpose and flips[0] < 0.5:
        image, boxes = image.transpose(-1, -2), boxes[:, [1, 0, 3, 2]]
    if config.hflip and flips[1] < 0.5:
        image = image.flip(-1)
        boxes = torch.stack([size - boxes[:, 2], boxes[:, 1], size - boxes[:, 0], boxes[:, 3]], 1)
    if config.vflip and flips[2] < 0.5:
        image = image.flip(-2)
        boxes = torch.stack([boxes[:, 0], size - boxes[:, 3], boxes[:, 2], size - boxes[:, 1]], 1)
    return image.contiguous(), boxes.reshape(-1, 4)


def detector_forward(model: nn.Module, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Faster R-CNN losses, also for validation: the heads run in training mode
    (they only give losses then) while batch norm keeps its running statistics."""
    if model.training:
        return model(batch["images"], batch["targets"])
    model.train()
    for layer in model.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            layer.eval()
    try:
        return model(batch["images"], batch["targets"])
    finally:
        model.eval()


def train_detector(
    model_name: str,
    samples: list[DrSample],
    recipe_: dict[str, Any],
    options: dict[str, Any],
    out: Path,
    context: dict[str, Any],
) -> dict[str, Any]:
    recipe_ = part_options(recipe_)
    registry, config, module = _setup(model_name, recipe_, models.FasterRCNN, "lesion detector")
    extra = config.extra
    annotated = [s for s in samples if getattr(s, "boxes", None) is not None]
    if not annotated:
        raise DataError(f"{context['data_path']}: no lesion boxes in the training data")
    train_set, val_set, val_rule = validation_split(
        annotated, float(extra["val_fraction"]), config.seed
    )
    size, margin = module.image_size, module.fov_margin
    ignore = bool(extra.get("ignore_unknown_labels"))

    def prepare(sample: DrSample) -> tuple[torch.Tensor, dict]:
        image, frame = square_image(sample, size, margin)
        tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        return tensor, detection_target(sample, frame, size, ignore)

    train_items = [prepare(s) for s in train_set]
    val_items = [prepare(s) for s in val_set]
    init = init_from_file.initialise(module, init_spec(extra.get("init"), "detector"))
    augmentation = augment.AugmentConfig.from_dict(extra.get("augment"))
    cap, calibration = epoch_batches(config)

    def train_batches(epoch: int):
        generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        order = torch.randperm(len(train_items), generator=generator)
        starts = list(range(0, len(order), config.batch_size))[:cap]
        for begin in starts:
            images, targets = [], []
            for i in order[begin : begin + config.batch_size]:
                image, target = train_items[int(i)]
                flips = torch.rand(3, generator=generator)
                image, boxes = flip_boxes(
                    image.float() / 255.0, target["boxes"], augmentation, flips
                )
                images.append(augment.photometric(image, augmentation, generator))
                targets.append({"boxes": boxes, "labels": target["labels"]})
            yield {"images": images, "targets": targets}
        if calibration:
            plain = (
                normalise(
                    torch.stack(
                        [train_items[int(i)][0] for i in order[b : b + config.batch_size]]
                    ).float()
                    / 255.0
                )
                for b in starts[:calibration]
            )
            recalibrate_batch_norm(module, plain, module.backbone)

    def val_batches():
        for begin in range(0, len(val_items), config.batch_size):
            chunk = val_items[begin : begin + config.batch_size]
            yield {
                "images": [i.float() / 255.0 for i, _ in chunk],
                "targets": [t for _, t in chunk],
            }

    def validate(model: nn.Module) -> dict[str, float]:
        squares = [image.permute(1, 2, 0).numpy() for image, _ in val_items]
        found = []
        for begin in range(0, len(squares), EVAL_BATCH):
            found += run_detector(model, squares[begin : begin + EVAL_BATCH])
        truths = [
            {
                "boxes": t["boxes"].numpy(),
                "labels": [LESION_CLASSES[int(k) - 1] for k in t["labels"]],
            }
            for _, t in val_items
        ]
        m = detection_metrics(found, truths, model.score_threshold)
        shown = {"map": m["map"], "precision": m["precision"], "recall": m["recall"]}
        return {k: v for k, v in shown.items() if math.isfinite(v)}  # no NaN in metrics.jsonl

    return _fit(
        module,
        config,
        [training.WeightedLoss("drgrade-detector", registry.loss("drgrade-detector"))],
        (train_batches, *((val_batches, validate) if val_items else (None, None))),
        {
            "model": model_name,
            **context,
            "train_images": len(train_items),
            "val_images": len(val_items),
            "validation": val_rule,
        },
        options,
        out,
        forward=detector_forward,
        init=init,
    )
