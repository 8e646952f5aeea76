"""Training and evaluation of DR graders, lesion detectors and the two together.

``--model grader`` (or another grader) trains the classifier, ``--model detector``
the Faster R-CNN, ``--model screen`` both (into ``OUT/grader`` and
``OUT/detector``; or takes trained ones) and then joins them into
``OUT/screen.safetensors``.
Recipes (``--config``): grader and detector keys below; for ``screen`` the
sections ``"grader": {...}`` and ``"detector": {...}`` override the shared keys.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from eyescan.api import (
    DataError,
    WeightsError,
    augment,
    find_reader,
    fundus,
    get_registry,
    imageio,
    training,
    weights,
)
from eyescan_drgrade import models
from eyescan_drgrade.data import DrSample, square_fundus
from eyescan_drgrade.lesions import LESION_CLASSES, canonical_label, label_index
from eyescan_drgrade.scoring import detection_metrics, grade_metrics
from eyescan_drgrade.task import (
    image_tensor,
    normalise,
    predict_items,
    predict_settings,
    run_detector,
)

#: Grader recipe: the seed's augmentation (rotation 180°, flips) plus colour jitter.
GRADER_RECIPE: dict[str, Any] = {
    "epochs": 30,
    "batch_size": 16,
    "optimizer": "adamw",
    "lr": 1e-3,
    "weight_decay": 1e-4,
    "scheduler": "cosine",
    "val_fraction": 0.15,
    "pretrained": "auto",
    "sampler": "shuffle",
    "bn_recalibration": 20,
    "augment": {
        "rotation": 180.0,
        "hflip": True,
        "vflip": True,
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
    "pretrained": "auto",
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
EVAL_BATCH = 16


def recipe(defaults: dict[str, Any], options: dict[str, Any], section: str | None) -> dict:
    """Defaults, then the shared ``--config`` keys, then its ``section``, then CLI flags."""
    config = dict(options.get("config") or {})
    specific = config.pop(section, {}) if section else {}
    config.pop("grader", None), config.pop("detector", None)
    merged = {**defaults, **config, **specific}
    for key in ("epochs", "batch_size"):
        if options.get(key) is not None:
            merged[key] = options[key]
    return merged


def train(task: Any, data: Path, options: dict[str, Any]) -> dict[str, Any]:
    registry = get_registry()
    reader_name, reader = find_reader(registry, "drgrade", data, options.get("reader"))
    model_name = options.get("model") or task.default_model
    factory = registry.model("drgrade", model_name).factory
    samples = reader.read(data, "train")
    out = Path(options["out"])
    context = {"data": str(data), "reader": reader_name, "command": options.get("command", "")}
    module = factory(**(options.get("config") or {}).get("model_options", {}))
    if isinstance(module, models.DRScreen):
        return train_screen(samples, options, out, context)
    part = "grader" if isinstance(module, models.GradeNet) else "detector"
    defaults = GRADER_RECIPE if part == "grader" else DETECTOR_RECIPE
    run = train_grader if part == "grader" else train_detector
    return run(model_name, samples, recipe(defaults, options, None), options, out, context)


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
        card = weights.read_card(path)
        if (card.get("task"), card.get("model")) != ("drgrade", part):
            raise WeightsError(
                f"{path}: a screen needs a drgrade {part}, not "
                f"{card.get('task')}/{card.get('model')}"
            )
        states[part] = weights.load_state_dict(path, card["sha256"])
        screen_options[part] = card.get("model_options", {})
        cards[part] = {"weights": str(path), "sha256": card["sha256"], **card["training"]}
    module = models.DRScreen(**screen_options)
    weights.load_into(module.grader, states["grader"], cards["grader"]["weights"])
    weights.load_into(module.detector, states["detector"], cards["detector"]["weights"])
    path = out / "screen.safetensors"
    weights.save_weights(
        module,
        path,
        {
            "task": "drgrade",
            "model": "screen",
            "model_options": screen_options,
            "training": {**context, **cards},
        },
    )
    return {"weights": str(path), **summary}


def use_imagenet(target: nn.Module, backbone: str, choice: Any, prefix: str, rename: str) -> str:
    """Start from ImageNet weights when asked and on disk; says what was done (model card).

    ``choice``: ``"auto"`` (torch's cache file if present), ``"none"``, or a file path.
    """
    if choice in (None, False, "none"):
        return "none"
    path = models.imagenet_file(backbone) if choice in ("auto", "imagenet") else Path(choice)
    if not path.is_file():
        if choice == "auto":
            return f"none (no ImageNet file at {path})"
        raise WeightsError(f"{path}: ImageNet weights not found (nothing is downloaded)")
    count = models.load_imagenet(target, path, prefix, rename)
    return f"{path} ({count} tensors)"


def hold_out(samples: list[Any], fraction: float, seed: int, key=None) -> tuple[list, list]:
    """Split off a validation part (stratified by ``key`` when given), deterministically."""
    rng = np.random.default_rng(seed)
    groups: dict[Any, list[int]] = {}
    for i, sample in enumerate(samples):
        groups.setdefault(key(sample) if key else 0, []).append(i)
    val: list[int] = []
    for indices in groups.values():
        n = int(round(len(indices) * fraction)) if len(indices) > 1 else 0
        val += list(rng.permutation(indices)[:n])
    chosen = set(val)
    return [s for i, s in enumerate(samples) if i not in chosen], [samples[i] for i in sorted(val)]


def square_image(sample: DrSample, size: int) -> tuple[np.ndarray, Any]:
    """The sample's FOV-cropped square view resized to ``size`` (uint8) and its frame."""
    square, frame = square_fundus(imageio.read_image(sample.image))
    return fundus.resize(square, size), frame


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
    loss: Any,
    batches: tuple[Any, Any, Any],
    card: dict[str, Any],
    options: dict[str, Any],
    out: Path,
    forward: Any = None,
) -> dict[str, Any]:
    """Run :func:`eyescan.engine.training.fit` (``batches``: train, validation, validate;
    the last two None without a validation set) and summarise it."""
    train_batches, val_batches, validate = batches
    result = training.fit(
        module,
        train_batches,
        val_batches,
        [loss],
        config,
        out,
        {
            "task": "drgrade",
            "model": card.pop("model"),
            "model_options": config.extra["model_options"],
            "training": card,
        },
        forward=forward,
        validate=validate,
        on_event=options.get("on_event"),
        resume=bool(options.get("resume")),
    )
    return {
        "weights": str(result.best_weights),
        "best_epoch": result.best_epoch,
        "best_val_loss": result.best_val_loss,
        "epochs_run": result.epochs_run,
    }


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


