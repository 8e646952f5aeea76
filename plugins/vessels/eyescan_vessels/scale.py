"""Any resolution: photographs resampled to the scale a vessel model was trained at.

Policy:

- A model card may carry ``model_scale: {"fov_diameter": D}``: the diameter in
  pixels of the field of view (FOV) of the images the model was trained on. The
  recipe key ``"fov_diameter": D`` sets it at training time; training then
  resamples every training (and validation) photo so that its FOV diameter is
  ``D`` (the vessel mask by area average then ``>= 0.5``, the FOV mask by nearest
  neighbour), with no tolerance window.
- At predict and evaluate time the photo's FOV diameter is measured (the larger
  side of the bounding box of the shipped or estimated FOV mask), the photo is
  resampled by ``D / measured`` (area average when shrinking, bicubic when
  enlarging), the network runs at that scale (tiled as always) and the
  probability map is resized back to the photo's size (bilinear). Outputs, masks
  and metrics are therefore always at the photo's resolution. A factor within
  :data:`SKIP` (0.9–1.1) is not applied (no loss for photos already at scale).
- Work is bounded by the model's scale: the resampled photo's longer side is at
  most :data:`MAX_SIDE` × ``D`` (guards against a failed, tiny FOV estimate).
- A card without ``model_scale`` (every model trained before this policy) runs
  exactly as before: no resampling, the network sees the photo at its own size
  (a huge photo then costs what its size costs; nothing is capped).

Resampling uses Pillow: ``BOX`` is its area average, ``BICUBIC`` and ``BILINEAR``
as named; enlarging a probability map uses OpenCV's bilinear (the same numbers, see
:func:`resize_probability`). Torch-free.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

#: Factors inside this window are not applied at predict/evaluate time.
SKIP = (0.9, 1.1)
#: The resampled photo's longer side is at most this many FOV diameters.
MAX_SIDE = 4.0


def target_diameter(card: dict[str, Any] | None) -> float | None:
    """The FOV diameter (pixels) a model card says its model works at, or None."""
    scale = (card or {}).get("model_scale") or {}
    value = scale.get("fov_diameter") if isinstance(scale, dict) else None
    return float(value) if value else None


def fov_diameter(fov: np.ndarray) -> int:
    """The FOV's diameter: the larger side of its bounding box (0 for an empty mask)."""
    rows = np.flatnonzero(fov.any(axis=1))
    cols = np.flatnonzero(fov.any(axis=0))
    if rows.size == 0:
        return 0
    return int(max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1))


def factor(fov: np.ndarray, target: float | None, skip: tuple[float, float] | None = SKIP) -> float:
    """The resampling factor ``target / measured`` for a photo with FOV ``fov``.

    1.0 when the model has no scale, the FOV is empty, or the factor lies inside
    ``skip`` (``None``: always resample, as training does). Capped so that the
    longer side of the result is at most :data:`MAX_SIDE` × ``target``.
    """
    measured = fov_diameter(fov)
    if not target or measured == 0:
        return 1.0
    value = min(target / measured, MAX_SIDE * target / max(fov.shape))
    if skip is not None and skip[0] <= value <= skip[1]:
        return 1.0
    return float(value)


def scaled_shape(shape: tuple[int, ...], value: float) -> tuple[int, int]:
    """``(height, width)`` of a ``shape[:2]`` image resampled by ``value``."""
    return max(1, round(shape[0] * value)), max(1, round(shape[1] * value))


def resize_image(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A uint8 H×W×3 photo resampled to ``shape``: area average shrinking, bicubic enlarging."""
    h, w = image.shape[:2]
    method = Image.Resampling.BOX if shape[0] * shape[1] < h * w else Image.Resampling.BICUBIC
    resized = Image.fromarray(np.ascontiguousarray(image)).resize((shape[1], shape[0]), method)
    return np.asarray(resized)


def _float(array: np.ndarray, shape: tuple[int, int], method: Image.Resampling) -> np.ndarray:
    plane = Image.fromarray(np.ascontiguousarray(array, dtype=np.float32))  # mode "F"
    return np.asarray(plane.resize((shape[1], shape[0]), method), dtype=np.float32)


def resize_vessels(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A bool vessel mask resampled to ``shape``: area average, then ``>= 0.5``."""
    return _float(mask, shape, Image.Resampling.BOX) >= 0.5


def resize_fov(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A bool FOV mask resampled to ``shape`` by nearest neighbour."""
    plane = Image.fromarray(mask.astype(np.uint8) * 255)
    return np.asarray(plane.resize((shape[1], shape[0]), Image.Resampling.NEAREST)) > 127


def resize_probability(prob: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A float32 probability map resized (bilinear) to ``shape``, kept in [0, 1].

    Enlarging (the usual case: a large photo run at the model's scale) uses OpenCV's
    bilinear, equal to Pillow's to 1.2e-7 and on an 8-MP photo 10× faster, with one
    output array instead of Pillow's three copies (about 12 bytes a pixel less at the
    peak); shrinking keeps Pillow's (which averages over the footprint).
    """
    if prob.shape[:2] == tuple(shape):
        return prob
    if shape[0] >= prob.shape[0] and shape[1] >= prob.shape[1]:
        import cv2

        out = cv2.resize(
            np.ascontiguousarray(prob, dtype=np.float32),
            (shape[1], shape[0]),
            interpolation=cv2.INTER_LINEAR,
        )
        return np.clip(out, 0.0, 1.0, out=out)
    return np.clip(_float(prob, shape, Image.Resampling.BILINEAR), 0.0, 1.0)


def to_diameter(
    image: np.ndarray, vessels: np.ndarray, fov: np.ndarray, target: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A training photo and its masks resampled so that the FOV diameter is ``target``."""
    value = factor(fov, target, skip=None)
    if value == 1.0:
        return image, vessels, fov
    shape = scaled_shape(image.shape, value)
    return resize_image(image, shape), resize_vessels(vessels, shape), resize_fov(fov, shape)
