"""The :class:`Task` base class a task plugin subclasses, and :class:`Prediction`."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar


@dataclass
class Prediction:
    """What a model said about one image.

    ``values`` are JSON-serialisable summary numbers (they go into the JSON
    record's ``outputs``); ``arrays`` are images/maps for ``report`` to write.
    """

    values: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, Any] = field(default_factory=dict)
    image: Any = None  # the decoded input (uint8 H×W×3), for overlays


@dataclass(frozen=True)
class PredictOption:
    """A task-specific ``eyescan predict`` flag (``--NAME`` / ``--no-NAME``).

    Listed by ``eyescan predict TASK --help``; its value reaches the task as
    ``self.options[name]`` on the per-run copy the CLI makes (read it with
    ``self.options.get(name, default)``). ``name`` is the flag without dashes;
    underscores become dashes on the command line. ``output`` says that it adds
    outputs to a record (a resumed run redoes records made without it).
    """

    name: str
    help: str
    default: bool = False
    output: bool = True


class Task:
    """One analysis task (``vessels``, ``rop``, ...).

    Subclass it in a plugin, set the class attributes, implement the methods,
    and register an instance through the ``register_tasks`` hook. The core's
    built-in plugin answers the pipeline hooks by calling these methods.
    """

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""  # "segment", "classify" or "detect"
    description: ClassVar[str] = ""
    default_model: ClassVar[str] = ""
    #: Folder with shipped weights: ``<model>.safetensors`` + ``<model>.json``.
    weights_dir: ClassVar[Path | None] = None
    #: Task-specific predict flags (see :class:`PredictOption`).
    predict_options: ClassVar[tuple[PredictOption, ...]] = ()
    #: This run's options (core flags such as ``explain`` and the task's own); read-only.
    options: Any = MappingProxyType({})

    def configured(self, options: dict[str, Any]) -> Task:
        """A copy of this task for one run with ``options``; the registered task is untouched."""
        run = copy.copy(self)
        run.options = MappingProxyType(dict(options))
        return run

    def prepare(self, model: Any) -> None:
        """Load the models ``model`` runs with, once, before a prediction run starts.

        A task with companion models (a detector, a second stage) loads them here
        with ``api.models.load_companion(..., parent=model)`` (cached: it may be
        called again), so that the synthetic-data warning names them and
        ``--resume`` can compare the companions of saved records. Default: nothing.
        """

    def preprocess(self, image: Any, source: str) -> Any:
        raise NotImplementedError(f"task {self.name!r} does not implement preprocess")

    def predict(self, model: Any, batch: list[Any]) -> list[Prediction]:
        raise NotImplementedError(f"task {self.name!r} does not implement predict")

    def train(self, data: Path, options: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError(f"task {self.name!r} does not implement train")

    def evaluate(self, model: Any, data: Path, options: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError(f"task {self.name!r} does not implement evaluate")

    def report(self, prediction: Prediction, out_dir: Path, stem: str) -> dict[str, str]:
        return {}

    def example_input(self, size: int) -> Any:
        """A preprocessed item for benchmarks (default: a random RGB image)."""
        import numpy as np

        rng = np.random.default_rng(0)
        image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        return self.preprocess(image, "<benchmark>")

    def default_weights(self, model: str) -> Path | None:
        """Path of the shipped weights for ``model``, if the plugin ships them."""
        if self.weights_dir is None:
            return None
        path = Path(self.weights_dir) / f"{model}.safetensors"
        return path if path.exists() else None
