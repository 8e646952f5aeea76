"""Export registered models to ONNX, checked against torch.

The example input is whatever the task's ``predict`` feeds the model for
``task.example_input(size)`` (recorded on the way in), so any task's model
exports without task-specific code. The batch axis is dynamic; for
segmentation tasks (``task.kind == "segment"``) height and width are too.
Beside ``NAME.onnx`` goes ``NAME.onnx.json``: the source model card plus the
ONNX file's SHA-256, the recorded module attributes and the parity check.
"""

from __future__ import annotations

import io
import json
import math
import time
import warnings
from pathlib import Path
from typing import Any

from eyescan.deploy import onnx_runtime
from eyescan.errors import EyescanError
from eyescan.imaging.imageio import atomic_path, write_text
from eyescan.models.loading import LoadedModel
from eyescan.models.weights import CARD_SCHEMA

OPSET = 17
#: Raw outputs agree when max |torch − onnx| ≤ OUTPUT_TOLERANCE · max(1, max |torch|).
OUTPUT_TOLERANCE = 1e-4
#: Prediction values agree when |a − b| ≤ VALUE_ATOL + VALUE_RTOL · |a| (labels: equal).
VALUE_ATOL, VALUE_RTOL = 1e-3, 1e-2
_SIMPLE = (bool, int, float, str)


class NotExportableError(EyescanError):
    """The model is not called as one module by its task's ``predict`` (a composite)."""


