"""Training of ROP classifiers: one model, the cascade, cross-validation.

``eyescan train rop DATA --config RECIPE`` does one of three things, chosen by
the recipe:

* one model (default): ``--model ms-rop|mn-rop`` at ``stage`` 1 or 2, plain
  cross-entropy, or distilled when ``teacher_weights`` names a trained
  teacher; ``init_weights`` starts from trained weights (stage 2 from stage 1);
* ``"cascade": true``: teacher and distilled student of both stages (stage-2
  teacher fine-tuned from the stage-1 teacher, stage-2 student initialised
  from the stage-1 student), with the stage-1 cards linked to stage 2 (file
  name and SHA-256);
* ``"folds": k``: k-fold cross-validation of teacher, student alone and
  distilled student for both stages, folds grouped by patient.

Only the ``train`` part of the data (the core's split rule) is used; the
validation images for early stopping are held out of it by patient.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eyescan.api import (
    DataError,
    WeightsError,
    augment,
    get_registry,
    models,
    recipes,
    splits,
    training,
)
from eyescan.api import init as initialisation
from eyescan.api import weights as weights_io
from eyescan_rop.cascade import STAGE_CLASSES, stage2_link
from eyescan_rop.data import (
    RopData,
    balance_by_rotation,
    grouped_folds,
    load_data,
    stage_targets,
    validation_split,
)
from eyescan_rop.evaluation import (
    ROW_NAMES,
    as_float,
    binary_scores,
    format_row,
    markdown_table,
    predict_positive,
    summarise,
)
from eyescan_rop.losses import make_cross_entropy, make_distillation
from eyescan_rop.models import init_specs

#: The seed's recipe (Adam 1e-4, weight decay 1e-4, up to 200 epochs with early
#: stopping on validation loss, 256² inputs, α = 0.95, T = 5); :data:`ROLE_DEFAULTS`
#: (batch 8 for the teacher, 16 for the student) override it for that role, and so
#: do a ``--config``'s sections ``teacher``/``student``. ``init``: the
#: local weights files a model starts from (``"none"``: from scratch; ImageNet
#: files are not shipped, so a recipe names them, see the README).
DEFAULT_RECIPE: dict[str, Any] = {
    "stage": 1,
    "image_size": 256,
    "optimizer": "adam",
    "lr": 1e-4,
    "weight_decay": 1e-4,
    "epochs": 200,
    "patience": 10,
    "seed": 0,
    "val_fraction": 0.2,
    "balance": True,
    "init": "none",
    "alpha": 0.95,
    "temperature": 5.0,
    #: The seed's online augmentation: flips, rotation ±30°, a mild affine, no colour.
    "augment": {
        "rotation": 30.0,
        "hflip": True,
        "vflip": True,
        "transpose": False,
        "translate": 0.05,
        "scale": [0.9, 1.1],
        "shear": 5.0,
        "brightness": 0.0,
        "contrast": 0.0,
        "saturation": 0.0,
        "noise_std": 0.0,
    },
    "teacher_model": "ms-rop",
    "student_model": "mn-rop",
    "model_options": {},
    "teacher_weights": None,
    "init_weights": None,
    "cascade": False,
    #: The stages a cascade trains: [1, 2], or [2] alone for data without normal images
    #: (ROP-DRAGON: every infant has ROP, the label is Treated / Not-Treated).
    "stages": [1, 2],
    "folds": 0,
}
ROLE_DEFAULTS: dict[str, dict[str, Any]] = {
    "teacher": {"batch_size": 8},
    "student": {"batch_size": 16},
}
ROLES = {"ms-rop": "teacher", "mn-rop": "student"}
SECTIONS = tuple(ROLE_DEFAULTS)


def recipe_of(options: dict[str, Any], role: str | None = None) -> dict[str, Any]:
    """The recipe of one role: defaults < ``--config`` < its role section < CLI flags.

    The role's defaults (:data:`ROLE_DEFAULTS`) come right after the defaults.
    """
    defaults = recipes.deep_merge(DEFAULT_RECIPE, ROLE_DEFAULTS.get(role or "", {}))
    recipe = recipes.merge_recipe(defaults, options, section=role, sections=SECTIONS)
    if recipe.pop("imagenet", None):
        raise WeightsError(
            "recipe 'imagenet' is gone: name the weights files with 'init' "
            '(e.g. [{"file": "resnet18-f37072fd.pth", "into": "resnet"}]; see the rop README)'
        )
    return recipe


def config_for(options: dict[str, Any], model_name: str) -> tuple[dict[str, Any], Any]:
    """The role's recipe (by model name) and its TrainConfig."""
    recipe = recipe_of(options, ROLES.get(model_name, "student"))
    return recipe, training.TrainConfig.from_dict(recipe)


