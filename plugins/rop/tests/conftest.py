"""Shared fixtures of the rop tests: a tiny ROP-DRAGON-style table of synthetic pictures."""

from __future__ import annotations

from pathlib import Path

import pytest

from eyescan_rop.synthetic import make_rop_fundus

#: ROP-DRAGON's labels.csv read as it is (``--columns``).
DRAGON_COLUMNS = "image=path,label=treatment,patient=infant,split=split"


@pytest.fixture
def dragon_columns() -> str:
    return DRAGON_COLUMNS


@pytest.fixture
def dragon_table(tmp_path) -> Path:
    """``labels.csv`` laid out like ROP-DRAGON's (path, split, treatment, infant, …)."""
    return dragon_style(tmp_path)


def dragon_style(folder: Path) -> Path:
    """A tiny table laid out like ROP-DRAGON's labels.csv, with synthetic pictures."""
    from PIL import Image

    rows = ["path,split,treatment,infant,eye,width"]
    plan = [("Train", "Treated", "A-1"), ("Train", "Not-Treated", "A-2")]
    plan += [("Test", "Treated", "A-3"), ("Test", "Not-Treated", "A-4")]
    for n, (split, treatment, infant) in enumerate(plan):
        for k in range(3):
            name = f"Dataset/{split}/{treatment}/{infant}/{infant}_{k}.png"
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            label = 2 if treatment == "Treated" else 1
            Image.fromarray(make_rop_fundus(48, seed=10 * n + k, label=label).image).save(
                folder / name
            )
            rows.append(f"{name},{split},{treatment},{infant},OD,48")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return folder / "labels.csv"
