"""Weights files and their model cards.

Weights are stored as safetensors (no pickle). Beside every ``NAME.safetensors``
lies ``NAME.json``, the model card: task, model name and options, training
data and command, metrics, and the file's SHA-256, which is checked on load.
Legacy ``.pt``/``.pth`` state dicts load only with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from eyescan.errors import WeightsError
from eyescan.imaging.imageio import atomic_path, write_text

CARD_SCHEMA = "eyescan.modelcard/1"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def card_path(weights: Path) -> Path:
    return Path(weights).with_suffix(".json")


def read_card(weights: Path) -> dict[str, Any]:
    path = card_path(weights)
    if not path.exists():
        raise WeightsError(f"{weights}: model card {path.name} is missing beside the weights")
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{path}: unreadable model card ({exc})") from None
    if card.get("schema") != CARD_SCHEMA:
        raise WeightsError(f"{path}: not an eyescan model card (schema {card.get('schema')!r})")
    return card


def save_weights(model: Any, path: Path, card: dict[str, Any]) -> dict[str, Any]:
    """Save ``model``'s state dict as safetensors and write its card; returns the card."""
    from safetensors.torch import save_file

    path = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp))
    from eyescan import __version__

    full = {
        "schema": CARD_SCHEMA,
        **card,
        "format": "safetensors",
        "file": path.name,
        "sha256": sha256_file(path),
        "parameters": int(sum(v.numel() for v in model.parameters())),
        "eyescan_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_text(card_path(path), json.dumps(full, indent=2, sort_keys=False) + "\n")
    return full


#: Card fields that describe the weights file itself: never changed by :func:`update_card`.
FILE_FIELDS = ("schema", "format", "file", "sha256")


def update_card(weights: Path, **fields: Any) -> dict[str, Any]:
    """Add or replace fields of a model card (e.g. evaluation metrics).

    Only the card (``NAME.json``) is rewritten, atomically; the weights file is
    not touched, so the card's ``sha256`` stays valid. Refused when the weights no
    longer match the card (a card must not vouch for another file) and for the
    fields that describe the file (:data:`FILE_FIELDS`).
    """
    fixed = sorted(set(fields) & set(FILE_FIELDS))
    if fixed:
        raise WeightsError(f"{card_path(weights)}: update_card cannot change {', '.join(fixed)}")
    card = read_card(weights)
    expected = card.get("sha256")
    if expected and sha256_file(weights) != expected:
        raise WeightsError(f"{weights}: SHA-256 does not match its model card; card not updated")
    card.update(fields)
    write_text(card_path(weights), json.dumps(card, indent=2) + "\n")
    return card


def load_state_dict(path: Path, expected_sha256: str | None = None) -> dict[str, Any]:
    """Load a state dict without unpickling untrusted code; check the hash if given."""
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"{path}: weights file not found")
    if expected_sha256 is not None:
        actual = sha256_file(path)
        if actual != expected_sha256:
            raise WeightsError(
                f"{path}: SHA-256 {actual[:12]}… does not match its model card "
                f"({expected_sha256[:12]}…); the file was changed or replaced"
            )
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:
            raise WeightsError(f"{path}: not a valid safetensors file ({exc})") from None
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for code-running pickles, bad zips, …
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"{path}: refused to load ({first})") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: does not hold a state dict")
    return state


def load_into(model: Any, state: dict[str, Any], source: Path | str) -> Any:
    """Load ``state`` into ``model`` strictly, turning mismatches into one clear error."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [
        k
        for k in own
        if k in state and tuple(getattr(state[k], "shape", ())) != tuple(own[k].shape)
    ]
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            k = wrong[0]
            parts.append(
                f"{len(wrong)} shape mismatches (e.g. {k}: file "
                f"{tuple(getattr(state[k], 'shape', ()))} "
                f"vs model {tuple(own[k].shape)})"
            )
        if missing:
            parts.append(f"{len(missing)} missing tensors (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensors (e.g. {unexpected[0]})")
        raise WeightsError(f"{source}: weights do not fit the model: " + "; ".join(parts))
    model.load_state_dict(state, strict=True)
    return model


def check_card(card: dict[str, Any], weights: Path, task: str, model: str | None) -> None:
    """Refuse weights trained for another task or model."""
    if card.get("task") != task:
        raise WeightsError(f"{weights}: weights are for task {card.get('task')!r}, not {task!r}")
    if model is not None and card.get("model") != model:
        raise WeightsError(f"{weights}: weights are for model {card.get('model')!r}, not {model!r}")
