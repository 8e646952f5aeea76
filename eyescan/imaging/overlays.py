"""Drawing results over images: coloured masks and boxes."""

from __future__ import annotations

import numpy as np


def overlay_mask(
    image: np.ndarray,
    mask: np.ndarray,
    color: tuple[int, int, int] = (0, 255, 0),
    alpha: float = 0.6,
) -> np.ndarray:
    """Blend ``color`` into ``image`` (uint8 RGB) where ``mask`` is true."""
    out = image.astype(np.float32).copy()
    m = np.asarray(mask, dtype=bool)
    out[m] = (1 - alpha) * out[m] + alpha * np.asarray(color, dtype=np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
