"""The core's own plugin: answers the pipeline hooks by calling the Task's methods.

It is registered first, so a task plugin's direct hook implementations (or a
third-party wrapper) run before it; it answers last (``trylast``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pluggy

from eyescan.plugins.task import Prediction, Task

hookimpl = pluggy.HookimplMarker("eyescan")


@hookimpl(trylast=True)
def preprocess(task: Task, image: Any, source: str, provided: Any = None) -> Any:
    if task.needs:  # only tasks that declare needs take the third argument
        return task.preprocess(image, source, provided=provided or {})
    return task.preprocess(image, source)


@hookimpl(trylast=True)
def predict(task: Task, model: Any, batch: list[Any]) -> list[Prediction]:
    return task.predict(model, batch)


@hookimpl(trylast=True)
def train(task: Task, data: Path, options: dict[str, Any]) -> dict[str, Any]:
    return task.train(data, options)


@hookimpl(trylast=True)
def evaluate(task: Task, model: Any, data: Path, options: dict[str, Any]) -> dict[str, Any]:
    return task.evaluate(model, data, options)


@hookimpl(trylast=True)
def report(task: Task, prediction: Prediction, out_dir: Path, stem: str) -> dict[str, str]:
    return task.report(prediction, out_dir, stem)
