"""Creating registered models and loading them with checked weights."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eyescan.errors import WeightsError
from eyescan.plugins.registry import Registry


@dataclass
class LoadedModel:
    """A model ready for inference, with where its weights came from."""

    task: str
    name: str
    module: Any
    weights: Path | None = None
    sha256: str | None = None
    card: dict[str, Any] = field(default_factory=dict)
    backend: str = "torch"  # "onnx": module is an eyescan.deploy.onnx_backend.OnnxModule
    #: Models this one runs with (detector, second stage): see :func:`load_companion`.
    companions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def synthetic_only(self) -> bool:
        """True when this model's card says it was trained on synthetic images only."""
        return bool(self.card.get("synthetic_only"))

    def provenance(self) -> dict[str, Any]:
        """What every record made with this model carries about the models behind it.

        ``companions``: a copy of :attr:`companions`; ``synthetic_only``: true when
        this model or any companion was trained on synthetic images only.
        """
        companions = [dict(c) for c in self.companions]
        synthetic = self.synthetic_only or any(c.get("synthetic_only") for c in companions)
        return {"companions": companions, "synthetic_only": bool(synthetic)}


def create(registry: Registry, task: str, name: str, **options: Any) -> Any:
    """Instantiate a registered model (random initialisation)."""
    return registry.model(task, name).factory(**options)


def load(
    registry: Registry, task: str, model: str | None = None, weights: Path | None = None
) -> LoadedModel:
    """Load ``model`` with ``weights`` (default: the task's shipped weights).

    The model card beside the weights names the task, the model and its options
    (it must name ``task``, and ``model`` when given or when the shipped weights
    are loaded); its SHA-256 is checked before anything is read from the file.
    """
    from eyescan.models import weights as weights_io

    task_obj = registry.task(task)
    name = model or task_obj.default_model
    if weights is None:  # the shipped weights of ``name``: their card must name it
        model = name
        weights = task_obj.default_weights(name)
        if weights is None:
            raise WeightsError(
                f"no shipped weights for {task}/{name}; train one with "
                f"'eyescan train {task} DATA --model {name}' and pass --weights"
            )
    weights = Path(weights)
    if not weights.exists():
        raise WeightsError(f"{weights}: weights file not found")
    if weights.suffix == ".safetensors":
        card = weights_io.read_card(weights)
        weights_io.check_card(card, weights, task, model)
        name = card["model"]
        expected = card.get("sha256")
        if not expected:
            raise WeightsError(f"{weights_io.card_path(weights)}: model card has no sha256")
    else:  # plain state dict: no card, so no hash to check; model must be named
        card, expected = {}, None
    registry.model(task, name)  # clear error for an unknown model name
    state = weights_io.load_state_dict(weights, expected)
    module = create(registry, task, name, **card.get("model_options", {}))
    weights_io.load_into(module, state, weights)
    module.eval()
    sha = expected or weights_io.sha256_file(weights)
    return LoadedModel(task, name, module, weights, sha, card)


def load_companion(
    registry: Registry,
    task: str,
    role: str,
    model: str | None = None,
    weights: Path | None = None,
    parent: LoadedModel | None = None,
) -> LoadedModel:
    """Load a model another one runs with (a detector, a second stage), hash-checked.

    ``weights`` (a file with its card) or else the task's shipped weights of
    ``model``. The companion's provenance (role, model, weights file, SHA-256,
    ``synthetic_only``) is recorded in ``parent.companions`` so that records
    and warnings name it; loading a role again replaces its entry (no duplicates
    when a task loads its companion once per batch).
    """
    loaded = load(registry, task, model, weights)
    if parent is not None:
        entry = {
            "role": role,
            "model": loaded.name,
            "weights": str(loaded.weights) if loaded.weights else None,
            "sha256": loaded.sha256,
            "synthetic_only": loaded.synthetic_only,
        }
        roles = [c.get("role") for c in parent.companions]
        if role in roles:
            parent.companions[roles.index(role)] = entry
        else:
            parent.companions.append(entry)
    return loaded
