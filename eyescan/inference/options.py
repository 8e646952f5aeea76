"""Reading the predict options every task shares: ``--threshold`` and a ``--fov`` mask.

Torch-free; plugins use them through ``eyescan.api`` (``api.operating_threshold``,
``api.given_fov``) so each task checks them the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from eyescan.errors import DataError, EyescanError


def operating_threshold(options: Any, default: float | None = None) -> float | None:
    """The user's ``--threshold`` (``options["threshold"]``), else ``default``; a value
    outside (0, 1) is an :class:`EyescanError`."""
    value = options.get("threshold")
    if value is None:
        return default
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise EyescanError(f"--threshold must be a number in (0, 1), not {value!r}") from None
    if not 0.0 < value < 1.0:
        raise EyescanError(f"--threshold must be in (0, 1) (exclusive), not {value:g}")
    return value


def given_fov(provided: Any, image: np.ndarray, source: str) -> np.ndarray | None:
    """The FOV mask given for this photo (``provided["fov"]``) as bool H×W, or None;
    a mask whose shape is not the photo's is a :class:`DataError` naming ``source``."""
    fov = (provided or {}).get("fov")
    if fov is None:
        return None
    fov = np.asarray(fov)
    if fov.shape != image.shape[:2]:
        got = "x".join(str(n) for n in fov.shape[::-1])
        raise DataError(
            f"{source}: the given FOV mask is {got} pixels, the photo "
            f"{image.shape[1]}x{image.shape[0]}"
        )
    return fov.astype(bool, copy=False)
