"""Training of both stages: the eye-region detector and the classifiers.

``eyescan train strabismus DATA --model eye-detector`` trains the detector on
the boxes; ``--model rfcnn-lite`` (default) or ``--model rfcnn-cnn`` trains a
classifier on crops of the annotated eye region (the whole image when a data
set has no boxes). Both read the ``train`` split by the core's rule
(:func:`eyescan.api.read_split`), hold out their validation images from it
with :func:`eyescan.api.splits.hold_out` (grouped by patient, stratified by
label) and go through the core's loop (:func:`eyescan.api.training.fit`).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eyescan.api import DataError, WeightsError, get_registry, read_task_split, recipes, splits
from eyescan.api import training as engine
from eyescan_strabismus.data import (
    BOX_LABEL,
    Box,
    LoadedEye,
    crop,
    detector_tensor,
    load_sample,
    main_box,
    normalise,
)
from eyescan_strabismus.evaluation import detector_ap
from eyescan_strabismus.losses import DETECTOR_LOSSES, detector_component
from eyescan_strabismus.models import CLASSES
from eyescan_strabismus.pipeline import DETECTOR, THRESHOLD, detector_link

#: Training augmentation of both stages (:class:`eyescan.api.augment.AugmentConfig`
#: fields): horizontal flip and brightness/contrast/colour jitter, nothing else.
AUGMENT: dict[str, Any] = {
    "rotation": 0.0,
    "hflip": True,
    "vflip": False,
    "transpose": False,
    "brightness": 0.3,
    "contrast": 0.3,
    "saturation": 0.1,
    "noise_std": 0.0,
}

#: Classifier recipe (override any key with --config). ``input_size`` is the crop side;
#: ``box_jitter`` shifts and scales the crop box as a detector's box would differ.
CLASSIFIER_RECIPE: dict[str, Any] = {
    "epochs": 20,
    "batch_size": 32,
    "optimizer": "adam",
    "lr": 1e-3,
    "weight_decay": 1e-4,
    "scheduler": "cosine",
    "loss": "strabismus-ce",
    "input_size": 224,
    "val_fraction": 0.1,
    "augment": AUGMENT,
    "box_jitter": True,
    "model_options": {},
}

#: Detector recipe.
DETECTOR_RECIPE: dict[str, Any] = {
    "epochs": 20,
    "batch_size": 8,
    "optimizer": "adam",
    "lr": 1e-3,
    "weight_decay": 1e-4,
    "scheduler": "cosine",
    "grad_clip": 10.0,
    "val_fraction": 0.1,
    "augment": AUGMENT,
    "model_options": {},
}

#: Fewer training images than this: no validation set is held out.
MIN_FOR_VALIDATION = 5


def recipe_for(defaults: dict[str, Any], options: dict[str, Any]) -> engine.TrainConfig:
    """The run's recipe (core merge rule); ``augment`` resolved to its full field set.

    ``"augment": false`` turns augmentation off, ``true`` means the defaults.
    """
    recipe = recipes.merge_recipe(defaults, options)
    value = recipe.get("augment")
    if value is True:
        value = defaults["augment"]
    recipe["augment"] = asdict(augment_config(value)) if value else False
    return engine.TrainConfig.from_dict(recipe)


def augment_config(value: Any) -> Any:
    """The recipe's ``augment`` as an :class:`~eyescan.api.augment.AugmentConfig` (or None)."""
    from eyescan.api import augment

    try:
        return augment.AugmentConfig.from_dict(value) if value else None
    except ValueError as exc:
        raise DataError(str(exc)) from None


