"""Is this fundus photograph gradable? A fast, measured quality gate.

:func:`assess` measures a photograph (:func:`measure`) and compares the measures
with :class:`Thresholds` (:func:`judge`). Every measure is taken at a fixed
scale, relative to the field of view (FOV), so the answer does not depend on the
camera's resolution:

* the photograph is first shrunk (area averaging) to at most :data:`WORK_SIDE`
  pixels on its long side and the FOV is found there (or the user's mask shrunk);
* the FOV's bounding box is then resized so the FOV is :data:`FOCUS_DIAMETER`
  pixels across, where sharpness, exposure and illumination are measured.

The measures (keys of ``Quality.measures``):

``fov_fraction``
    FOV area / frame area (0 when no FOV is found).
``fov_diameter_px``
    FOV diameter in original pixels: the longer side of the FOV's bounding box
    (a disc cut at the top and bottom by the frame keeps its width).
``sharpness``
    Fine-detail contrast of the green channel ``g`` inside the FOV eroded by 4 %
    of its diameter, at a 256-px FOV: ``100 * rms(g - G1 g) / (mean g + 1)``, with
    ``G1`` a Gaussian blur of sigma 1 px (the outside of the FOV is filled with
    the FOV's smoothed values first, so its edge adds nothing). A blur of sigma
    1 % of the FOV diameter (2.6 px here) removes most of that band. Relative to
    the mean, so a gain of the image cancels out.
``luminance_median``
    Median luminance (0.299 R + 0.587 G + 0.114 B, 0-255) inside the FOV.
``clipped_fraction``
    Fraction of FOV pixels whose luminance is at least :data:`CLIP_LEVEL`.
``illumination_cv``
    Coefficient of variation (std / mean) of the luminance low-passed with a
    Gaussian of sigma 10 % of the FOV diameter (normalised convolution inside
    the FOV), over the central FOV (eroded by 10 % of its diameter): high for a
    photograph lit from one side or strongly vignetted.

The reasons (``Quality.reasons``, in this order): ``invalid_image`` (not an
H×W or H×W×C array), ``no_field_of_view`` (FOV under :data:`NO_FOV_FRACTION` of
the frame: a black frame, a crop outside the eye, an image a few pixels wide;
nothing else is judged), ``small_field_of_view``, ``blurred``,
``underexposed``, ``overexposed``, ``uneven_illumination``.

Default thresholds come from ``quality_thresholds.json`` next to this module,
written by ``scripts/quality_calibrate.py`` (docs/quality.md).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from typing import Any

import numpy as np

#: Long side (px) the photograph is shrunk to before the FOV is found.
WORK_SIDE = 512
#: FOV diameter (px) at which sharpness, exposure and illumination are measured.
#: 256 and not more: some data sets (APTOS copies) have FOVs of ~224 px, and an
#: upscaled photograph looks blurred.
FOCUS_DIAMETER = 256
#: Luminance at or above which a pixel counts as clipped (over-exposed).
CLIP_LEVEL = 250
#: An FOV covering less of the frame than this is no FOV at all.
NO_FOV_FRACTION = 0.01
#: Brightness (max of R, G, B) above which a pixel may belong to the FOV, at least.
FOV_MIN_LEVEL = 12
#: ... and at least this fraction of the frame's 99th brightness percentile.
FOV_RELATIVE_LEVEL = 0.1

REASONS = (
    "invalid_image",
    "no_field_of_view",
    "small_field_of_view",
    "blurred",
    "underexposed",
    "overexposed",
    "uneven_illumination",
)

_THRESHOLDS_FILE = "quality_thresholds.json"


def _file_thresholds() -> dict[str, float]:
    """The thresholds recorded in ``quality_thresholds.json`` (package data)."""
    text = resources.files("eyescan.imaging").joinpath(_THRESHOLDS_FILE).read_text("utf-8")
    return {name: float(value) for name, value in json.loads(text)["thresholds"].items()}


_DEFAULTS = _file_thresholds()


@dataclass(frozen=True)
class Thresholds:
    """Limits on the measures; defaults from ``quality_thresholds.json``.

    Override some with ``Thresholds(min_sharpness=0.3)`` or
    ``dataclasses.replace(thresholds, ...)``. A measure equal to its limit passes.
    """

    min_fov_fraction: float = field(default=_DEFAULTS["min_fov_fraction"])
    min_fov_diameter_px: float = field(default=_DEFAULTS["min_fov_diameter_px"])
    min_sharpness: float = field(default=_DEFAULTS["min_sharpness"])
    min_luminance: float = field(default=_DEFAULTS["min_luminance"])
    max_luminance: float = field(default=_DEFAULTS["max_luminance"])
    max_clipped_fraction: float = field(default=_DEFAULTS["max_clipped_fraction"])
    max_illumination_cv: float = field(default=_DEFAULTS["max_illumination_cv"])

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Thresholds:
        """Thresholds from a mapping (unknown keys ignored, missing ones default)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: float(v) for k, v in values.items() if k in names})

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Quality:
    """The verdict on one photograph: gradable, why not, and the raw measures."""

    gradable: bool
    reasons: tuple[str, ...]
    measures: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        """``{"gradable": bool, "reasons": [...], "measures": {...}}``."""
        return {
            "gradable": self.gradable,
            "reasons": list(self.reasons),
            "measures": dict(self.measures),
        }


