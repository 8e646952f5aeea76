"""Lesions and grades: class names, boxes from masks, counts and areas, lesion-based grade.

Torch-free. Boxes are ``(x0, y0, x1, y1)`` in pixel-edge coordinates: a lesion
covering columns 10-12 has ``x0 = 10`` and ``x1 = 13`` (what labelImg writes
for a box drawn around those pixels).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: The 5-level international (ICDR) scale.
GRADE_NAMES = ("no DR", "mild NPDR", "moderate NPDR", "severe NPDR", "proliferative DR")
N_GRADES = len(GRADE_NAMES)
#: Referable DR: moderate NPDR or worse.
REFERABLE_GRADE = 2
#: Risk of diabetic macular edema as IDRiD grades it: 0 no hard exudate, 1 exudates
#: farther than one disc diameter from the macula's centre, 2 within it.
DME_LEVELS = 3
#: Detector classes; detector label ``i + 1`` is ``LESION_CLASSES[i]`` (0 is background).
LESION_CLASSES = ("microaneurysm", "haemorrhage", "hard_exudate")

_ALIASES = {
    "microaneurysm": ("ma", "microaneurysm", "microaneurysms", "redsmalldots"),
    "haemorrhage": (
        "hm",
        "hem",
        "haem",
        "haemorrhage",
        "haemorrhages",
        "hemorrhage",
        "hemorrhages",
        "retinal_haemorrhage",
        "retinal_hemorrhage",
    ),
    "hard_exudate": ("ex", "exudate", "exudates", "hard_exudate", "hard_exudates", "hardexudates"),
}
_CANONICAL = {alias: name for name, aliases in _ALIASES.items() for alias in aliases}
#: Combination rules of the classifier's grade and the lesion-based grade.
COMBINE_RULES = ("max", "classifier", "lesions")


def canonical_label(name: str) -> str | None:
    """The lesion class a box label names (case, spaces and hyphens ignored), or None.

    ``"HE"`` is deliberately unknown: IDRiD uses it for haemorrhages, others for
    hard exudates.
    """
    key = name.strip().lower().replace(" ", "_").replace("-", "_")
    return _CANONICAL.get(key)


def label_index(name: str) -> int:
    """Detector label (1-based) of a canonical lesion class."""
    return LESION_CLASSES.index(name) + 1


def boxes_from_mask(mask: np.ndarray) -> list[tuple[int, int, int, int]]:
    """One box per 8-connected component of a boolean mask, in pixel-edge coordinates."""
    from scipy import ndimage

    labels, count = ndimage.label(np.asarray(mask, bool), structure=np.ones((3, 3), bool))
    boxes = []
    for rows, cols in ndimage.find_objects(labels)[:count]:
        boxes.append((int(cols.start), int(rows.start), int(cols.stop), int(rows.stop)))
    return boxes


def lesion_summary(
    labels: Sequence[str], boxes: Sequence[Sequence[float]]
) -> dict[str, dict[str, float]]:
    """Per-class lesion counts and summed box areas (in the boxes' pixel units)."""
    counts = {name: 0 for name in LESION_CLASSES}
    areas = {name: 0.0 for name in LESION_CLASSES}
    for label, (x0, y0, x1, y1) in zip(labels, boxes):
        if label in counts:
            counts[label] += 1
            areas[label] += max(0.0, float(x1) - float(x0)) * max(0.0, float(y1) - float(y0))
    return {"counts": counts, "areas": {k: round(v, 1) for k, v in areas.items()}}


def grade_from_lesions(
    counts: dict[str, int], severe_haemorrhages: int = 10, moderate_lesions: int = 1
) -> int:
    """Lesion-based grade (0-3) from lesion counts; the documented rule.

    0 no lesion; 3 at least ``severe_haemorrhages`` haemorrhages (severe; a
    count stand-in for the ICDR 4-2-1 rule); 2 at least ``moderate_lesions``
    haemorrhages and hard exudates together (moderate); 1 fewer, or
    microaneurysms only (mild). Grade 4 needs neovascularisation, which the
    detector does not look for. Both counts are detector options, chosen on
    validation images (``scripts/calibrate_screen.py``): where haemorrhage boxes
    also hold microaneurysms (CODRAS), one box is not yet moderate DR.
    """
    n_ma = counts.get("microaneurysm", 0)
    n_haem = counts.get("haemorrhage", 0)
    n_ex = counts.get("hard_exudate", 0)
    if n_haem >= severe_haemorrhages:
        return 3
    if n_haem + n_ex >= max(1, moderate_lesions):
        return 2
    return 1 if n_ma or n_haem or n_ex else 0


def combine_grades(classifier: int | None, lesions: int | None, rule: str = "max") -> int:
    """Final grade from the classifier's and the lesion-based grade.

    ``max``: the higher of the two (detected lesions are a lower bound, and only
    the classifier can say 4); ``classifier`` or ``lesions``: that one alone.
    A missing grade falls back to the other.
    """
    if rule not in COMBINE_RULES:
        raise ValueError(f"unknown combination rule {rule!r} ({', '.join(COMBINE_RULES)})")
    if classifier is None or lesions is None:
        value = classifier if lesions is None else lesions
        if value is None:
            raise ValueError("no grade to combine")
        return int(value)
    if rule == "classifier":
        return int(classifier)
    if rule == "lesions":
        return int(lesions)
    return int(max(classifier, lesions))


def grade_record(grade: int) -> dict[str, Any]:
    """The grade, its name and the referable flag."""
    return {
        "grade": int(grade),
        "grade_name": GRADE_NAMES[int(grade)],
        "referable": bool(grade >= REFERABLE_GRADE),
    }
