"""Training and evaluation of both stages: the eye-region detector and the classifiers.

``eyescan train strabismus DATA --model eye-detector`` trains the detector on
the boxes; ``--model rfcnn-lite`` (default) or ``--model rfcnn-cnn`` trains a
classifier on crops of the annotated eye region (the whole image when a data
set has no boxes). Both go through the core's :func:`eyescan.engine.training.fit`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eyescan.api import DataError, find_reader, get_registry, metrics, training, weights
from eyescan_strabismus.data import (
    Box,
    LoadedEye,
    classifier_tensor,
    crop,
    detector_tensor,
    load_sample,
    main_box,
)
from eyescan_strabismus.losses import DETECTOR_LOSSES, detector_component
from eyescan_strabismus.models import CLASSES
from eyescan_strabismus.task import (
    DETECTOR,
    FOUND_SCORE,
    THRESHOLD,
    best_detection,
    classify,
    detect,
)

#: Classifier recipe (override any key with --config). ``input_size`` is the crop side.
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
    "augment": True,
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
    "augment": True,
    "model_options": {},
}

BOX_LABEL = "eye region"


def _recipe(defaults: dict[str, Any], options: dict[str, Any]) -> training.TrainConfig:
    recipe = {**defaults, **(options.get("config") or {})}
    for key in ("epochs", "batch_size"):
        if options.get(key) is not None:
            recipe[key] = options[key]
    return training.TrainConfig.from_dict(recipe)


def _split(items: list[LoadedEye], fraction: float, seed: int) -> tuple[list, list]:
    """Deterministic train/validation split (no validation set under 5 items)."""
    order = np.random.default_rng(seed).permutation(len(items))
    n_val = int(round(fraction * len(items))) if len(items) >= 5 else 0
    val = [items[i] for i in order[:n_val]]
    return [items[i] for i in order[n_val:]], val


def photometric(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness, contrast and colour jitter of a uint8 image."""
    x = image.astype(np.float32)
    mean = x.mean()
    x = (x - mean) * rng.uniform(0.75, 1.3) + mean * rng.uniform(0.7, 1.3)
    x = x * rng.uniform(0.92, 1.08, 3)
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)


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
    random generator for augmentation; reproducible from the seed and the epoch."""
    rng = np.random.default_rng(config.seed * 100_003 + epoch)
    order = rng.permutation(len(items))
    step = config.batch_size
    for start in range(0, max(1, len(order) - step + 1), step):
        yield [items[i] for i in order[start : start + step]], rng


def _load(samples: list, keep) -> list[LoadedEye]:
    return [load_sample(s) for s in samples if keep(s)]


def train(task: Any, data: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Train the model named by ``options["model"]`` (a classifier by default)."""
    registry = get_registry()
    reader_name, reader = find_reader(registry, "strabismus", data, options.get("reader"))
    model_name = options.get("model") or task.default_model
    registry.model("strabismus", model_name)  # clear error for an unknown name
    is_detector = model_name == DETECTOR
    config = _recipe(DETECTOR_RECIPE if is_detector else CLASSIFIER_RECIPE, options)
    extra = config.extra
    samples = reader.read(data, "train")
    if is_detector:
        items = _load(samples, lambda s: getattr(s, "boxes", None) is not None)
        if not items:
            raise DataError(
                f"{data}: no eye-region boxes (annotations/*.xml or boxes.csv) to train on"
            )
    else:
        items = _load(samples, lambda s: s.label is not None)
        if len({i.label for i in items}) < 2:
            raise DataError(f"{data}: the classifier needs labelled images of both classes")
    train_set, val_set = _split(items, float(extra["val_fraction"]), config.seed)
    module = registry.model("strabismus", model_name).factory(**extra["model_options"])
    if not is_detector:  # crops arrive channels-last; ~25 % faster convolutions on the CPU
        module = module.to(memory_format=torch.channels_last)
    card: dict[str, Any] = {
        "task": "strabismus",
        "model": model_name,
        "model_options": extra["model_options"],
        "classes": list(CLASSES) if not is_detector else ["background", BOX_LABEL],
        "training": {
            "data": str(data),
            "reader": reader_name,
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
            card["detector"] = _relative(Path(extra["detector"]), Path(options["out"]))
        batches, forward, losses, validate = _classifier_parts(registry, train_set, val_set, config)
    train_batches, val_batches = batches
    result = training.fit(
        module,
        train_batches,
        val_batches if val_set else None,
        losses,
        config,
        Path(options["out"]),
        card,
        forward=forward,
        validate=validate if val_set else None,
        on_event=options.get("on_event"),
        resume=bool(options.get("resume")),
    )
    best = next((h for h in result.history if h["epoch"] == result.best_epoch), {})
    return {
        "weights": str(result.best_weights),
        "model": model_name,
        "best_epoch": result.best_epoch,
        "best_val_loss": result.best_val_loss,
        "epochs_run": result.epochs_run,
        **{k: v for k, v in best.items() if k.startswith("val_")},
    }


def _relative(path: Path, folder: Path) -> str:
    import os

    return os.path.relpath(path.resolve(), folder.resolve())


def _classifier_parts(registry: Any, train_set: list[LoadedEye], val_set: list, config: Any):
    extra = config.extra
    size, augment = int(extra["input_size"]), bool(extra["augment"])

    def crops_of(items: list[LoadedEye], rng: np.random.Generator | None) -> list[np.ndarray]:
        out = []
        for item in items:
            box = main_box(item.boxes, item.image.shape)
            if rng is not None:
                box = jitter_box(box, rng, item.image.shape)
            patch = crop(item.image, box, size)
            if rng is not None:
                patch = photometric(patch[:, ::-1] if rng.random() < 0.5 else patch, rng)
            out.append(patch)
        return out

    def train_batches(epoch: int):
        for chosen, rng in epoch_batches(train_set, config, epoch):
            yield {
                "image": classifier_tensor(crops_of(chosen, rng if augment else None)),
                "label": torch.tensor([c.label for c in chosen]),
            }

    val_x = classifier_tensor(crops_of(val_set, None)) if val_set else None
    val_y = torch.tensor([v.label for v in val_set])

    def val_batches():
        for start in range(0, len(val_set), 64):
            yield {"image": val_x[start : start + 64], "label": val_y[start : start + 64]}

    def validate(model: torch.nn.Module) -> dict[str, float]:
        probs = torch.cat([torch.softmax(model(b["image"]), 1)[:, 1] for b in val_batches()])
        m = metrics.binary_metrics(val_y.numpy() == 1, probs.numpy(), threshold=THRESHOLD)
        return {"accuracy": m["accuracy"], "auc": m["auc_roc"]}

    loss_name = extra.get("loss", "strabismus-ce")
    losses = [training.WeightedLoss(loss_name, registry.loss(loss_name))]
    return (train_batches, val_batches), None, losses, validate


def _detector_batch(items: list[LoadedEye], rng: np.random.Generator | None) -> dict[str, Any]:
    images, targets = [], []
    for item in items:
        image = item.image
        boxes = np.asarray(item.boxes, dtype=np.float32).reshape(-1, 4)
        if rng is not None:
            if rng.random() < 0.5:
                image = image[:, ::-1]
                boxes = boxes.copy()
                boxes[:, [0, 2]] = image.shape[1] - boxes[:, [2, 0]]
            image = photometric(image, rng)
        images.append(detector_tensor(image))
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
    augment = bool(config.extra["augment"])

    def train_batches(epoch: int):
        for chosen, rng in epoch_batches(train_set, config, epoch):
            yield _detector_batch(chosen, rng if augment else None)

    def val_batches():
        for start in range(0, len(val_set), 16):
            yield _detector_batch(val_set[start : start + 16], None)

    def validate(model: torch.nn.Module) -> dict[str, float]:
        result = detector_ap(model, val_set)
        return {"ap50": result["ap50"]}

    losses = [training.WeightedLoss(name, detector_component(name)) for name in DETECTOR_LOSSES]
    return (train_batches, val_batches), detector_forward, losses, validate


def detector_ap(detector: torch.nn.Module, items: list[LoadedEye]) -> dict[str, Any]:
    """AP@0.5 of the detector on annotated images, and its best box per image."""
    predictions, truths, best = [], [], []
    for start in range(0, len(items), 16):
        chunk = items[start : start + 16]
        for item, det in zip(chunk, detect(detector, [i.image for i in chunk])):
            predictions.append(
                {
                    "boxes": det["boxes"],
                    "labels": [BOX_LABEL] * len(det["boxes"]),
                    "scores": det["scores"],
                }
            )
            truths.append(
                {
                    "boxes": np.asarray(item.boxes).reshape(-1, 4),
                    "labels": [BOX_LABEL] * len(item.boxes),
                }
            )
            best.append(best_detection(det))
    ap = metrics.detection_ap(predictions, truths, iou_threshold=0.5)
    value = ap["per_class"].get(BOX_LABEL, {}).get("ap", float("nan"))
    return {"ap50": value, "detail": ap, "best": best, "truths": truths}


def evaluate(task: Any, model: Any, data: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Detector: AP@0.5; classifier: TP/TN/FP/FN, Se, Sp, Acc, AUC (the seed's table)."""
    registry = get_registry()
    reader_name, reader = find_reader(registry, "strabismus", data, options.get("reader"))
    split = options.get("split") or "test"
    samples = reader.read(data, split)
    base = {"data": str(data), "reader": reader_name, "split": split}
    if model.name == DETECTOR:
        result = _evaluate_detector(model, samples, base)
    else:
        result = _evaluate_classifier(task, model, samples, base)
    if options.get("update_card") and model.weights is not None:
        weights.update_card(model.weights, metrics=result["summary"])
    return result


def _evaluate_detector(model: Any, samples: list, base: dict[str, Any]) -> dict[str, Any]:
    items = _load(samples, lambda s: getattr(s, "boxes", None) is not None)
    if not items:
        raise DataError(f"{base['data']}: no eye-region boxes to evaluate the detector on")
    started = time.perf_counter()
    result = detector_ap(model.module, items)
    seconds = time.perf_counter() - started
    rows, ious, hits, false_found = [], [], 0, 0
    for item, (box, score), truth in zip(items, result["best"], result["truths"]):
        found = box is not None and score >= FOUND_SCORE
        iou = (
            float(metrics.box_iou(box, truth["boxes"]).max())
            if found and len(truth["boxes"])
            else 0.0
        )
        if len(truth["boxes"]):
            ious.append(iou)
            hits += found and iou >= 0.5
        else:
            false_found += found
        rows.append(
            {
                "id": item.id,
                "truths": len(truth["boxes"]),
                "score": score,
                "iou": iou,
                "found": found,
            }
        )
    with_eyes = sum(1 for t in result["truths"] if len(t["boxes"]))
    detail = result["detail"]["per_class"].get(BOX_LABEL, {})
    summary = {
        **base,
        "images": len(items),
        "images_with_eye_region": with_eyes,
        "ap50": result["ap50"],
        "best_box_found_iou50": hits / with_eyes if with_eyes else float("nan"),
        "mean_best_iou": float(np.mean(ious)) if ious else float("nan"),
        "false_regions_on_images_without_eyes": false_found,
        "precision_all_detections": detail.get("precision", float("nan")),
        "recall_all_detections": detail.get("recall", float("nan")),
        "found_score": FOUND_SCORE,
        "ms_per_image": 1000 * seconds / len(items),
    }
    return {"summary": summary, "images": rows}


def _evaluate_classifier(
    task: Any, model: Any, samples: list, base: dict[str, Any]
) -> dict[str, Any]:
    from eyescan_strabismus.task import input_size

    items = _load(samples, lambda s: s.label is not None)
    if not items:
        raise DataError(f"{base['data']}: no labelled images to evaluate the classifier on")
    size = input_size(model)
    module = model.module.eval()
    probs = []
    started = time.perf_counter()
    with torch.no_grad():
        for start in range(0, len(items), 32):
            chunk = items[start : start + 32]
            x = classifier_tensor(
                [crop(i.image, main_box(i.boxes, i.image.shape), size) for i in chunk]
            )
            probs.append(torch.softmax(module(x), 1)[:, 1].numpy())
    seconds = time.perf_counter() - started
    prob = np.concatenate(probs)
    truth = np.array([i.label for i in items]) == 1
    m = metrics.binary_metrics(truth, prob, threshold=THRESHOLD)
    summary: dict[str, Any] = {
        **base,
        "images": len(items),
        "crops": "annotated boxes" if any(i.boxes for i in items) else "whole images",
        "input_size": size,
        **{k: m[k] for k in ("tp", "tn", "fp", "fn")},
        "sensitivity": m["sensitivity"],
        "specificity": m["specificity"],
        "accuracy": m["accuracy"],
        "auc": m["auc_roc"],
        "precision": m["precision"],
        "f1": m["f1"],
        "threshold": THRESHOLD,
        "ms_per_image": 1000 * seconds / len(items),
    }
    rows = [
        {"id": i.id, "label": int(i.label), "strabismus_probability": float(p)}
        for i, p in zip(items, prob)
    ]
    summary.update(_pipeline_metrics(task, model, items, rows))
    return {"summary": summary, "images": rows}


def _pipeline_metrics(
    task: Any, model: Any, items: list[LoadedEye], rows: list[dict]
) -> dict[str, Any]:
    """Detector → crop → classifier on the same images, when a detector is available."""
    try:
        detector = task.detector_for(model)
    except Exception:  # no detector: the classifier's own metrics stand alone
        return {}
    probs, truth, missing = [], [], 0
    for start in range(0, len(items), 16):
        chunk = items[start : start + 16]
        images = [i.image for i in chunk]
        predictions = classify(model, images, detect(detector.module, images), detector.sha256)
        for item, row, prediction in zip(chunk, rows[start : start + 16], predictions):
            p = prediction.values["strabismus_probability"]
            row["pipeline_probability"] = p
            if p is None:
                missing += 1
                continue
            probs.append(p)
            truth.append(item.label == 1)
    out: dict[str, Any] = {
        "pipeline_no_eye_region": missing,
        "pipeline_detector": str(detector.weights),
    }
    if probs:
        m = metrics.binary_metrics(np.array(truth), np.array(probs), threshold=THRESHOLD)
        out.update({f"pipeline_{k}": m[k] for k in ("accuracy", "sensitivity", "specificity")})
        out["pipeline_auc"] = m["auc_roc"]
    return out
