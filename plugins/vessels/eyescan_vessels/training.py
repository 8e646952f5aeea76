"""Training and evaluation of vessel models (patch-based training on the CPU)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from eyescan.api import DataError, augment, find_reader, get_registry, metrics, training, weights
from eyescan_vessels.data import LoadedSample, load_sample
from eyescan_vessels.task import THRESHOLD, normalise, probability_map

#: The seed's recipe (BCE, SGD lr 0.001, batch 4, 40 epochs). Override with --config.
DEFAULT_RECIPE: dict[str, Any] = {
    "epochs": 40,
    "batch_size": 4,
    "optimizer": "sgd",
    "lr": 1e-3,
    "momentum": 0.9,
    "loss": "vessels-bce",
    "patch_size": 128,
    "patches_per_epoch": 1000,
    "val_images": 3,
    "model_options": {},
}


def _tensors(sample: LoadedSample) -> tuple[torch.Tensor, torch.Tensor]:
    image = torch.from_numpy(sample.image.transpose(2, 0, 1).copy())
    masks = torch.from_numpy(np.stack([sample.vessels, sample.fov]).astype(np.float32))
    return image, masks


def train(task: Any, data: Path, options: dict[str, Any]) -> dict[str, Any]:
    registry = get_registry()
    reader_name, reader = find_reader(registry, "vessels", data, options.get("reader"))
    recipe = {**DEFAULT_RECIPE, **(options.get("config") or {})}
    for key in ("epochs", "batch_size"):
        if options.get(key) is not None:
            recipe[key] = options[key]
    config = training.TrainConfig.from_dict(recipe)
    extra = config.extra
    model_name = options.get("model") or task.default_model
    module = registry.model("vessels", model_name).factory(**extra["model_options"])

    loaded = [load_sample(s) for s in reader.read(data, "train")]
    n_val = int(extra["val_images"]) if len(loaded) > int(extra["val_images"]) else 0
    train_set, val_set = loaded[: len(loaded) - n_val], loaded[len(loaded) - n_val :]
    train_tensors = [_tensors(s) for s in train_set]
    augmentation = augment.AugmentConfig(**extra.get("augment", {}))
    patch, per_epoch = int(extra["patch_size"]), int(extra["patches_per_epoch"])

    def train_batches(epoch: int):
        generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        for _ in range(max(1, per_epoch // config.batch_size)):
            images, targets, fovs = [], [], []
            for _ in range(config.batch_size):
                index = int(torch.randint(len(train_tensors), (1,), generator=generator))
                image, masks = train_tensors[index]
                img, msk = augment.augment_patch(
                    image, masks, patch, augmentation, generator, masks[1] > 0
                )
                images.append(normalise(img))
                targets.append(msk[0:1])
                fovs.append(msk[1:2])
            yield {
                "image": torch.stack(images),
                "target": torch.stack(targets),
                "fov": torch.stack(fovs),
            }

    stride = getattr(module, "stride", 16)

    def val_batches():
        for sample in val_set:
            image, masks = _tensors(sample)
            h, w = image.shape[-2:]
            ph, pw = (-h) % stride, (-w) % stride
            pad = torch.nn.functional.pad
            yield {
                "image": pad(normalise(image), (0, pw, 0, ph))[None],
                "target": pad(masks[0:1], (0, pw, 0, ph))[None],
                "fov": pad(masks[1:2], (0, pw, 0, ph))[None],
            }

    def validate(model: torch.nn.Module) -> dict[str, float]:
        probs = [probability_map(model, s.image) for s in val_set]
        truth = np.concatenate([s.vessels[s.fov] for s in val_set])
        score = np.concatenate([p[s.fov] for p, s in zip(probs, val_set)])
        m = metrics.binary_metrics(truth, score, threshold=THRESHOLD)
        return {"auc_roc": m["auc_roc"], "f1": m["f1"]}

    loss_name = extra.get("loss", "vessels-bce")
    losses = [training.WeightedLoss(loss_name, registry.loss(loss_name))]
    card = {
        "task": "vessels",
        "model": model_name,
        "model_options": extra["model_options"],
        "training": {
            "data": str(data),
            "reader": reader_name,
            "train_images": len(train_set),
            "val_images": [s.id for s in val_set],
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
        validate=validate if val_set else None,
        on_event=options.get("on_event"),
        resume=bool(options.get("resume")),
    )
    summary: dict[str, Any] = {
        "weights": str(result.best_weights),
        "best_epoch": result.best_epoch,
        "best_val_loss": result.best_val_loss,
        "epochs_run": result.epochs_run,
    }
    return summary


def evaluate(model: Any, data: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Metrics on the test split inside the FOV: per image and pooled over all pixels."""
    registry = get_registry()
    reader_name, reader = find_reader(registry, "vessels", data, options.get("reader"))
    samples = reader.read(data, options.get("split") or "test")
    per_image, truths, scores = [], [], []
    for sample in samples:
        loaded = load_sample(sample)
        prob = probability_map(model.module, loaded.image)
        if prob.shape != loaded.vessels.shape:
            raise DataError(f"{sample.image}: prediction size {prob.shape} != mask size")
        m = metrics.binary_metrics(loaded.vessels, prob, mask=loaded.fov, threshold=THRESHOLD)
        per_image.append({"id": sample.id, "input": str(sample.image), **m})
        truths.append(loaded.vessels[loaded.fov])
        scores.append(prob[loaded.fov])
        if options.get("on_event"):
            options["on_event"]({"event": "image", "id": sample.id})
    pooled = metrics.binary_metrics(
        np.concatenate(truths), np.concatenate(scores), threshold=THRESHOLD
    )
    summary = {
        "data": str(data),
        "reader": reader_name,
        "split": options.get("split") or "test",
        "images": len(samples),
        "region": "inside FOV",
        "pooled": "all FOV pixels",
        **pooled,
    }
    if options.get("update_card") and model.weights is not None:
        weights.update_card(model.weights, metrics=summary)
    curves = pooled_curves(np.concatenate(truths), np.concatenate(scores), pooled)
    return {"summary": summary, "images": per_image, "curves": curves}


def pooled_curves(
    truth: np.ndarray, score: np.ndarray, pooled: dict[str, float], pixels: int = 200_000
) -> dict[str, Any]:
    """ROC/PR points of the pooled FOV pixels for ``--plots``.

    The points come from a fixed random subsample; the areas are the exact pooled ones.
    """
    from eyescan.api import plots

    if truth.size > pixels:
        keep = np.random.default_rng(0).choice(truth.size, pixels, replace=False)
        truth, score = truth[keep], score[keep]
    curves = plots.binary_curves(truth, score)
    for kind, key in (("roc", "auc_roc"), ("pr", "auc_pr")):
        if kind in curves:
            curves[kind]["auc"] = pooled[key]
    return {"label": "pooled FOV pixels", **curves}
