"""Run exported models with onnxruntime, behind the same interface as the torch module.

:class:`OnnxModule` takes and returns torch tensors and exposes the scalar
attributes of the module it was exported from (``stride``…), so a task's
``predict`` calls it exactly like the torch module and needs no change.
Sessions use the CPU provider with all graph optimisations, one intra-op
thread per usable core and no spin-waiting (the decoding threads of the
folder pipeline need those cores between model calls). This module is the
low layer: it knows ONNX files and sessions, not how they are exported
(:mod:`eyescan.deploy.onnx_export`) or chosen (:mod:`eyescan.deploy.onnx_backend`).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import logging
import os
import tempfile
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from eyescan.errors import EyescanError, WeightsError
from eyescan.models.loading import LoadedModel

ONNX_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64}


def usable_cpus() -> int:
    """Cores this process may run on (the affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def session_options(threads: int | None = None, spinning: bool = False) -> Any:
    """Tuned onnxruntime session options for CPU inference."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads or usable_cpus()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.log_severity_level = 3  # errors only
    return options


def flatten(value: Any) -> tuple[dict[str, Any], list[Any]]:
    """The nesting of tensors in tuples, lists and dicts, and the tensors in order."""
    if isinstance(value, (tuple, list)):
        parts = [flatten(v) for v in value]
        kind = "tuple" if isinstance(value, tuple) else "list"
        return {"type": kind, "items": [p[0] for p in parts]}, [t for p in parts for t in p[1]]
    if isinstance(value, dict):
        parts = [flatten(v) for v in value.values()]
        structure = {
            "type": "dict",
            "keys": [str(k) for k in value],
            "items": [p[0] for p in parts],
        }
        return structure, [t for p in parts for t in p[1]]
    if hasattr(value, "shape"):
        return {"type": "tensor"}, [value]
    raise EyescanError(f"ONNX models take and return tensors, not {type(value).__name__}")


def rebuild(structure: dict[str, Any], tensors: Iterator[Any]) -> Any:
    """Inverse of :func:`flatten`."""
    kind = structure["type"]
    if kind == "tensor":
        return next(tensors)
    items = [rebuild(s, tensors) for s in structure["items"]]
    if kind == "dict":
        return dict(zip(structure["keys"], items))
    return tuple(items) if kind == "tuple" else items


class OnnxModule:
    """An ONNX model that is called like the torch module it was exported from.

    ``card`` is the ONNX model card (see :mod:`eyescan.deploy.onnx_export`): the
    output structure, the module attributes recorded at export, and
    ``per_item`` for models that take a list of images (detectors), which
    were exported for one image and are run once per image here.
    """

    backend = "onnx"
    training = False

    def __init__(self, model_bytes: bytes, card: dict[str, Any], threads: int | None = None):
        import onnxruntime as ort

        self.model_bytes = model_bytes
        self.session = ort.InferenceSession(
            model_bytes, session_options(threads), providers=["CPUExecutionProvider"]
        )
        self.card = card
        self.inputs = [(i.name, ONNX_DTYPES.get(i.type)) for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        info = card.get("onnx", {})
        self.structure = info.get("output_structure", {"type": "tensor"})
        self.per_item = bool(info.get("per_item"))
        self.torch_class = _import_class(info.get("torch_class"))
        self.hooks: list[tuple[Any, bool]] = []
        self.attributes = {
            k: tuple(v) if isinstance(v, list) else v for k, v in info.get("attributes", {}).items()
        }

    def __call__(self, *args: Any) -> Any:
        for hook, with_kwargs in list(self.hooks):
            hook(self, args, {}) if with_kwargs else hook(self, args)
        if self.per_item:  # one list of images in, one list of per-image results out
            return [out for image in args[0] for out in self._run(([image],))]
        return self._run(args)

    forward = __call__

    def _run(self, args: tuple[Any, ...]) -> Any:
        import torch

        _, values = flatten(args)
        if len(values) != len(self.inputs):
            raise EyescanError(f"ONNX model takes {len(self.inputs)} tensors, got {len(values)}")
        feeds = {}
        for (name, dtype), value in zip(self.inputs, values):
            array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value
            feeds[name] = np.ascontiguousarray(array, dtype=dtype)
        results = self.session.run(self.output_names, feeds)
        return rebuild(self.structure, iter(torch.from_numpy(r) for r in results))

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        """The exported module's class, so a task's ``isinstance`` dispatch still works."""
        return self.__dict__.get("torch_class") or OnnxModule

    def register_forward_pre_hook(self, hook: Any, with_kwargs: bool = False) -> Any:
        """Like ``nn.Module``'s: ``hook(module, args[, kwargs])`` before each call."""
        self.hooks.append((hook, with_kwargs))
        return _HookHandle(self.hooks, (hook, with_kwargs))

    def __getattr__(self, name: str) -> Any:
        """Recorded attributes; else the exported class's own methods, run on this object.

        Parameter-free helpers such as ``probabilities(logits)`` work that way;
        a method that needs the torch layers fails with AttributeError.
        """
        attributes = self.__dict__.get("attributes", {})
        if name in attributes:
            return attributes[name]
        method = getattr(self.__dict__.get("torch_class"), name, None)
        if inspect.isfunction(method) and not name.startswith("_") and not _module_name(name):
            return types.MethodType(method, self)
        raise AttributeError(
            f"ONNX model has no attribute {name!r} "
            f"(recorded at export: {', '.join(sorted(attributes)) or 'none'})"
        )

    def eval(self) -> OnnxModule:
        return self

    def train(self, mode: bool = True) -> OnnxModule:
        if mode:
            raise EyescanError("ONNX models are for inference only; train the torch model")
        return self

    def to(self, *args: Any, **kwargs: Any) -> OnnxModule:
        return self  # CPU provider only

    def parameters(self) -> Iterator[Any]:
        """One empty CPU tensor, so ``next(module.parameters()).device`` works."""
        import torch

        return iter([torch.zeros(0)])


def _module_name(name: str) -> bool:
    """True for ``nn.Module``'s own names (``state_dict``…): never borrowed."""
    import torch

    return hasattr(torch.nn.Module, name)


class _HookHandle:
    def __init__(self, hooks: list[Any], entry: Any):
        self.hooks, self.entry = hooks, entry

    def remove(self) -> None:
        if self.entry in self.hooks:
            self.hooks.remove(self.entry)


def _import_class(name: str | None) -> type | None:
    """``package.module:Qual.Name`` → the class, or None when it cannot be imported."""
    if not name or ":" not in name:
        return None
    module, _, qualname = name.partition(":")
    try:
        value: Any = importlib.import_module(module)
        for part in qualname.split("."):
            value = getattr(value, part)
    except (ImportError, AttributeError):
        return None
    return value if isinstance(value, type) else None


def card_path(onnx_path: Path) -> Path:
    """``NAME.onnx`` → ``NAME.onnx.json`` (the torch weights' card is ``NAME.json``)."""
    return Path(str(onnx_path) + ".json")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_onnx(path: Path, task: str | None = None) -> tuple[bytes, dict[str, Any]]:
    """The bytes of an exported ONNX file and its card, after checking the card's SHA-256."""
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"{path}: ONNX file not found")
    card_file = card_path(path)
    try:
        card = json.loads(card_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WeightsError(
            f"{path}: model card {card_file.name} is missing; export with 'eyescan export'"
        ) from None
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{card_file}: unreadable model card ({exc})") from None
    data = path.read_bytes()
    if sha256_bytes(data) != card.get("sha256"):
        raise WeightsError(f"{path}: SHA-256 does not match its model card {card_file.name}")
    if task is not None and card.get("task") != task:
        raise WeightsError(f"{path}: ONNX model is for task {card.get('task')!r}, not {task!r}")
    return data, card


def loaded_from_bytes(
    data: bytes, card: dict[str, Any], weights: Path | None = None
) -> LoadedModel:
    """A :class:`LoadedModel` (backend ``onnx``) around ONNX bytes and their card."""
    module = OnnxModule(data, card)
    return LoadedModel(
        card["task"], card["model"], module, weights, sha256_bytes(data), card, backend="onnx"
    )


def beside(weights: Path) -> Path:
    """Where the ONNX export of ``weights`` is looked for: ``NAME.onnx`` beside ``NAME.*``."""
    return Path(weights).with_suffix(".onnx")


def quantize_model(loaded: LoadedModel) -> LoadedModel:
    """Dynamic int8 quantisation (int8 weights, activations quantised on the fly)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if loaded.backend != "onnx":
        raise EyescanError("int8 quantisation needs the onnx backend")
    with tempfile.TemporaryDirectory(prefix="eyescan-int8-") as tmp:
        target = Path(tmp) / "int8.onnx"
        model = onnx.load_from_string(loaded.module.model_bytes)
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # quantize_dynamic logs advice on the root logger
        try:
            quantize_dynamic(model, target, weight_type=QuantType.QInt8)
        finally:
            root.setLevel(level)
        data = target.read_bytes()
    card = {**loaded.card, "quantized": "dynamic int8", "float_sha256": loaded.sha256}
    module = OnnxModule(data, card)
    return LoadedModel(
        loaded.task, loaded.name, module, loaded.weights, sha256_bytes(data), card, backend="onnx"
    )