def build_model(recipe: dict[str, Any], name: str) -> tuple[torch.nn.Module, dict[str, Any]]:
    options = dict((recipe.get("model_options") or {}).get(name, {}))
    return get_registry().model("rop", name).factory(**options), options


def load_trained(path: str | Path, expected_model: str | None = None) -> Any:
    """Trained rop weights (hash-checked) as a LoadedModel."""
    return models.load(get_registry(), "rop", expected_model, Path(path))


@dataclass
class FitSpec:
    """One model to fit: which, at which stage, from what, distilled from whom."""

    model: str
    stage: int
    out: Path
    teacher: Any | None = None  # LoadedModel or module
    init: Path | None = None  # trained rop weights to start from (stage 2 from stage 1)


def fit_one(
    spec: FitSpec,
    data: RopData,
    train_index: np.ndarray,
    val_index: np.ndarray,
    options: dict[str, Any],
) -> dict[str, Any]:
    """Train one model on ``data[train_index]`` (stage subset), validating on ``val_index``.

    The model starts from ``spec.init`` (trained rop weights) or else from the
    files its role's recipe names in ``init`` (recorded in the card).
    """
    recipe, config = config_for(options, spec.model)
    module, model_options = build_model(recipe, spec.model)
    if spec.init is not None:
        start = load_trained(spec.init, spec.model)
        weights_io.load_into(module, start.module.state_dict(), spec.init)
        init = [{"file": str(spec.init), "sha256": start.sha256, "into": "(whole model)"}]
    else:
        init = initialisation.initialise(module, init_specs(recipe.get("init")))
    train_sel, train_y = stage_targets(data.labels[train_index], spec.stage)
    train_sel = train_index[train_sel]
    val_sel, val_y = stage_targets(data.labels[val_index], spec.stage)
    val_sel = val_index[val_sel]
    if len(np.unique(train_y)) < 2:
        raise DataError(
            f"{data.source}: stage {spec.stage} needs both classes "
            f"{STAGE_CLASSES[spec.stage]} in the training images"
        )
    teacher = getattr(spec.teacher, "module", spec.teacher)
    if teacher is not None:
        teacher.eval()
    pairs = balance_by_rotation(train_y, config.seed) if recipe.get("balance") else None
    pairs = pairs or [(i, 0) for i in range(len(train_y))]
    aug = augment.AugmentConfig.from_dict(recipe.get("augment"))
    images = data.images

    def with_teacher(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if teacher is not None:
            with torch.no_grad():
                batch["teacher_logits"] = teacher(batch["image"])
        return batch

    def train_batches(epoch: int):
        generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        order = torch.randperm(len(pairs), generator=generator).tolist()
        for start in range(0, len(order), config.batch_size):
            chunk = [pairs[i] for i in order[start : start + config.batch_size]]
            xs = [
                augment.augment_image(
                    torch.rot90(as_float(images[train_sel[i]]), k, (1, 2)), aug, generator
                )
                for i, k in chunk
            ]
            labels = torch.tensor([int(train_y[i]) for i, _ in chunk])
            yield with_teacher({"image": torch.stack(xs), "label": labels})

    val_batches_cache = [
        with_teacher(
            {
                "image": as_float(images[val_sel[i : i + 32]]),
                "label": torch.from_numpy(val_y[i : i + 32]),
            }
        )
        for i in range(0, len(val_sel), 32)
    ]

    def validate(model: torch.nn.Module) -> dict[str, float]:
        prob = predict_positive(model, images[val_sel])
        m = binary_scores(val_y, prob)
        return {"accuracy": m["accuracy"], "auc_roc": m["auc_roc"]}

    if teacher is not None:
        alpha, temperature = float(recipe["alpha"]), float(recipe["temperature"])
        loss = training.WeightedLoss("rop-distillation", make_distillation(alpha, temperature))
    else:
        loss = training.WeightedLoss("rop-ce", make_cross_entropy())
    teacher_info = None
    if spec.teacher is not None and getattr(spec.teacher, "weights", None) is not None:
        teacher_info = {
            "weights": str(spec.teacher.weights),
            "sha256": spec.teacher.sha256,
            "model": spec.teacher.name,
            "alpha": float(recipe["alpha"]),
            "temperature": float(recipe["temperature"]),
        }
    card = {
        "task": "rop",
        "model": spec.model,
        "model_options": model_options,
        "stage": spec.stage,
        "classes": list(STAGE_CLASSES[spec.stage]),
        "image_size": int(recipe["image_size"]),
        "distilled_from": teacher_info,
        "initialised_from": str(spec.init) if spec.init else None,
        "init": init,
        "training": {
            "data": data.info,
            "source": data.source,
            "train_images": int(len(train_sel)),
            "balanced_copies": int(len(pairs) - len(train_sel)),
            "val_images": int(len(val_sel)),
            "val_ids_sha256": splits.ids_sha256([data.ids[i] for i in val_sel]),
            "command": options.get("command", ""),
        },
    }
    has_val = len(val_sel) > 0
    result = training.fit(
        module,
        train_batches,
        (lambda: iter(val_batches_cache)) if has_val else None,
        [loss],
        config,
        spec.out,
        card,
        validate=validate if has_val and len(np.unique(val_y)) > 1 else None,
        options=options,
    )
    best = next((h for h in result.history if h["epoch"] == result.best_epoch), {})
    return {
        **result.summary(),
        "stage": spec.stage,
        "distilled": teacher is not None,
        **{k: v for k, v in best.items() if k in ("val_accuracy", "val_auc_roc")},
    }


def link_stage2(stage1_weights: str | Path, stage2_weights: str | Path) -> dict[str, str]:
    """Record in the stage-1 card its stage-2 weights: relative path and SHA-256."""
    link = stage2_link(stage1_weights, stage2_weights)
    weights_io.update_card(Path(stage1_weights), **link)
    return link


def train_cascade(
    data: RopData,
    train_index: np.ndarray,
    val_index: np.ndarray,
    recipe: dict[str, Any],
    options: dict[str, Any],
    out: Path,
    students: tuple[str, ...] = ("distilled",),
) -> dict[str, dict[str, Any]]:
    """Teacher and students of both stages; returns each model's fit summary.

    ``students`` may hold ``"distilled"`` (from the teacher of the same stage)
    and ``"alone"`` (cross-entropy only, the no-distillation baseline).
    Stage-2 models start from their stage-1 counterparts.
    """
    teacher_name, student_name = recipe["teacher_model"], recipe["student_model"]
    runs: dict[str, dict[str, Any]] = {}
    plan = [("teacher", teacher_name, None)] + [(s, student_name, s) for s in students]
    folders = {
        "teacher": ("ms-rop", "ms-tr-rop"),
        "distilled": ("mn-rop", "mn-tr-rop"),
        "alone": ("mn-rop-alone", "mn-tr-rop-alone"),
    }
    stages = sorted({int(s) for s in recipe.get("stages") or (1, 2)})
    if not stages or not set(stages) <= {1, 2}:
        raise DataError(f"recipe 'stages': give [1, 2], [1] or [2], not {recipe.get('stages')}")
    for stage in stages:
        for role, name, kind in plan:
            teacher = None
            if kind == "distilled":
                teacher = load_trained(runs[f"teacher{stage}"]["weights"])
            init = Path(runs[f"{role}1"]["weights"]) if stage == 2 and 1 in stages else None
            spec = FitSpec(name, stage, out / folders[role][stage - 1], teacher, init)
            runs[f"{role}{stage}"] = fit_one(spec, data, train_index, val_index, options)
    if stages == [1, 2]:
        for role, *_ in plan:
            link_stage2(runs[f"{role}1"]["weights"], runs[f"{role}2"]["weights"])
    return runs


def cross_validate(
    data: RopData, recipe: dict[str, Any], options: dict[str, Any], out: Path
) -> dict[str, Any]:
    """k-fold CV of teacher, student alone and distilled student, both stages.

    Each fold trains on the other folds (less a validation share for early
    stopping) and is scored on its held-out images: stage 1 on all of them,
    stage 2 on the held-out ROP images.
    """
    k = int(recipe["folds"])
    grouped = any(data.groups)
    folds = grouped_folds(data.labels, data.groups, k, int(recipe["seed"]))
    run = int(recipe.get("run_folds") or k)  # fewer folds when time is short (said in the table)
    per_fold = []
    for f, (train_index, test_index) in enumerate(folds[:run], start=1):
        done = out / f"fold{f}" / "scores.json"
        if options.get("resume") and done.exists():
            per_fold.append(json.loads(done.read_text()))
            continue
        inner, val = validation_split(
            data, train_index, float(recipe["val_fraction"]), int(recipe["seed"])
        )
        runs = train_cascade(
            data,
            inner,
            val,
            recipe,
            options,
            out / f"fold{f}",
            ("alone", "distilled"),
        )
        scores: dict[str, Any] = {"fold": f, "test_images": int(len(test_index))}
        for stage in (1, 2):
            sel, y = stage_targets(data.labels[test_index], stage)
            for role in ("teacher", "alone", "distilled"):
                module = load_trained(runs[f"{role}{stage}"]["weights"]).module
                prob = predict_positive(module, data.images[test_index[sel]])
                scores[f"stage{stage}/{role}"] = binary_scores(y, prob)
        training.write_json(done, scores)
        per_fold.append(scores)
        if options.get("on_event"):
            options["on_event"]({"event": "epoch", "fold": f, **_fold_line(scores)})
    table = summarise(per_fold)
    training.write_json(out / "cv_results.json", {"folds": per_fold, "mean_sd": table})
    from eyescan.api import imageio

    imageio.write_text(out / "cv_table.md", markdown_table(table, k, grouped, len(per_fold)))
    return {
        "folds": k,
        "folds_run": len(per_fold),
        "grouped_by": "patient" if grouped else "image",
        "images": int(len(data.labels)),
        "data_split": data.info,
        "results": str(out / "cv_results.json"),
        "table": str(out / "cv_table.md"),
        **{ROW_NAMES[row]: format_row(values) for row, values in table.items()},
    }


def _fold_line(scores: dict[str, Any]) -> dict[str, float]:
    return {k: round(v["accuracy"], 4) for k, v in scores.items() if isinstance(v, dict)}


def train(task: Any, data: Path, options: dict[str, Any]) -> dict[str, Any]:
    """``eyescan train rop``: one model, the cascade or cross-validation (by the recipe)."""
    recipe = recipe_of(options)
    out = Path(options["out"])
    size = int(recipe["image_size"])
    dataset = load_data(data, "train", size, options)
    if int(recipe.get("folds") or 0) > 1:
        return cross_validate(dataset, recipe, options, out)
    train_index, val_index = validation_split(
        dataset, np.arange(len(dataset.labels)), float(recipe["val_fraction"]), int(recipe["seed"])
    )
    if recipe.get("cascade"):
        runs = train_cascade(dataset, train_index, val_index, recipe, options, out)
        first = min(int(k[-1]) for k in runs if k.startswith("distilled"))
        # the cascade's entry point: the stage-1 student (linked to stage 2), else stage 2's
        summary: dict[str, Any] = {"weights": runs[f"distilled{first}"]["weights"]}
        if "distilled1" in runs:
            summary["stage1_weights"] = runs["distilled1"]["weights"]
        for key, run in runs.items():
            summary[f"{key}_weights"] = run["weights"]
            summary[f"{key}_selected_by"] = run["selected_by"]
            summary[f"{key}_val_accuracy"] = run.get("val_accuracy")
        return {**summary, "data_split": dataset.info}
    name = options.get("model") or task.default_model
    teacher = load_trained(recipe["teacher_weights"]) if recipe.get("teacher_weights") else None
    init = Path(recipe["init_weights"]) if recipe.get("init_weights") else None
    spec = FitSpec(name, int(recipe["stage"]), out, teacher, init)
    summary = fit_one(spec, dataset, train_index, val_index, options)
    if recipe.get("stage1_weights") and spec.stage == 2:
        link = link_stage2(recipe["stage1_weights"], summary["weights"])
        summary["linked_to"] = recipe["stage1_weights"]
        summary["stage2_sha256"] = link["stage2_sha256"]
    return {**summary, "data_split": dataset.info}