def augment_views(
    images: torch.Tensor, config: augment.AugmentConfig, generator: torch.Generator
) -> torch.Tensor:
    """Seed-like augmentation of square fundus views (N×3×S×S in [0, 1]): rotation
    about the centre (black fill), flips, then brightness/contrast/saturation jitter
    and noise."""
    out = []
    for image in images:
        if config.rotation:
            angle = float(
                torch.empty(()).uniform_(-config.rotation, config.rotation, generator=generator)
            )
            image = TF.rotate(image, angle, interpolation=InterpolationMode.BILINEAR, fill=0.0)
        flips = torch.rand(2, generator=generator)
        if config.hflip and flips[0] < 0.5:
            image = image.flip(-1)
        if config.vflip and flips[1] < 0.5:
            image = image.flip(-2)
        out.append(augment.photometric(image, config, generator))
    return torch.stack(out)


def train_grader(
    model_name: str,
    samples: list[DrSample],
    recipe_: dict[str, Any],
    options: dict[str, Any],
    out: Path,
    context: dict[str, Any],
) -> dict[str, Any]:
    registry, config, module = _setup(model_name, recipe_, models.GradeNet, "grader")
    extra = config.extra
    graded = [s for s in samples if s.label is not None]
    if not graded:
        raise DataError(f"{context['data']}: no grades in the training data")
    train_set, val_set = hold_out(
        graded, float(extra["val_fraction"]), config.seed, lambda s: s.label
    )
    size = module.image_size
    images = torch.from_numpy(np.stack([square_image(s, size)[0] for s in train_set]))
    images = images.permute(0, 3, 1, 2).contiguous()  # uint8 N×3×S×S
    grades = torch.tensor([s.label for s in train_set], dtype=torch.long)
    val_x = (
        normalise(torch.stack([image_tensor(square_image(s, size)[0], size) for s in val_set]))
        if val_set
        else None
    )
    val_y = torch.tensor([s.label for s in val_set], dtype=torch.long)
    start = use_imagenet(module.net, module.backbone, extra.get("pretrained"), "", "")
    augmentation = augment.AugmentConfig(**extra.get("augment", {}))
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
            views = augment_views(images[index].float() / 255.0, augmentation, generator)
            yield {"image": normalise(views), "grade": grades[index]}
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
            }

    def validate(model: nn.Module) -> dict[str, float]:
        logits = torch.cat([model(b["image"]) for b in val_batches()])
        m = grade_metrics(val_y.numpy(), model.grades(logits).numpy())
        shown = {"kappa": m["kappa"], "accuracy": m["accuracy"]}
        return {k: v for k, v in shown.items() if math.isfinite(v)}

    loss_name = extra.get("loss") or (
        "drgrade-ordinal" if module.head == "ordinal" else "drgrade-ce"
    )
    return _fit(
        module,
        config,
        training.WeightedLoss(loss_name, registry.loss(loss_name)),
        (train_batches, *((val_batches, validate) if val_set else (None, None))),
        {
            "model": model_name,
            **context,
            "train_images": len(train_set),
            "val_images": len(val_set),
            "initialisation": start,
        },
        options,
        out,
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
    registry, config, module = _setup(model_name, recipe_, models.FasterRCNN, "lesion detector")
    extra = config.extra
    annotated = [s for s in samples if getattr(s, "boxes", None) is not None]
    if not annotated:
        raise DataError(f"{context['data']}: no lesion boxes in the training data")
    train_set, val_set = hold_out(annotated, float(extra["val_fraction"]), config.seed)
    size = module.image_size
    ignore = bool(extra.get("ignore_unknown_labels"))

    def prepare(sample: DrSample) -> tuple[torch.Tensor, dict]:
        image, frame = square_image(sample, size)
        tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        return tensor, detection_target(sample, frame, size, ignore)

    train_items = [prepare(s) for s in train_set]
    val_items = [prepare(s) for s in val_set]
    trunk = getattr(module, "trunk", "mobilenet_v3_small")
    start = use_imagenet(module.backbone.body, trunk, extra.get("pretrained"), "features.", "")
    augmentation = augment.AugmentConfig(**extra.get("augment", {}))
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
        training.WeightedLoss("drgrade-detector", registry.loss("drgrade-detector")),
        (train_batches, *((val_batches, validate) if val_items else (None, None))),
        {
            "model": model_name,
            **context,
            "train_images": len(train_items),
            "val_images": len(val_items),
            "initialisation": start,
        },
        options,
        out,
        forward=detector_forward,
    )


