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


@dataclass(frozen=True)
class Need:
    """An input a task takes besides the photograph, handed over by the core.

    ``name`` is what the task reads from ``provided`` in ``preprocess``. The
    core fills it from the user (``fov``: masks given with ``--fov``) or by
    running the task that ``provides`` it (for example a ``vessel_probability``
    map from the vessels task) once per photo; no plugin imports another.
    A ``required`` need without a provider is an error; an optional one is
    simply absent from ``provided``.
    """

    name: str
    help: str = ""
    required: bool = False


#: Needs the core itself fills from predict options (not from another task).
CORE_NEEDS = ("fov",)

#: Options the core passes to every task on its per-run copy (``task.options``):
#: ``explain`` (bool), ``threshold`` (float or None: the user's operating
#: threshold for segmentation and binary outputs, ``--threshold``) and
#: ``prob16`` (bool: write probability maps as 16-bit PNG, ``--prob16``).
CORE_OPTIONS = ("explain", "threshold", "prob16")


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
    #: Inputs the task takes besides the photograph (see :class:`Need`).
    needs: ClassVar[tuple[Need, ...]] = ()
    #: What this task's predictions can give other tasks: need name -> key of
    #: ``Prediction.arrays`` (e.g. ``{"vessel_probability": "probability"}``),
    #: an array at the input photo's size.
    provides: ClassVar[dict[str, str]] = {}
    #: Headline outputs for the multi-task table: output key -> short column name
    #: (≤ 8 characters, so several tasks fit an 80-column terminal).
    summary_outputs: ClassVar[dict[str, str]] = {}
    #: A fundus-photograph task: the core's quality gate runs before it.
    fundus: ClassVar[bool] = False
    #: The photos the task can analyse: both sides at least ``min_side`` pixels and the
    #: longer side at most ``max_aspect`` times the shorter (None: any). The core checks
    #: them before the task (or a task it provides for) sees a photo, and fails a photo
    #: outside them with ``unsuitable_image`` ("too small/thin for this task").
    min_side: ClassVar[int] = 1
    max_aspect: ClassVar[float | None] = None
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

    def preprocess(self, image: Any, source: str, provided: Any = None) -> Any:
        """Model input for one decoded RGB photo.

        ``provided`` (only passed to a task that declares ``needs``) maps each
        need that could be met to its value, e.g. ``provided.get("fov")``: a
        boolean H×W mask at the photo's size.
        """
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

    def reference_image(self) -> Any:
        """The image ``eyescan verify`` reproduces stored outputs on (``uint8`` H×W×3).

        Default: a 400-pixel-wide copy of a CC0 fundus photograph bundled with the
        core (``eyescan/data/reference_fundus.jpg``, see examples/README.md). A task
        for other photographs overrides it with a deterministic image of its own.
        """
        from importlib.resources import as_file, files

        from eyescan.imaging.imageio import read_image

        with as_file(files("eyescan.data") / "reference_fundus.jpg") as path:
            return read_image(path)

    def default_weights(self, model: str) -> Path | None:
        """Path of the shipped weights for ``model``, if the plugin ships them."""
        if self.weights_dir is None:
            return None
        path = Path(self.weights_dir) / f"{model}.safetensors"
        return path if path.exists() else None