def assess(
    image: np.ndarray, fov: np.ndarray | None = None, thresholds: Thresholds | None = None
) -> Quality:
    """Measure a photograph (uint8 H×W×3 RGB, any size) and judge it gradable or not.

    ``fov`` is an optional bool H×W field-of-view mask (estimated when None).
    Never raises on odd arrays: they come back ungradable with a reason.
    """
    thresholds = thresholds or Thresholds()
    try:
        rgb = _as_rgb(image)
    except (TypeError, ValueError):
        return Quality(False, ("invalid_image",), {})
    mask = None
    if fov is not None:
        mask = np.asarray(fov)
        if mask.shape[:2] != rgb.shape[:2]:
            return Quality(False, ("invalid_image",), {})
    measures = measure(rgb, mask)
    reasons = judge(measures, thresholds)
    return Quality(not reasons, reasons, measures)


def judge(measures: dict[str, float], thresholds: Thresholds) -> tuple[str, ...]:
    """The reasons the measures fail the thresholds (empty: gradable)."""
    if measures.get("fov_fraction", 0.0) < NO_FOV_FRACTION:
        return ("no_field_of_view",)
    t, m = thresholds, measures
    if "sharpness" not in m:  # an FOV too thin to measure (a strip of a few pixels)
        return ("small_field_of_view",)
    reasons = []
    if m["fov_fraction"] < t.min_fov_fraction or m["fov_diameter_px"] < t.min_fov_diameter_px:
        reasons.append("small_field_of_view")
    if m["sharpness"] < t.min_sharpness:
        reasons.append("blurred")
    if m["luminance_median"] < t.min_luminance:
        reasons.append("underexposed")
    if m["luminance_median"] > t.max_luminance or m["clipped_fraction"] > t.max_clipped_fraction:
        reasons.append("overexposed")
    if m["illumination_cv"] > t.max_illumination_cv:
        reasons.append("uneven_illumination")
    return tuple(reasons)