# -- evaluation ---------------------------------------------------------------


def _prefixed(prefix: str, values: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {f"{prefix}{k}": values[k] for k in keys if k in values}


def evaluate(model: Any, data: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Grading metrics (classifier, lesion-based, combined) and detection metrics."""
    registry = get_registry()
    reader_name, reader = find_reader(registry, "drgrade", data, options.get("reader"))
    split = options.get("split") or "test"
    samples = reader.read(data, split)
    module = model.module
    grader, detector = models.parts(module)
    settings = predict_settings(module)
    per_image, predictions, truths = [], [], []
    rows: dict[str, list] = {"truth": [], "classifier": [], "lesions": [], "final": [], "p": []}
    for begin in range(0, len(samples), EVAL_BATCH):
        chunk = samples[begin : begin + EVAL_BATCH]
        items = []
        for sample in chunk:
            original = imageio.read_image(sample.image)
            square, frame = square_fundus(original)
            items.append({"square": square, "frame": frame, "original": original})
        for sample, prediction in zip(chunk, predict_items(module, items)):
            values = prediction.values
            record = {"id": sample.id, "input": str(sample.image), "grade_true": sample.label}
            record.update({k: v for k, v in values.items() if not isinstance(v, (dict, list))})
            if sample.label is not None:
                rows["truth"].append(sample.label)
                rows["final"].append(values["grade"])
                rows["classifier"].append(values.get("grade_classifier"))
                rows["lesions"].append(values.get("grade_lesions"))
                rows["p"].append(values.get("referable_probability"))
            if detector is not None and getattr(sample, "boxes", None) is not None:
                predictions.append(prediction.arrays["detections"])
                names = [canonical_label(n) for n in sample.boxes.labels]
                truths.append(
                    {
                        "boxes": np.asarray(
                            [b for b, n in zip(sample.boxes.boxes, names) if n], float
                        ).reshape(-1, 4),
                        "labels": [n for n in names if n],
                    }
                )
                record["lesions_true"] = len(truths[-1]["labels"])
                record["lesions_found"] = len(values["lesions"])
            per_image.append(record)
        if options.get("on_event"):
            options["on_event"]({"event": "images", "done": begin + len(chunk)})
    summary: dict[str, Any] = {
        "data": str(data),
        "reader": reader_name,
        "split": split,
        "images": len(samples),
        "graded_images": len(rows["truth"]),
        "annotated_images": len(truths),
    }
    keys = ("kappa", "accuracy", "referable_sensitivity", "referable_specificity")
    if rows["truth"] and grader is not None:
        summary.update(grade_metrics(rows["truth"], rows["classifier"], rows["p"]))
        summary.pop("n")
    if rows["truth"] and detector is not None:
        lesion = grade_metrics(rows["truth"], rows["lesions"])
        summary.update(_prefixed("lesion_grade_", lesion, keys))
        summary["lesion_grade_confusion_matrix"] = lesion["confusion_matrix"]
    if rows["truth"] and grader is not None and detector is not None:
        summary["combine"] = settings["combine"]
        summary.update(_prefixed("combined_", grade_metrics(rows["truth"], rows["final"]), keys))
    if truths:
        found = detection_metrics(predictions, truths, detector.score_threshold)
        found["detection_precision"] = found.pop("precision")
        found["detection_recall"] = found.pop("recall")
        summary.update(found)
    if not rows["truth"] and not truths:
        raise DataError(
            f"{data}: nothing to score in split {split!r} (a grader needs grades, "
            "a detector lesion boxes)"
        )
    if options.get("update_card") and model.weights is not None:
        weights.update_card(model.weights, metrics=summary)
    return {"summary": summary, "images": per_image}
