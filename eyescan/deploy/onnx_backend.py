"""Choosing the inference backend: a loaded torch model, or its ONNX twin.

``--backend onnx`` uses ``NAME.onnx`` beside the weights when its card says
it was exported from exactly these weights, else exports in memory;
``--quantize`` adds dynamic int8 quantisation and measures its cost. The
ONNX files and sessions themselves are :mod:`eyescan.deploy.onnx_runtime`'s
(its names are re-exported here).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eyescan.deploy.onnx_runtime import (
    ONNX_DTYPES,
    OnnxModule,
    beside,
    card_path,
    flatten,
    loaded_from_bytes,
    quantize_model,
    read_onnx,
    rebuild,
    session_options,
    sha256_bytes,
    usable_cpus,
)
from eyescan.errors import EyescanError, WeightsError
from eyescan.models.loading import LoadedModel

__all__ = [
    "ONNX_DTYPES",
    "OnnxModule",
    "beside",
    "card_path",
    "flatten",
    "load",
    "loaded_from_bytes",
    "quantize_model",
    "read_onnx",
    "rebuild",
    "session_options",
    "sha256_bytes",
    "usable_cpus",
    "calibration_items",
    "describe",
    "from_torch",
    "load_for_backend",
    "load_torch",
    "torch_twin",
]


def from_torch(registry: Any, task: Any, loaded: LoadedModel, size: int = 64) -> LoadedModel:
    """The ONNX twin of a loaded torch model.

    Uses ``<weights>.onnx`` beside the weights when its card says it was
    exported from exactly these weights (same SHA-256); otherwise exports the
    model in memory (nothing is written). ``card["onnx_origin"]`` says which.
    """
    from eyescan.deploy import onnx_export

    if loaded.weights is not None and beside(loaded.weights).exists():
        path = beside(loaded.weights)
        data, card = read_onnx(path, task.name)
        if card.get("source_sha256") == loaded.sha256 and card.get("model") == loaded.name:
            return loaded_from_bytes(data, {**card, "onnx_origin": f"file {path}"}, path)
        stale = f"{path.name} is stale (exported from other weights); exported in memory"
    else:
        stale = "exported in memory (no ONNX file beside the weights)"
    data, card = onnx_export.export_bytes(registry, task, loaded, size)
    return loaded_from_bytes(data, {**card, "onnx_origin": stale}, None)


def load_torch(
    registry: Any, task: Any, model: str | None, weights: Path | None, random_init: bool = False
) -> LoadedModel:
    """``models.load``, or (``random_init``, nothing shipped or given) an untrained model."""
    from eyescan.models import loading as models

    name = model or task.default_model
    if random_init and weights is None and task.default_weights(name) is None:
        module = models.create(registry, task.name, name).eval()
        return LoadedModel(task.name, name, module, card={"random_init": True})
    return models.load(registry, task.name, model, weights)


def torch_twin(registry: Any, loaded: LoadedModel) -> Any:
    """A torch module of the same architecture (random weights): for counting FLOPs."""
    from eyescan.models import loading as models

    if loaded.backend == "torch":
        return loaded.module
    options = loaded.card.get("model_options", {})
    return models.create(registry, loaded.task, loaded.name, **options).eval()


def calibration_items(registry: Any, task: Any, paths: list[Path], limit: int = 4) -> list[Any]:
    """The first readable ``paths`` decoded and preprocessed (to measure quantisation cost)."""
    from eyescan.imaging.imageio import read_image

    items = []
    for path in paths:
        try:
            image = read_image(path)
        except EyescanError:
            continue
        items.append(
            registry.hook.preprocess(task=task, image=image, source=str(path), provided={})
        )
        if len(items) == limit:
            break
    return items


def load_for_backend(
    registry: Any,
    task: Any,
    model: str | None,
    weights: Path | None,
    backend: str = "torch",
    quantize: bool = False,
    items: list[Any] | None = None,
    random_init: bool = False,
) -> LoadedModel:
    """Load a model for ``backend`` (``torch`` or ``onnx``; ``.onnx`` weights imply onnx).

    ``quantize`` adds dynamic int8 quantisation (onnx backend); its accuracy
    cost against the float ONNX model on ``items`` (preprocessed images; the
    task's example input when empty) is in ``card["quantization_cost"]``.
    """
    if backend == "torch" and not quantize and not str(weights or "").endswith(".onnx"):
        return load_torch(registry, task, model, weights, random_init)
    if weights is not None and Path(weights).suffix == ".onnx":
        loaded = load(registry, task, model, weights)
    else:
        loaded = from_torch(registry, task, load_torch(registry, task, model, weights, random_init))
    if not quantize:
        return loaded
    from eyescan.deploy.onnx_export import compare

    int8 = quantize_model(loaded)
    cost = compare(registry, task, loaded, int8, items or [task.example_input(256)])
    int8.card["quantization_cost"] = cost
    return int8


def describe(loaded: LoadedModel) -> str:
    """One line on where an ONNX model came from and what quantisation cost."""
    if loaded.backend != "onnx":
        return f"backend torch: {loaded.task}/{loaded.name}"
    line = f"backend onnx: {loaded.task}/{loaded.name}, {loaded.card.get('onnx_origin', '')}"
    cost = loaded.card.get("quantization_cost")
    if cost:
        parts = [f"max |output diff| {cost['output_max_abs_diff']:.3g}"]
        changed = sorted(  # values that moved first
            cost["values"].items(),
            key=lambda kv: kv[1].get("mean_abs_diff", 1 - kv[1].get("agreement", 1)) == 0,
        )
        for key, diff in changed[:3]:
            if "mean_abs_diff" in diff:
                parts.append(f"{key} mean |diff| {diff['mean_abs_diff']:.3g}")
            else:
                parts.append(f"{key} agreement {diff['agreement']:.0%}")
        line += f"; int8 cost vs float on {cost['items']} images: " + ", ".join(parts)
    return line


def load(
    registry: Any, task: Any, model: str | None, weights: Path | None, random_init: bool = False
) -> LoadedModel:
    """Load a model for the onnx backend: an ``.onnx`` file, or the ONNX twin of torch weights.

    ``random_init`` (benchmarks) falls back to an untrained model when the
    task ships no weights and none are given.
    """
    if weights is not None and Path(weights).suffix == ".onnx":
        data, card = read_onnx(Path(weights), task.name)
        if model is not None and card.get("model") != model:
            raise WeightsError(f"{weights}: ONNX model is {card.get('model')!r}, not {model!r}")
        return loaded_from_bytes(data, {**card, "onnx_origin": f"file {weights}"}, Path(weights))
    return from_torch(registry, task, load_torch(registry, task, model, weights, random_init))