def measure(image: np.ndarray, fov: np.ndarray | None = None) -> dict[str, float]:
    """The raw measures of a photograph (see the module docstring), rounded.

    Only ``fov_fraction`` and ``fov_diameter_px`` when no FOV is found.
    """
    import cv2

    rgb = _as_rgb(image)
    h, w = rgb.shape[:2]
    step = -(-max(h, w) // WORK_SIDE)  # an integer factor: OpenCV's fast area path
    size = (max(1, w // step), max(1, h // step))
    small = (
        rgb
        if step == 1
        else cv2.resize(rgb[: size[1] * step, : size[0] * step], size, interpolation=cv2.INTER_AREA)
    )
    if fov is None:
        mask = _estimate_fov(small)
    else:
        mask = np.asarray(fov).astype(np.uint8) * 255
        if step != 1:
            mask = cv2.resize(
                mask[: size[1] * step, : size[0] * step], size, interpolation=cv2.INTER_AREA
            )
        mask = mask > 127
    fraction = float(mask.mean()) if mask.size else 0.0
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if fraction < NO_FOV_FRACTION or rows.size < 2 or cols.size < 2:
        return {"fov_fraction": round(fraction, 4), "fov_diameter_px": 0.0}
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    diameter = max(bottom - top, right - left)
    measures = {
        "fov_fraction": round(fraction, 4),
        "fov_diameter_px": round(float(diameter * step), 1),
    }
    # The FOV's box at a FOCUS_DIAMETER-px FOV.
    factor = FOCUS_DIAMETER / diameter
    crop, crop_mask = small[top:bottom, left:right], mask[top:bottom, left:right]
    out = (max(1, round((right - left) * factor)), max(1, round((bottom - top) * factor)))
    method = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    work = cv2.resize(np.ascontiguousarray(crop), out, interpolation=method)
    work_mask = cv2.resize(crop_mask.astype(np.uint8) * 255, out, interpolation=method) > 127
    if work_mask.sum() < 16:
        return measures
    measures.update(_measure_work(work, work_mask))
    return measures


def _measure_work(work: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Sharpness, exposure and illumination at a FOCUS_DIAMETER-px FOV."""
    import cv2

    rgb = work.astype(np.float32)
    luminance = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    inside = luminance[mask]
    median = float(np.median(inside))
    clipped = float((inside >= CLIP_LEVEL).mean())

    m = mask.astype(np.float32)
    green = rgb[..., 1]
    green = np.where(mask, green, _masked_blur(green, m, 0.06 * FOCUS_DIAMETER))
    fine = green - cv2.GaussianBlur(green, (0, 0), 1.0)
    core = _erode(mask, round(0.04 * FOCUS_DIAMETER))
    core = core if core.sum() >= 16 else mask
    sharpness = 100.0 * _rms(fine[core]) / (float(green[core].mean()) + 1.0)

    low = _masked_blur(luminance, m, 0.1 * FOCUS_DIAMETER)
    central = _erode(mask, round(0.1 * FOCUS_DIAMETER))
    central = central if central.sum() >= 16 else mask
    values = low[central]
    cv = float(values.std() / (values.mean() + 1.0))
    return {
        "sharpness": round(float(sharpness), 4),
        "luminance_median": round(median, 1),
        "clipped_fraction": round(clipped, 4),
        "illumination_cv": round(cv, 4),
    }


def _estimate_fov(small: np.ndarray) -> np.ndarray:
    """The FOV of a (shrunk) photograph: bright pixels, opened, largest blob, holes filled.

    A pixel is bright when its largest channel exceeds :data:`FOV_MIN_LEVEL` and
    :data:`FOV_RELATIVE_LEVEL` × the frame's 99th percentile of that channel, so a
    dim photograph keeps its FOV (and is then found underexposed) while a black
    frame or a crop of the background has none.
    """
    import cv2

    brightness = small.max(axis=2)
    counts = np.cumsum(np.bincount(brightness.ravel(), minlength=256))
    p99 = int(np.searchsorted(counts, 0.99 * counts[-1]))
    level = max(FOV_MIN_LEVEL, FOV_RELATIVE_LEVEL * p99)
    mask = (brightness > level).astype(np.uint8)
    radius = max(1, min(mask.shape) // 100)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count < 2:
        return np.zeros(mask.shape, bool)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    blob = (labels == largest).astype(np.uint8)
    contours, _ = cv2.findContours(blob, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(blob, contours, -1, 1, thickness=cv2.FILLED)
    return blob.astype(bool)


def _masked_blur(values: np.ndarray, weights: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of ``values`` inside ``weights`` (normalised convolution)."""
    import cv2

    num = cv2.GaussianBlur(values * weights, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)
    den = cv2.GaussianBlur(weights, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)
    return num / np.maximum(den, 1e-6)


def _erode(mask: np.ndarray, radius: int) -> np.ndarray:
    import cv2

    if radius < 1:
        return mask
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    eroded = cv2.erode(mask.astype(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return eroded.astype(bool)


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(values, dtype=np.float64)))) if values.size else 0.0


def _as_rgb(image: Any) -> np.ndarray:
    """A C-contiguous uint8 H×W×3 array, or ValueError for what is not an image."""
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4) or array.size == 0:
        raise ValueError(f"not an image array: shape {array.shape}")
    array = array[..., :3]
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    elif array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.number):
            raise ValueError(f"not an image array: dtype {array.dtype}")
        values = np.nan_to_num(array.astype(np.float32))
        if np.issubdtype(array.dtype, np.floating) and values.size and values.max() <= 1.0:
            values = values * 255.0
        array = np.clip(values, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(array)
