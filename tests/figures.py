"""Figures the reliability tests measure (kills, results lost, ...) for docs/reliability.md.

``record(capsys, name, **figures)`` prints ``[name] key: value, ...`` (shown even
when pytest captures output) and, when ``EYESCAN_FIGURES`` names a file,
appends ``{"test": name, **figures}`` to it as a JSON line.
``scripts/reliability_figures.py`` runs the tests with it set and writes the
table that docs/reliability.md shows.
"""

from __future__ import annotations

import json
import os
from typing import Any


def record(capsys: Any, name: str, **figures: Any) -> None:
    text = ", ".join(f"{key.replace('_', ' ')}: {value}" for key, value in figures.items())
    with capsys.disabled():
        print(f"\n[{name}] {text}")
    path = os.environ.get("EYESCAN_FIGURES")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"test": name, **figures}) + "\n")