def _clone(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return type(value)(_clone(v) for v in value)
    return value.detach().clone() if hasattr(value, "detach") else value


def predict_recorded(
    registry: Any, task: Any, loaded: LoadedModel, items: list[Any]
) -> tuple[list[Any], list[tuple[Any, ...]]]:
    """The task's predictions for ``items`` and the arguments of each model call it made.

    Calls are recorded with a forward pre-hook, so the task sees the real
    module (``isinstance`` checks and all).
    """
    import torch

    calls: list[tuple[Any, ...]] = []

    def record(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if kwargs:
            raise EyescanError("ONNX export supports models called with positional tensors")
        onnx_runtime.flatten(args)  # tensors (in tuples, lists, dicts) only
        calls.append(_clone(args))

    handle = loaded.module.register_forward_pre_hook(record, with_kwargs=True)
    try:
        with torch.no_grad():
            predictions = registry.hook.predict(task=task, model=loaded, batch=items)
    finally:
        handle.remove()
    if not calls:
        raise NotExportableError(
            f"task {task.name!r}: predict never calls the {loaded.name!r} model itself "
            "(only parts of it?), so it cannot be exported as one ONNX model"
        )
    return predictions, calls


def takes_image_list(args: tuple[Any, ...]) -> bool:
    """True for models called with one list of C×H×W images (torchvision detectors)."""
    return len(args) == 1 and isinstance(args[0], list)


def module_attributes(module: Any) -> dict[str, Any]:
    """Public scalar attributes and properties a plain ``nn.Module`` lacks (``stride``…)."""
    import torch

    plain = set(dir(torch.nn.Module()))
    found = {}
    for name in sorted(set(dir(module)) - plain):
        if name.startswith("_"):
            continue
        try:
            value = getattr(module, name)
        except Exception:
            continue
        if isinstance(value, _SIMPLE) or (
            isinstance(value, (list, tuple)) and all(isinstance(v, _SIMPLE) for v in value)
        ):
            found[name] = list(value) if isinstance(value, tuple) else value
    return found


def _names(prefix: str, count: int) -> list[str]:
    return [prefix] if count == 1 else [f"{prefix}_{i}" for i in range(count)]


def export_bytes(
    registry: Any, task: Any, loaded: LoadedModel, size: int = 64, opset: int = OPSET
) -> tuple[bytes, dict[str, Any]]:
    """Export ``loaded`` to ONNX in memory; returns the model bytes and its card.

    A module may refuse with a reason in its ``onnx_unsupported`` attribute.
    """
    import onnx
    import torch

    reason = getattr(loaded.module, "onnx_unsupported", None)
    if reason:
        raise NotExportableError(f"{task.name}/{loaded.name}: not exported to ONNX: {reason}")

    module = loaded.module.eval()
    _, (args, *_) = predict_recorded(registry, task, loaded, [task.example_input(size)])
    per_item = takes_image_list(args)
    if per_item:  # exported for one image; OnnxModule runs it once per image
        args = ([args[0][0]],)
    with torch.no_grad():
        structure, flat = onnx_runtime.flatten(module(*args))
    _, inputs = onnx_runtime.flatten(args)
    input_names, output_names = _names("input", len(inputs)), _names("output", len(flat))
    dynamic: dict[str, dict[int, str]] = {}
    for name, tensor in zip(input_names, inputs):
        if per_item:  # C×H×W
            dynamic[name] = {1: "height", 2: "width"}
        else:
            dynamic[name] = {0: "batch"}
            if task.kind == "segment" and tensor.dim() == 4:
                dynamic[name].update({2: "height", 3: "width"})
    for name, tensor in zip(output_names, flat):
        dynamic[name] = {0: f"{name}_rows" if per_item else "batch"}
        if task.kind == "segment" and tensor.dim() == 4:
            dynamic[name].update({2: f"{name}_height", 3: f"{name}_width"})
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter (no onnxscript dependency) warns that it is
        # legacy; tracer warnings about baked-in shapes are caught by the parity
        # check at a second size instead.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            buffer,
            dynamo=False,
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic,
            opset_version=opset,
            do_constant_folding=True,
        )
    data = buffer.getvalue()
    onnx.checker.check_model(onnx.load_from_string(data))
    card = {
        **{k: v for k, v in loaded.card.items() if k not in ("file", "onnx", "created")},
        "schema": CARD_SCHEMA,
        "task": task.name,
        "model": loaded.name,
        "model_options": loaded.card.get("model_options", {}),
        "format": "onnx",
        "sha256": onnx_runtime.sha256_bytes(data),
        "source_file": loaded.weights.name if loaded.weights else None,
        "source_sha256": loaded.sha256,
        "onnx": {
            "opset": opset,
            "exporter": f"torch {torch.__version__} (TorchScript-based torch.onnx.export)",
            "inputs": [
                {"name": n, "example_shape": list(a.shape), "dynamic_axes": dynamic[n]}
                for n, a in zip(input_names, inputs)
            ],
            "outputs": [{"name": n, "dynamic_axes": dynamic[n]} for n in output_names],
            "output_structure": structure,
            "per_item": per_item,
            "attributes": module_attributes(module),
            "torch_class": f"{type(module).__module__}:{type(module).__qualname__}",
        },
    }
    return data, card


def _numbers(values: Any, prefix: str = "") -> dict[str, Any]:
    """Prediction values flattened to ``key.sub`` → scalar."""
    if isinstance(values, dict):
        items = values.items()
    elif isinstance(values, (list, tuple)):
        items = enumerate(values)
    else:
        return {prefix: values}
    flat: dict[str, Any] = {}
    for key, value in items:
        flat.update(_numbers(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _doubled(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """The arguments as a batch of two (the second mirrored): exercises the batch axis."""
    import torch

    if takes_image_list(args):
        return ([*args[0], *(image.flip(-1) for image in args[0])],)
    return tuple(torch.cat([a, a.flip(-1)]) for a in args)


def canonical_detections(outputs: Any) -> Any:
    """Detector outputs (lists of dicts with ``boxes``) with each image's detections in a
    fixed order: by label, then box corners (to 0.01 px).

    Detections with tied scores may come out of torch and onnxruntime in either
    order; parity is about which detections there are, not their order.
    """
    if not (isinstance(outputs, list) and all(isinstance(o, dict) for o in outputs)):
        return outputs
    canonical = []
    for found in outputs:
        boxes = found.get("boxes")
        if boxes is None or boxes.ndim != 2 or not len(boxes):
            canonical.append(found)
            continue
        keys = (boxes * 100).round().tolist()
        labels = found["labels"].tolist() if "labels" in found else [0] * len(keys)
        order = sorted(range(len(keys)), key=lambda i: (labels[i], *keys[i]))
        canonical.append(
            {
                k: v[order] if getattr(v, "shape", ())[:1] == (len(keys),) else v
                for k, v in found.items()
            }
        )
    return canonical


def compare(
    registry: Any, task: Any, reference: LoadedModel, candidate: LoadedModel, items: list[Any]
) -> dict[str, Any]:
    """How far ``candidate``'s outputs and prediction values are from ``reference``'s.

    Raw outputs are compared on the tensors ``predict`` fed the reference,
    doubled into a batch of two. Numeric prediction values get the max and
    mean absolute difference; other values (labels) the fraction that agree.
    """
    import torch

    ref, calls = predict_recorded(registry, task, reference, items)
    with torch.no_grad():
        new = registry.hook.predict(task=task, model=candidate, batch=items)
    diff, scale = 0.0, 0.0
    for args in calls:
        batch = _doubled(args)
        with torch.no_grad():
            _, want = onnx_runtime.flatten(canonical_detections(reference.module(*batch)))
            _, got = onnx_runtime.flatten(canonical_detections(candidate.module(*batch)))
        for w, g in zip(want, got):
            if w.shape != g.shape:
                diff = math.inf
            elif w.numel():
                diff = max(diff, float((w.double() - g.double()).abs().max()))
                scale = max(scale, float(w.double().abs().max()))
    values: dict[str, dict[str, Any]] = {}
    ok = True
    pairs = [(_numbers(a.values), _numbers(b.values)) for a, b in zip(ref, new)]
    for key in pairs[0][0] if pairs else []:
        left = [a.get(key) for a, _ in pairs]
        right = [b.get(key) for _, b in pairs]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in left + right):
            gaps = [abs(a - b) for a, b in zip(left, right)]
            ok &= all(g <= VALUE_ATOL + VALUE_RTOL * abs(a) for g, a in zip(gaps, left))
            values[key] = {"max_abs_diff": max(gaps), "mean_abs_diff": sum(gaps) / len(gaps)}
        else:
            agree = sum(a == b for a, b in zip(left, right)) / len(left)
            ok &= agree == 1.0
            values[key] = {"agreement": agree}
    return {
        "items": len(items),
        "model_calls": len(calls),
        "output_max_abs_diff": diff,
        "output_scale": scale,
        "values": values,
        "values_ok": ok,
    }


def check_parity(
    registry: Any, task: Any, torch_model: LoadedModel, onnx_model: LoadedModel, size: int
) -> dict[str, Any]:
    """Parity of an export: raw outputs (at batch size 2) and prediction values.

    Segmentation models are checked at a second image size too (their height
    and width are dynamic).
    """
    sizes = [size, size + size // 2] if task.kind == "segment" else [size]
    items = [task.example_input(s) for s in sizes]
    result = compare(registry, task, torch_model, onnx_model, items)
    tolerance = OUTPUT_TOLERANCE * max(1.0, result["output_scale"])
    outputs_ok = math.isfinite(result["output_max_abs_diff"]) and (
        result["output_max_abs_diff"] <= tolerance
    )
    return {
        **result,
        "sizes": sizes,
        "output_tolerance": tolerance,
        "outputs_ok": outputs_ok,
        "ok": outputs_ok and result["values_ok"],
    }


def export(
    registry: Any,
    task: Any,
    loaded: LoadedModel,
    out: Path,
    size: int = 64,
    opset: int = OPSET,
) -> dict[str, Any]:
    """Export to ``out`` (+ ``out.json`` card) after a passing parity check; returns the card.

    Raises :class:`EyescanError` (and writes nothing) when parity fails.
    """
    from eyescan import __version__

    data, card = export_bytes(registry, task, loaded, size, opset)
    # checked where its source lies, so that companions its card names relative to the
    # weights (rop's stage 2) are found by the exported model as by the original
    twin = onnx_runtime.loaded_from_bytes(data, card, loaded.weights)
    parity = check_parity(registry, task, loaded, twin, size)
    if not parity["ok"]:
        raise EyescanError(
            f"{task.name}/{loaded.name}: ONNX parity check failed (max |torch - onnx| "
            f"{parity['output_max_abs_diff']:.3g}, tolerance {parity['output_tolerance']:.3g}; "
            f"values {json.dumps(parity['values'])}); nothing written"
        )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        tmp.write_bytes(data)
    card = {
        **card,
        "file": out.name,
        "onnx": {**card["onnx"], "parity": parity},
        "eyescan_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_text(onnx_runtime.card_path(out), json.dumps(card, indent=2) + "\n")
    return card
