"""Figures the reliability tests measure (kills, results lost, ...) for docs/reliability.md.

``record(capsys, name, **figures)`` prints ``[name] key: value, ...`` (shown even
when pytest captures output) and, when ``EYESCAN_RELIABILITY_OUT`` names a
folder, writes ``{"run": name, **figures}`` there as ``NAME.json``.
``scripts/reliability_table.py`` runs the tests that way and prints (or writes
into docs/reliability.md) the table of every figure.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

#: The folder the figures go to (set by scripts/reliability_table.py).
FIGURES_ENV = "EYESCAN_RELIABILITY_OUT"


def record(capsys: Any, name: str, **figures: Any) -> None:
    text = ", ".join(f"{key.replace('_', ' ')}: {value}" for key, value in figures.items())
    with capsys.disabled():
        print(f"\n[{name}] {text}")
    folder = os.environ.get(FIGURES_ENV)
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        (Path(folder) / f"{safe}.json").write_text(json.dumps({"run": name, **figures}))