def jitter_box(box: Box, rng: np.random.Generator, shape: tuple[int, ...]) -> Box:
    """Shift and scale a box a little, as a detector's box would differ from the truth."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    cx = (x0 + x1) / 2 + rng.uniform(-0.06, 0.06) * w
    cy = (y0 + y1) / 2 + rng.uniform(-0.12, 0.12) * h
    w, h = w * rng.uniform(0.9, 1.12), h * rng.uniform(0.85, 1.2)
    height, width = shape[:2]
    return (
        max(0.0, cx - w / 2),
        max(0.0, cy - h / 2),
        min(float(width), cx + w / 2),
        min(float(height), cy + h / 2),
    )


def epoch_batches(items: list[LoadedEye], config: Any, epoch: int):
    """One epoch's shuffled batches (a last partial batch is dropped), with the epoch's
    random generators (numpy for boxes, torch for the core's augmentation);
    reproducible from the seed and the epoch."""
    seed = config.seed * 100_003 + epoch
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    order = rng.permutation(len(items))
    step = config.batch_size
    for start in range(0, max(1, len(order) - step + 1), step):
        yield [items[i] for i in order[start : start + step]], rng, generator


def train(task: Any, data: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Train the model named by ``options["model"]`` (a classifier by default)."""
    registry = get_registry()
    model_name = options.get("model") or task.default_model
    registry.model("strabismus", model_name)  # clear error for an unknown name
    is_detector = model_name == DETECTOR
    config = recipe_for(DETECTOR_RECIPE if is_detector else CLASSIFIER_RECIPE, options)
    extra = config.extra
    chosen = read_task_split("strabismus", data, options, "train")
    if is_detector:
        samples = [s for s in chosen.samples if getattr(s, "boxes", None) is not None]
        if not samples:
            raise DataError(
                f"{data}: no eye-region boxes (annotations/*.xml or boxes.csv) to train on"
            )
    else:
        samples = [s for s in chosen.samples if s.label is not None]
        if len({s.label for s in samples}) < 2:
            raise DataError(f"{data}: the classifier needs labelled images of both classes")
    fraction = float(extra["val_fraction"]) if len(samples) >= MIN_FOR_VALIDATION else 0.0
    train_samples, val_samples = splits.hold_out(samples, fraction, config.seed)
    train_set = [load_sample(s) for s in train_samples]
    val_set = [load_sample(s) for s in val_samples]
    module = registry.model("strabismus", model_name).factory(**extra["model_options"])
    if not is_detector:  # crops arrive channels-last; ~25 % faster convolutions on the CPU
        module = module.to(memory_format=torch.channels_last)
    rule = (
        f"hold-out {fraction:g} of the train split, grouped by patient, stratified by label, "
        f"seed {config.seed}"
    )
    card: dict[str, Any] = {
        "task": "strabismus",
        "model": model_name,
        "model_options": extra["model_options"],
        "classes": list(CLASSES) if not is_detector else ["background", BOX_LABEL],
        "training": {
            "data": {"path": str(data), **chosen.info},
            "validation": splits.describe(val_samples, "val", rule),
            "train_images": len(train_set),
            "val_images": len(val_set),
            "command": options.get("command", ""),
        },
    }
    if is_detector:
        batches, forward, losses, validate = _detector_parts(train_set, val_set, config)
    else:
        card["input_size"] = int(extra["input_size"])
        if extra.get("detector"):
            card["detector"] = _linked_detector(Path(extra["detector"]), Path(options["out"]))
        batches, forward, losses, validate = _classifier_parts(registry, train_set, val_set, config)
    train_batches, val_batches = batches
    result = engine.fit(
        module,
        train_batches,
        val_batches if val_set else None,
        losses,
        config,
        Path(options["out"]),
        card,
        forward=forward,
        validate=validate if val_set else None,
        options=options,
    )
    best = next((h for h in result.history if h["epoch"] == result.best_epoch), {})
    return {
        **result.summary(),
        "model": model_name,
        "data_split": chosen.info,
        "train_images": len(train_set),
        "val_images": len(val_set),
        **{k: v for k, v in best.items() if k.startswith("val_") and k != "val_loss"},
    }


def _linked_detector(path: Path, out: Path) -> dict[str, str]:
    """The card entry naming the detector a classifier goes with (path and SHA-256)."""
    from eyescan.api import weights

    if not path.exists():
        raise WeightsError(f"{path}: the recipe's detector weights do not exist")
    sha = weights.read_card(path).get("sha256")
    if not sha:
        raise WeightsError(f"{weights.card_path(path)}: the detector's card has no sha256")
    return detector_link(path, out, sha)


def _classifier_parts(registry: Any, train_set: list[LoadedEye], val_set: list, config: Any):
    extra = config.extra
    size = int(extra["input_size"])
    augment = augment_config(extra["augment"])
    jitter = bool(extra.get("box_jitter", True)) and augment is not None

    def crops_of(items: list[LoadedEye], rng: np.random.Generator | None) -> list[np.ndarray]:
        out = []
        for item in items:
            box = main_box(item.boxes, item.image.shape)
            if rng is not None and jitter:
                box = jitter_box(box, rng, item.image.shape)
            out.append(crop(item.image, box, size))
        return out

    def as_tensor(crops: list[np.ndarray], generator: torch.Generator | None) -> torch.Tensor:
        from eyescan.api import augment as core_augment

        x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255.0
        if generator is not None:
            x = torch.stack([core_augment.augment_image(i, augment, generator) for i in x])
        return normalise(x)

    def train_batches(epoch: int):
        on = augment is not None
        for chosen, rng, generator in epoch_batches(train_set, config, epoch):
            yield {
                "image": as_tensor(
                    crops_of(chosen, rng if on else None), generator if on else None
                ),
                "label": torch.tensor([c.label for c in chosen]),
            }

    val_x = as_tensor(crops_of(val_set, None), None) if val_set else None
    val_y = torch.tensor([v.label for v in val_set])

    def val_batches():
        for start in range(0, len(val_set), 64):
            yield {"image": val_x[start : start + 64], "label": val_y[start : start + 64]}

    def validate(model: torch.nn.Module) -> dict[str, float]:
        from eyescan.api import metrics

        probs = torch.cat([torch.softmax(model(b["image"]), 1)[:, 1] for b in val_batches()])
        m = metrics.binary_metrics(val_y.numpy() == 1, probs.numpy(), threshold=THRESHOLD)
        return {"accuracy": m["accuracy"], "auc": m["auc_roc"]}

    loss_name = extra.get("loss", "strabismus-ce")
    losses = [engine.WeightedLoss(loss_name, registry.loss(loss_name))]
    return (train_batches, val_batches), None, losses, validate


def _detector_batch(
    items: list[LoadedEye], augment: Any, rng: np.random.Generator | None, generator: Any
) -> dict[str, Any]:
    """Images and targets; with ``augment``: horizontal flip (boxes follow) and photometric."""
    from eyescan.api import augment as core_augment

    images, targets = [], []
    for item in items:
        image = item.image
        boxes = np.asarray(item.boxes, dtype=np.float32).reshape(-1, 4)
        if augment is not None and augment.hflip and rng is not None and rng.random() < 0.5:
            image = image[:, ::-1]
            boxes = boxes.copy()
            boxes[:, [0, 2]] = image.shape[1] - boxes[:, [2, 0]]
        x = detector_tensor(image)
        if augment is not None and generator is not None:
            x = core_augment.photometric(x, augment, generator)
        images.append(x)
        targets.append(
            {"boxes": torch.from_numpy(boxes), "labels": torch.ones(len(boxes), dtype=torch.int64)}
        )
    return {"images": images, "targets": targets}


def detector_forward(model: torch.nn.Module, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Faster R-CNN's losses; in eval mode (validation) with the backbone's batch norm frozen.

    torchvision returns losses only in training mode, so for validation the
    detection heads are switched to training mode and the backbone is not.
    """
    if model.training:
        return model(batch["images"], batch["targets"])
    heads = (model, model.rpn, model.roi_heads, model.transform)
    for part in heads:
        part.training = True
    try:
        return model(batch["images"], batch["targets"])
    finally:
        for part in heads:
            part.training = False


def _detector_parts(train_set: list[LoadedEye], val_set: list[LoadedEye], config: Any):
    augment = augment_config(config.extra["augment"])

    def train_batches(epoch: int):
        for chosen, rng, generator in epoch_batches(train_set, config, epoch):
            yield _detector_batch(chosen, augment, rng, generator)

    def val_batches():
        for start in range(0, len(val_set), 16):
            yield _detector_batch(val_set[start : start + 16], None, None, None)

    def validate(model: torch.nn.Module) -> dict[str, float]:
        return {"ap50": detector_ap(model, val_set)["ap50"]}

    losses = [engine.WeightedLoss(name, detector_component(name)) for name in DETECTOR_LOSSES]
    return (train_batches, val_batches), detector_forward, losses, validate
