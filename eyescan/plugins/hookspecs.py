"""Hook specifications: the whole contract between the core and plugins.

Contract version: :data:`eyescan.HOOK_CONTRACT_VERSION` (2: ``preprocess`` gained
``provided``; ``Task.needs`` / ``Task.provides``).

Registration hooks receive a ``register`` callback and may call it any number
of times; they run once when the plugin manager is built. Pipeline hooks are
called by the CLI for every image or run. ``preprocess``, ``predict``,
``train`` and ``evaluate`` are ``firstresult``: the first non-``None`` result
wins, and the core's built-in plugin (``eyescan.plugins.builtin``) answers last by
delegating to the registered :class:`eyescan.plugins.task.Task` object, so a task
plugin normally implements those methods on its ``Task`` class. Any plugin can
wrap a pipeline hook with ``@hookimpl(wrapper=True)`` (e.g. an extra
preprocessing step) or answer it first with ``@hookimpl(tryfirst=True)``.
``report`` is collected from every plugin: each may write its own files.

Hooks may only gain arguments in later contract versions (pluggy passes an
implementation just the arguments it names), so old plugins keep working.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from pathlib import Path

    from eyescan.plugins.task import Prediction, Task

hookspec = pluggy.HookspecMarker("eyescan")


@hookspec
def register_tasks(register: Callable[..., None]) -> None:
    """Register tasks: ``register(task)`` with a :class:`eyescan.plugins.task.Task` instance.

    Called once at start-up. A task appears in ``eyescan tasks`` only if some
    plugin registers it. Must not import torch (keep ``eyescan --help`` fast).
    """


@hookspec
def register_models(register: Callable[..., None]) -> None:
    """Register models: ``register(task, name, factory, description="")``.

    ``factory(**options)`` returns a ``torch.nn.Module``; it is only called when
    the model is needed, so the plugin imports torch inside the factory.
    """


@hookspec
def register_losses(register: Callable[..., None]) -> None:
    """Register losses: ``register(name, factory, description="")``.

    ``factory(**options)`` returns a callable ``loss(outputs, batch) -> Tensor``
    usable by :func:`eyescan.engine.training.fit`. Names are global; prefix with the
    task where a loss is task-specific.
    """


@hookspec
def register_readers(register: Callable[..., None]) -> None:
    """Register data-set readers: ``register(task, name, reader)``.

    ``reader`` implements :class:`eyescan.data.readers.Reader` (``detect(path)`` and
    ``read(path, columns=None)``: all samples, each marked with its split or None).
    ``eyescan train/evaluate`` pick the first reader whose ``detect`` accepts the
    data path, or the one named by ``--reader``.
    """


@hookspec(firstresult=True)
def preprocess(task: Task, image: Any, source: str, provided: Any) -> Any:
    """Turn one decoded RGB image (``uint8`` array, H×W×3) into model input.

    Called for every input image before batching, in a worker thread.
    ``source`` is the input path (for messages). ``provided`` (contract 2)
    maps the task's ``needs`` that could be met to their values (a ``--fov``
    mask, another task's output map). Returns a task-specific item that
    ``predict`` accepts in a batch. firstresult.
    """


@hookspec(firstresult=True)
def predict(task: Task, model: Any, batch: list[Any]) -> list[Prediction]:
    """Run the model on a batch of preprocessed items.

    ``task`` is this run's copy (``task.options``: ``explain`` and the task's own
    ``predict_options``). Returns one :class:`eyescan.plugins.task.Prediction` per
    item, in order: summary numbers (``values``) and arrays for the report
    (``arrays``). firstresult.
    """


@hookspec(firstresult=True)
def train(task: Task, data: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Train a model of ``task`` on the data set at ``data``.

    ``options`` holds the CLI's options: ``model``, ``epochs``, ``batch_size``,
    ``out`` (already checked by the core: a used folder only with ``resume`` or
    ``overwrite``), ``config`` (the recipe), ``reader``, ``columns`` (dict or None),
    ``holdout`` (HoldOut, False or None), ``resume``, ``overwrite``, ``command`` and
    ``on_event`` (pass it to ``fit``). Writes weights + model card under
    ``options["out"]`` and returns a summary (paths and best metrics). firstresult.
    """


@hookspec(firstresult=True)
def evaluate(task: Task, model: Any, data: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Evaluate ``model`` on held-out data at ``data``.

    ``options``: ``split`` ("train", "val" or "test"), ``reader``, ``columns``
    and ``holdout`` (as for ``train``). Returns ``{"summary": {...}, "images":
    [{...}, ...]}`` with metric values (``summary["ci95"]``, ``summary["data_split"]``),
    plus ``scores`` for classifiers (``--plots``). ``--update-card`` is done by the
    core after this hook returns. firstresult.
    """


@hookspec
def report(task: Task, prediction: Prediction, out_dir: Path, stem: str) -> dict[str, str]:
    """Write per-image outputs for one prediction.

    Every implementation is called (not firstresult); each returns a mapping
    ``{output name: file path}`` of what it wrote (or ``None``), and the maps
    are merged into the JSON record's ``files``. Write files atomically
    (:func:`eyescan.imaging.imageio.save_png` does). ``stem`` is the safe, unique path
    prefix for this input inside ``out_dir``.
    """
