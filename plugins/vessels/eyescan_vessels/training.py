"""Training of vessel models: random FOV-centred patches, validation on held-out images."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eyescan.api import augment, get_registry, init, metrics, recipes, splits, training
from eyescan_vessels.data import LoadedSample, load_sample, load_with_variants, read_data
from eyescan_vessels.inference import THRESHOLD, normalise, probability_map

#: The seed's recipe (BCE, SGD lr 0.001, batch 4, 40 epochs). Override with --config.
#: ``val_ids`` (image ids) fixes the validation images; otherwise ``val_images`` of the
#: training images are held out by ``api.splits.hold_out`` (seeded). The optional key
#: ``fov_diameter`` (pixels; not a default, so older recipes hash as before) trains at
#: that scale: every photo is resampled to it and the card gets ``model_scale`` (scale.py).
#: The optional ``photo_variants`` (``api.augment.PhotoVariants``) adds degraded copies of
#: each training photo (JPEG, lower resolution, blur) made before preprocessing.
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
    "val_ids": None,
    "init": "none",
    "model_options": {},
    # the spec's augmentation: rotation, flips, diagonal flip, colour jitter, noise
    "augment": {
        "rotation": 180.0,
        "hflip": True,
        "vflip": True,
        "transpose": True,
        "brightness": 0.2,
        "contrast": 0.2,
        "saturation": 0.2,
        "noise_std": 0.02,
    },
}


def _tensors(sample: LoadedSample) -> tuple[torch.Tensor, torch.Tensor]:
    image = torch.from_numpy(sample.image.transpose(2, 0, 1).copy())
    masks = torch.from_numpy(np.stack([sample.vessels, sample.fov]).astype(np.float32))
    return image, masks


def validation_split(samples: list, extra: dict[str, Any], seed: int) -> tuple[list, list]:
    """``(train, val)`` of the training samples: those the data set marks ``val``;
    else the recipe's ``val_ids``; else ``val_images`` of them by the core's seeded
    hold-out (grouped by patient; none when there are too few)."""
    marked = [s for s in samples if s.split == "val"]
    if marked:
        return [s for s in samples if s.split != "val"], marked
    if extra.get("val_ids"):
        return splits.hold_out(samples, ids=list(extra["val_ids"]))
    count = int(extra.get("val_images") or 0)
    if len(samples) <= count:
        return list(samples), []
    return splits.hold_out(samples, seed=seed, count=count)


def train(task: Any, data: Path, options: dict[str, Any]) -> dict[str, Any]:
    registry = get_registry()
    recipe = recipes.merge_recipe(DEFAULT_RECIPE, options)
    config = training.TrainConfig.from_dict(recipe)
    extra = config.extra
    augmentation = augment.AugmentConfig.from_dict(extra.get("augment"))
    model_name = options.get("model") or task.default_model
    module = registry.model("vessels", model_name).factory(**extra["model_options"])
    initialised = init.initialise(module, extra.get("init"))

    chosen, threshold = read_data(registry, data, "train", options)
    train_samples, val_samples = validation_split(chosen.samples, extra, config.seed)
    diameter = extra.get("fov_diameter")  # None: every photo at its own size
    variants = augment.PhotoVariants.from_dict(extra.get("photo_variants"))
    train_set, train_tensors = [], []  # per photo: the photo's tensors, then its copies'
    for index, sample in enumerate(train_samples):
        make = partial(variants.make, seed=config.seed * 1009 + index) if variants.copies else None
        copies = load_with_variants(sample, threshold, diameter, make)
        train_set.append(copies[0])
        train_tensors.append([_tensors(c) for c in copies])
    val_set = [load_sample(s, threshold, diameter) for s in val_samples]
    patch, per_epoch = int(extra["patch_size"]), int(extra["patches_per_epoch"])

    def train_batches(epoch: int):
        generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        for _ in range(max(1, per_epoch // config.batch_size)):
            images, targets, fovs = [], [], []
            for _ in range(config.batch_size):
                index = int(torch.randint(len(train_tensors), (1,), generator=generator))
                copies = train_tensors[index]
                pick = 0
                if len(copies) > 1 and float(torch.rand((), generator=generator)) < variants.p:
                    pick = 1 + int(torch.randint(len(copies) - 1, (1,), generator=generator))
                image, masks = copies[pick]
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
        "init": initialised,
        "training": {
            "data": chosen.info,
            "source": str(data),
            "reader": chosen.reader,
            "train_images": len(train_set),
            "val_images": [s.id for s in val_set],
            "command": options.get("command", ""),
        },
    }
    if diameter:
        card["model_scale"] = {"fov_diameter": float(diameter)}
    result = training.fit(
        module,
        train_batches,
        val_batches if val_set else None,
        losses,
        config,
        Path(options["out"]),
        card,
        validate=validate if val_set else None,
        options=options,
    )
    return {**result.summary(), "data": chosen.info, "val_images": card["training"]["val_images"]}
