"""Training recipes: one merge rule for every task, and a hash that names a recipe.

A recipe is a JSON object. Its value for a run is, later layers winning:
the plugin's defaults, then the ``--config`` file's top-level keys, then the
file's ``section`` for the part being trained (``"teacher"``, ``"detector"``
…), then the command line's ``--epochs``/``--batch-size``. Nested objects
(``augment``, ``model_options``) merge key by key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

#: Command-line options that override every recipe layer when given.
CLI_KEYS = ("epochs", "batch_size")


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``override``; nested dicts merge, everything else replaces."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def merge_recipe(
    defaults: Mapping[str, Any],
    options: Mapping[str, Any],
    section: str | None = None,
    sections: Iterable[str] = (),
) -> dict[str, Any]:
    """The recipe of one run: defaults < ``--config`` < its ``section`` < CLI flags.

    ``sections`` names every part-specific key of the task's recipes (so the
    parts not trained now are dropped from the flat recipe).
    """
    config = dict(options.get("config") or {})
    specific = config.get(section) or {} if section else {}
    for name in {*sections, *([section] if section else [])}:
        config.pop(name, None)
    merged = deep_merge(deep_merge(defaults, config), specific)
    for key in CLI_KEYS:
        if options.get(key) is not None:
            merged[key] = options[key]
    return merged


def recipe_hash(recipe: Mapping[str, Any]) -> str:
    """SHA-256 of the recipe's canonical JSON (sorted keys): equal recipes, equal hash."""
    text = json.dumps(recipe, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
