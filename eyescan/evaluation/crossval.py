"""Patient-grouped cross-validation of any task: ``eyescan evaluate TASK DATA --cv SCHEME``.

Each fold trains a model with the task's own ``train`` hook on the other
folds' images and scores it with the task's ``evaluate`` hook on the fold's
images; both hooks read the data through the core's split rule
(:func:`eyescan.data.readers.read_task_split`), which the ``fold`` option
re-marks (:func:`eyescan.data.splits.apply_fold`). A task whose hooks do not
read through that rule is refused (its results would not be the fold's).
The summary holds every fold's numbers and their mean ± sd, and a warning
when there are too few patients for the numbers to mean anything.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

from eyescan.data import splits
from eyescan.errors import EyescanError

#: Fewer patients than this: the summary warns that the folds measure next to nothing.
FEW_PATIENTS = 20


def folds_of(
    registry: Any, task: str, data: Path, options: dict[str, Any], scheme: str | int, seed: int = 0
) -> tuple[list[splits.Fold], int]:
    """The folds of ``data`` (read with the task's reader) and the number of groups."""
    from eyescan.data.readers import find_reader, read_samples

    _, reader = find_reader(registry, task, data, options.get("reader"))
    samples = read_samples(reader, data, options.get("columns"), options.get("annotator"))
    folds = splits.make_folds(samples, scheme, seed)
    return folds, len({splits.group_of(s) for s in samples})


def few_patients_warning(groups: int) -> str | None:
    """The plain warning for a small cross-validation (None from :data:`FEW_PATIENTS` on)."""
    if groups >= FEW_PATIENTS:
        return None
    return (
        f"only {groups} patients: each fold tests {'one patient' if groups < 10 else 'a few'}, "
        "so these numbers measure next to nothing about accuracy on new patients"
        + (" (with four or fewer they measure nothing)" if groups <= 4 else "")
    )


def _checked(result: dict[str, Any], fold: splits.Fold, what: str, task: str) -> None:
    split = result.get("data_split") or {}
    if split.get("fold") != fold.name:
        raise EyescanError(
            f"task {task!r}: its {what} hook does not read the data through the core's split "
            "rule (eyescan.api.read_task_split), so it cannot be cross-validated with --cv"
        )


def mean_sd(per_fold: list[dict[str, Any]]) -> dict[str, list[float | None]]:
    """``{metric: [mean, sd]}`` over folds of every numeric metric (NaN and null left out)."""
    keys = dict.fromkeys(k for f in per_fold for k, v in f.items() if _number(v))
    out: dict[str, list[float | None]] = {}
    for key in keys:
        xs = [float(f[key]) for f in per_fold if _number(f.get(key)) and math.isfinite(f[key])]
        if not xs:
            out[key] = [None, None]
            continue
        mean = sum(xs) / len(xs)
        sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else None
        out[key] = [mean, sd]
    return out


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def cross_validate(
    registry: Any,
    task: str,
    data: Path,
    options: dict[str, Any],
    scheme: str | int,
    out: Path,
    on_fold: Any = None,
) -> dict[str, Any]:
    """Train and evaluate every fold; returns ``{"summary", "folds", "images"}``.

    ``options``: the data options (reader, columns, annotator), ``model``,
    ``config`` (the training recipe, a dict) and ``seed``. Fold ``i`` trains
    into ``out/fold<i>`` (replacing what is there).
    """
    from eyescan.models.loading import load

    task_obj = registry.task(task)
    folds, groups = folds_of(registry, task, data, options, scheme, int(options.get("seed") or 0))
    data_options = {k: options.get(k) for k in ("reader", "columns", "annotator")}
    per_fold: list[dict[str, Any]] = []
    images: list[dict[str, Any]] = []
    for fold in folds:
        common = {**data_options, "holdout": False, "fold": fold}
        folder = out / f"fold{fold.number}"
        if folder.is_dir():
            shutil.rmtree(folder)
        trained = registry.hook.train(
            task=task_obj,
            data=data,
            options={
                **common,
                "model": options.get("model"),
                "epochs": None,
                "batch_size": None,
                "out": folder,
                "config": dict(options.get("config") or {}),
                "resume": False,
                "overwrite": True,
                "command": options.get("command", ""),
            },
        )
        _checked(trained, fold, "train", task)
        weights = trained.get("weights")
        if not weights:
            raise EyescanError(f"task {task!r}: its train hook returned no 'weights' to evaluate")
        model = load(registry, task, options.get("model"), Path(weights))
        result = registry.hook.evaluate(
            task=task_obj, model=model, data=data, options={**common, "split": "test"}
        )
        _checked(result["summary"], fold, "evaluate", task)
        summary = result["summary"]
        row = {
            "fold": fold.number,
            "test_patients": [g.split(":", 1)[1] for g in fold.test_groups],
            "weights": str(weights),
            **{k: v for k, v in summary.items() if _number(v)},
        }
        per_fold.append(row)
        images += [{**image, "fold": fold.number} for image in result["images"]]
        if on_fold is not None:
            on_fold(row)
    summary = {
        "cv": folds[0].scheme,
        "folds": len(folds),
        "patients": groups,
        "images": len(images),
        "per_fold": per_fold,
        "mean_sd": mean_sd([{k: v for k, v in f.items() if k != "fold"} for f in per_fold]),
    }
    warning = few_patients_warning(groups)
    if warning:
        summary["warning"] = warning
    return {"summary": summary, "images": images}
