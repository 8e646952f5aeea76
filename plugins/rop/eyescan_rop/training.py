"""Training and evaluation of ROP classifiers: one model, the cascade, cross-validation.

``eyescan train rop DATA --config RECIPE`` does one of three things, chosen by
the recipe:

* one model (default): ``--model ms-rop|mn-rop`` at ``stage`` 1 or 2, plain
  cross-entropy, or distilled when ``teacher_weights`` names a trained
  teacher; ``init_weights`` starts from trained weights (stage 2 from stage 1);
* ``"cascade": true``: teacher and distilled student of both stages (stage-2
  teacher fine-tuned from the stage-1 teacher, stage-2 student initialised
  from the stage-1 student), with the stage-1 cards linked to stage 2;
* ``"folds": k``: k-fold cross-validation of teacher, student alone and
  distilled student for both stages, folds grouped by patient.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eyescan.api import DataError, find_reader, get_registry, metrics, models, training, weights
from eyescan_rop.data import (
    AugmentConfig,
    augment,
    balance_by_rotation,
    grouped_folds,
    load_images,
    stage_targets,
    validation_split,
)
from eyescan_rop.losses import make_cross_entropy, make_distillation
from eyescan_rop.models import init_from_imagenet
from eyescan_rop.task import STAGE_CLASSES, THRESHOLD, Cascade, positive_probability

#: The seed's recipe (Adam 1e-4, weight decay 1e-4, up to 200 epochs with early
#: stopping on validation loss, batch 8 for the teacher and 16 for the student,
#: 256² inputs, α = 0.95, T = 5). Sections ``teacher``/``student`` override the
#: top level for that role. Override anything with ``--config``.
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
    "imagenet": True,
    "alpha": 0.95,
    "temperature": 5.0,
    "augment": {},
    "teacher": {"batch_size": 8},
    "student": {"batch_size": 16},
    "teacher_model": "ms-rop",
    "student_model": "mn-rop",
    "model_options": {},
    "teacher_weights": None,
    "init_weights": None,
    "cascade": False,
    "folds": 0,
}
ROLES = {"ms-rop": "teacher", "mn-rop": "student"}
METRICS = ("accuracy", "precision", "f1", "sensitivity", "specificity", "auc_roc")


@dataclass
class RopData:
    """A preprocessed data set held in memory."""

    images: np.ndarray  # uint8 N×3×S×S, CLAHE applied
    labels: np.ndarray  # 0 normal, 1 ROP, 2 TR-ROP
    groups: list[str | None]  # patient ids
    ids: list[str]
    paths: list[str]
    source: str
    reader: str


def load_data(data: Path, split: str, size: int, reader_name: str | None = None) -> RopData:
    registry = get_registry()
    name, reader = find_reader(registry, "rop", data, reader_name)
    samples = reader.read(data, split)
    unlabelled = [s.image for s in samples if s.label is None]
    if unlabelled:
        raise DataError(f"{unlabelled[0]}: no label (normal, rop or tr-rop)")
    return RopData(
        load_images(samples, size),
        np.array([s.label for s in samples], np.int64),
        [getattr(s, "patient", None) for s in samples],
        [s.id for s in samples],
        [str(s.image) for s in samples],
        str(data),
        name,
    )


def _float(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).float() / 255.0


def predict_positive(module: torch.nn.Module, images: np.ndarray, batch: int = 32) -> np.ndarray:
    """P(class 1) for uint8 N×3×S×S images."""
    parts = [
        positive_probability(module, _float(images[i : i + batch]))
        for i in range(0, len(images), batch)
    ]
    return np.concatenate(parts) if parts else np.zeros(0)


def binary_scores(y: np.ndarray, prob: np.ndarray) -> dict[str, float]:
    """The seed's table: accuracy, precision, F1, sensitivity, specificity, AUC."""
    m = metrics.binary_metrics(np.asarray(y) == 1, prob, threshold=THRESHOLD)
    return {k: m[k] for k in METRICS}


def recipe_of(options: dict[str, Any]) -> dict[str, Any]:
    """The default recipe updated by ``--config`` and the CLI's ``--epochs``/``--batch-size``."""
    recipe = {**DEFAULT_RECIPE, **(options.get("config") or {})}
    for role in ("teacher", "student"):
        recipe[role] = {**DEFAULT_RECIPE[role], **(recipe.get(role) or {})}
    for key in ("epochs", "batch_size"):
        if options.get(key) is not None:
            for role in ("teacher", "student"):
                recipe[role][key] = options[key]
    return recipe


def config_for(recipe: dict[str, Any], model_name: str) -> training.TrainConfig:
    role = ROLES.get(model_name, "student")
    flat = {k: v for k, v in recipe.items() if k not in ("teacher", "student")}
    return training.TrainConfig.from_dict({**flat, **recipe[role]})


def build_model(recipe: dict[str, Any], name: str) -> tuple[torch.nn.Module, dict[str, Any]]:
    options = dict((recipe.get("model_options") or {}).get(name, {}))
    return get_registry().model("rop", name).factory(**options), options


