"""A toy provider/consumer pair of plugins: one task uses another's output through the core.

``toymap`` provides ``toy_map`` (its grey map, ``arrays["gray"]``);
``toyuse`` needs it (and takes a ``--fov`` mask) and reports the map's mean.
The two plugins never import each other: the core hands the map over.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from eyescan.api import Need, Prediction, hookimpl, weights

from .toy_plugin import ToyTask, scale_model

#: How often each task's model ran (the provider must run once per photo).
CALLS: dict[str, int] = {}


class MapTask(ToyTask):
    name = "toymap"
    description = "test task: provides its grey map"
    provides = {"toy_map": "gray"}
    fundus = True
    summary_outputs = {"score": "score"}

    def predict(self, model: Any, batch: list[np.ndarray]) -> list[Prediction]:
        CALLS[self.name] = CALLS.get(self.name, 0) + len(batch)
        return super().predict(model, batch)


class UseTask(ToyTask):
    name = "toyuse"
    description = "test task: the mean of toymap's map inside the FOV"
    needs = (Need("toy_map", "toymap's grey map", required=True), Need("fov", "FOV mask"))
    fundus = True

    def preprocess(self, image: np.ndarray, source: str, provided: Any = None) -> Any:
        provided = provided or {}
        if "fail" in Path(source).name:
            raise ValueError("this photo makes toyuse fail")
        fov = provided.get("fov")
        given = provided["toy_map"]
        return given, fov

    def predict(self, model: Any, batch: list[Any]) -> list[Prediction]:
        CALLS[self.name] = CALLS.get(self.name, 0) + len(batch)
        out = []
        for given, fov in batch:
            inside = given if fov is None else given[fov]
            values = {"map_mean": float(inside.mean()), "fov_given": fov is not None}
            threshold = self.options.get("threshold")
            values["above"] = bool(inside.mean() >= (0.5 if threshold is None else threshold))
            out.append(Prediction(values, {"gray": given}, None))
        return out


class PairPlugin:
    """Both tasks in one test plugin (the core treats them as any two tasks)."""

    def __init__(self, weights_dir: Path, tasks: tuple[type, ...] = (MapTask, UseTask)) -> None:
        self.tasks = [cls() for cls in tasks]
        for task in self.tasks:
            task.weights_dir = weights_dir / task.name

    @hookimpl
    def register_tasks(self, register):
        for task in self.tasks:
            register(task)

    @hookimpl
    def register_models(self, register):
        for task in self.tasks:
            register(task.name, "scale", lambda **_: scale_model(), description="x.mean() * w")


def write_weights(folder: Path) -> Path:
    """Shipped-style weights for both toy tasks in ``folder`` (default weights of each)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("toymap", "toyuse"):
        sub = folder / name
        sub.mkdir(exist_ok=True)
        weights.save_weights(
            scale_model(), sub / "scale.safetensors", {"task": name, "model": "scale"}
        )
    return folder
