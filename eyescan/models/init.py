"""Initialisation from a local weights file, chosen explicitly in the recipe.

Nothing is downloaded and nothing is looked up in torch's cache: a recipe
says ``"init": "none"`` (the default: from scratch) or names a file::

    "init": {"file": "resnet18-f37072fd.pth", "into": "backbone", "prefix": "",
             "rename": {"^fc\\\\.": "head."}}

or a list of such objects (one per backbone). The file may be a torchvision
state dict (``.pth``/``.pt``, read with ``weights_only=True``), any eyescan
weights file (``.safetensors`` with its card; the card's SHA-256 is checked),
or a bare safetensors file. Tensors whose name (after ``prefix`` is stripped
and ``rename`` applied) and shape fit ``model.get_submodule(into)`` are
copied; the rest keep their random values (a new head). What was loaded is
returned for the model card, with the file's SHA-256.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from eyescan.errors import WeightsError


def _specs(spec: Any) -> list[dict[str, Any]]:
    if spec in (None, False, "", "none", "scratch"):
        return []
    if isinstance(spec, (str, Path)):
        return [{"file": str(spec)}]
    if isinstance(spec, Mapping):
        return [dict(spec)]
    if isinstance(spec, list):
        return [s for item in spec for s in _specs(item)]
    raise WeightsError(f"recipe 'init': expected 'none', a file or {{'file': …}}, got {spec!r}")


def read_tensors(path: Path) -> tuple[dict[str, Any], str]:
    """A weights file's tensors (no unpickling of code) and its SHA-256."""
    from eyescan.models import weights as weights_io

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: initialisation weights not found (nothing is downloaded)")
    sha = weights_io.sha256_file(path)
    expected = None
    if path.suffix == ".safetensors" and weights_io.card_path(path).exists():
        expected = weights_io.read_card(path).get("sha256")
    state = weights_io.load_state_dict(path, expected)
    return state, sha


def initialise(model: Any, spec: Any, base: Path | None = None) -> list[dict[str, Any]]:
    """Copy tensors from the files that ``spec`` names into ``model``; what was done, per file.

    ``base`` resolves relative file names (the recipe's folder). An empty list
    means the model starts from scratch. A file none of whose tensors fits is
    an error (the wrong file, or the wrong ``prefix``/``into``).
    """
    done = []
    for item in _specs(spec):
        unknown = set(item) - {"file", "into", "prefix", "rename"}
        if unknown:
            raise WeightsError(f"recipe 'init': unknown key(s) {', '.join(sorted(unknown))}")
        path = Path(item["file"]).expanduser()
        if base is not None and not path.is_absolute():
            path = Path(base) / path
        state, sha = read_tensors(path)
        into = item.get("into", "")
        try:
            target = model.get_submodule(into) if into else model
        except AttributeError:
            raise WeightsError(f"recipe 'init': the model has no part {into!r}") from None
        own = target.state_dict()
        prefix = item.get("prefix", "")
        rules = [(re.compile(a), b) for a, b in (item.get("rename") or {}).items()]
        fitting = {}
        for key, value in state.items():
            if not key.startswith(prefix):
                continue
            name = key[len(prefix) :]
            for pattern, replacement in rules:
                name = pattern.sub(replacement, name)
            if name in own and tuple(own[name].shape) == tuple(getattr(value, "shape", ())):
                fitting[name] = value
        if not fitting:
            raise WeightsError(
                f"{path}: no tensor fits {into or 'the model'} "
                f"(check 'prefix' {prefix!r}, 'into' and 'rename')"
            )
        target.load_state_dict(fitting, strict=False)
        done.append(
            {
                "file": path.name,
                "sha256": sha,
                "into": into or "(whole model)",
                "tensors_loaded": len(fitting),
                "tensors_in_part": len(own),
            }
        )
    return done