def load_trained(path: str | Path, expected_model: str | None = None) -> Any:
    """Trained rop weights (hash-checked) as a LoadedModel."""
    loaded = models.load(get_registry(), "rop", expected_model, Path(path))
    return loaded


@dataclass
class FitSpec:
    """One model to fit: which, at which stage, from what, distilled from whom."""

    model: str
    stage: int
    out: Path
    teacher: Any | None = None  # LoadedModel or module
    init: Path | None = None
    imagenet: bool = True


def fit_one(
    spec: FitSpec,
    data: RopData,
    train_index: np.ndarray,
    val_index: np.ndarray,
    recipe: dict[str, Any],
    options: dict[str, Any],
) -> dict[str, Any]:
    """Train one model on ``data[train_index]`` (stage subset), validating on ``val_index``."""
    config = config_for(recipe, spec.model)
    module, model_options = build_model(recipe, spec.model)
    imagenet = []
    if spec.init is not None:
        state = load_trained(spec.init, spec.model).module.state_dict()
        weights.load_into(module, state, spec.init)
    elif spec.imagenet and recipe.get("imagenet"):
        source = recipe["imagenet"] if isinstance(recipe["imagenet"], str) else None
        imagenet = init_from_imagenet(module, source)
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
    aug = AugmentConfig.from_dict(recipe.get("augment"))
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
                augment(torch.rot90(_float(images[train_sel[i]]), k, (1, 2)), aug, generator)
                for i, k in chunk
            ]
            labels = torch.tensor([int(train_y[i]) for i, _ in chunk])
            yield with_teacher({"image": torch.stack(xs), "label": labels})

    val_batches_cache = [
        with_teacher(
            {
                "image": _float(images[val_sel[i : i + 32]]),
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
        "initialised_from": str(spec.init) if spec.init else ("imagenet" if imagenet else None),
        "imagenet_backbones": imagenet,
        "training": {
            "data": data.source,
            "reader": data.reader,
            "train_images": int(len(train_sel)),
            "balanced_copies": int(len(pairs) - len(train_sel)),
            "val_images": int(len(val_sel)),
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
        on_event=options.get("on_event"),
        resume=bool(options.get("resume")),
    )
    best = next((h for h in result.history if h["epoch"] == result.best_epoch), {})
    return {
        "weights": str(result.best_weights),
        "stage": spec.stage,
        "distilled": teacher is not None,
        "best_epoch": result.best_epoch,
        "best_val_loss": result.best_val_loss,
        "epochs_run": result.epochs_run,
        **{k: v for k, v in best.items() if k in ("val_accuracy", "val_auc_roc")},
    }


def link_stage2(stage1_weights: str | Path, stage2_weights: str | Path) -> None:
    """Record in the stage-1 card where its stage-2 weights are (relative path)."""
    import os

    stage1_weights, stage2_weights = Path(stage1_weights), Path(stage2_weights)
    relative = os.path.relpath(stage2_weights.resolve(), stage1_weights.resolve().parent)
    weights.update_card(stage1_weights, stage2_weights=relative)


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
    for stage in (1, 2):
        for role, name, kind in plan:
            teacher = None
            if kind == "distilled":
                teacher = load_trained(runs[f"teacher{stage}"]["weights"])
            init = Path(runs[f"{role}1"]["weights"]) if stage == 2 else None
            spec = FitSpec(name, stage, out / folders[role][stage - 1], teacher, init)
            runs[f"{role}{stage}"] = fit_one(spec, data, train_index, val_index, recipe, options)
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
        groups = [data.groups[i] for i in train_index]
        inner, val = validation_split(
            data.labels[train_index], groups, float(recipe["val_fraction"]), int(recipe["seed"])
        )
        runs = train_cascade(
            data,
            train_index[inner],
            train_index[val],
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
        "results": str(out / "cv_results.json"),
        "table": str(out / "cv_table.md"),
        **{ROW_NAMES[row]: _format_row(values) for row, values in table.items()},
    }


def _fold_line(scores: dict[str, Any]) -> dict[str, float]:
    return {k: round(v["accuracy"], 4) for k, v in scores.items() if isinstance(v, dict)}


ROW_NAMES = {
    "stage1/teacher": "MS-ROP (teacher)",
    "stage1/alone": "MobileNetV2 (no KD)",
    "stage1/distilled": "MN-ROP (distilled)",
    "stage2/teacher": "MS-TR-ROP (teacher)",
    "stage2/alone": "MobileNetV2 TR (no KD)",
    "stage2/distilled": "MN-TR-ROP (distilled)",
}


def summarise(per_fold: list[dict[str, Any]]) -> dict[str, dict[str, list[float]]]:
    """Mean and sample standard deviation of every metric over folds (NaN-aware)."""
    table = {}
    for row in ROW_NAMES:
        values = {}
        for metric in METRICS:
            xs = np.array([f[row][metric] for f in per_fold], dtype=np.float64)
            ok = xs[~np.isnan(xs)]
            sd = float(np.std(ok, ddof=1)) if len(ok) > 1 else float("nan")
            values[metric] = [float(ok.mean()) if len(ok) else float("nan"), sd]
        table[row] = values
    return table


def _format_row(values: dict[str, list[float]]) -> str:
    return "  ".join(f"{m} {values[m][0]:.4f}±{values[m][1]:.4f}" for m in METRICS)


def markdown_table(
    table: dict[str, dict[str, list[float]]], k: int, grouped: bool, run: int | None = None
) -> str:
    """The seed's metric table (mean ± sd over folds), both stages."""
    header = "| model | acc | precision | F1 | sensitivity | specificity | AUC |\n"
    header += "| --- | --- | --- | --- | --- | --- | --- |\n"
    done = "" if run in (None, k) else f" (only {run} of the {k} folds were run)"
    by = "patient" if grouped else "image"
    lines = [f"{k}-fold cross-validation{done}, folds grouped by {by}; mean ± sd over folds\n"]
    for stage, title in ((1, "ROP detection (normal/ROP)"), (2, "TR-ROP detection (non-TR/TR)")):
        lines.append(f"\n{title}:\n\n{header}")
        for row, name in ROW_NAMES.items():
            if row.startswith(f"stage{stage}/"):
                cells = " | ".join(
                    f"{table[row][m][0]:.4f} ± {table[row][m][1]:.4f}" for m in METRICS
                )
                lines.append(f"| {name} | {cells} |\n")
    return "".join(lines)


def train(task: Any, data: Path, options: dict[str, Any]) -> dict[str, Any]:
    recipe = recipe_of(options)
    out = Path(options["out"])
    size = int(recipe["image_size"])
    dataset = load_data(data, "train", size, options.get("reader"))
    if int(recipe.get("folds") or 0) > 1:
        return cross_validate(dataset, recipe, options, out)
    train_index, val_index = validation_split(
        dataset.labels, dataset.groups, float(recipe["val_fraction"]), int(recipe["seed"])
    )
    if recipe.get("cascade"):
        runs = train_cascade(dataset, train_index, val_index, recipe, options, out)
        summary = {"stage1_weights": runs["distilled1"]["weights"]}
        for key, run in runs.items():
            summary[f"{key}_weights"] = run["weights"]
            summary[f"{key}_val_accuracy"] = run.get("val_accuracy")
        return summary
    name = options.get("model") or task.default_model
    teacher = load_trained(recipe["teacher_weights"]) if recipe.get("teacher_weights") else None
    init = Path(recipe["init_weights"]) if recipe.get("init_weights") else None
    spec = FitSpec(name, int(recipe["stage"]), out, teacher, init)
    summary = fit_one(spec, dataset, train_index, val_index, recipe, options)
    if recipe.get("stage1_weights") and spec.stage == 2:
        link_stage2(recipe["stage1_weights"], summary["weights"])
        summary["linked_to"] = recipe["stage1_weights"]
    return summary


def evaluate(model: Any, data: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Stage-1 metrics on every image, stage-2 metrics on the ROP images, the cascade's rows.

    Stage 2 is scored on the truly-ROP images (the seed's protocol); the
    per-image rows and ``cascade_accuracy`` (three classes) follow the
    cascade, where stage 2 only sees images that stage 1 calls ROP.
    """
    cascade = Cascade.of(model)
    sizes = [Cascade.size(m) for m in (cascade.stage1, cascade.stage2) if m is not None]
    split = options.get("split") or "test"
    dataset = load_data(data, split, max(sizes), options.get("reader"))
    enhanced = [img.transpose(1, 2, 0).astype(np.float32) / 255.0 for img in dataset.images]
    n = len(dataset.labels)
    p_rop = Cascade(cascade.stage1, None).probabilities(enhanced)[0]
    p_tr = Cascade(None, cascade.stage2).probabilities(enhanced)[1]
    summary: dict[str, Any] = {"data": str(data), "reader": dataset.reader, "split": split}
    summary["images"] = int(n)
    for stage, prob, present in ((1, p_rop, cascade.stage1), (2, p_tr, cascade.stage2)):
        sel, y = stage_targets(dataset.labels, stage)
        if present is not None and len(sel):
            summary[f"stage{stage}_images"] = int(len(sel))
            summary.update({f"stage{stage}_{k}": v for k, v in binary_scores(y, prob[sel]).items()})
    rows = []
    for i in range(n):
        ran_stage2 = np.isnan(p_rop[i]) or p_rop[i] >= THRESHOLD
        values = cascade.values(p_rop[i], p_tr[i] if ran_stage2 else np.nan)
        row = {"id": dataset.ids[i], "input": dataset.paths[i], "label": int(dataset.labels[i])}
        rows.append({**row, **values})
    if cascade.stage1 is not None and cascade.stage2 is not None:
        codes = {"normal": 0, "rop": 1, "tr-rop": 2}
        predicted = np.array([codes[r["diagnosis"]] for r in rows])
        summary["cascade_accuracy"] = float((predicted == dataset.labels).mean())
    if options.get("update_card") and model.weights is not None:
        weights.update_card(model.weights, metrics=summary)
    return {"summary": summary, "images": rows}
