"""Plus-disease vascular severity from a vessel probability map (an approximation).

Plus disease is dilation and tortuosity of the posterior-pole vessels. The
published tools measure it on vessel maps: ROPtool (Wallace et al.,
J AAPOS 2007; tortuosity and width of traced vessels within one disc
diameter ring), CAIAR (Wilson et al., Br J Ophthalmol 2008; width and
tortuosity of each vessel, semi-automatic) and the i-ROP vascular severity
score (Brown et al., JAMA Ophthalmol 2018; Redd et al., Br J Ophthalmol
2019: a 1–9 score from a deep network trained on expert plus labels, not a
formula). Ours is a transparent approximation of the first two, on the
vessel map another task provides (``vessel_probability``):

1. **Scale.** The map is cropped to the FOV and resampled so that the FOV
   diameter is :data:`REFERENCE_DIAMETER` pixels: the same eye at 640×480 or
   1600×1200 gives the same numbers. The rim (:data:`RIM` × D) is dropped
   (reflection rings read as vessels).
2. **Posterior pole.** Vessels are ``probability ≥ 0.5``. The pole's centre
   is where they converge, the peak of the vessel density smoothed with a
   Gaussian of σ = :data:`CENTRE_SIGMA` × D (the disc, where the arcades
   meet); the pole is the disc of radius :data:`POLE_RADIUS` × D around it.
3. **Tortuosity** ``T``: the skeleton of the pole's vessels is cut at its
   branch points into segments; each segment at least :data:`MIN_SEGMENT` × D
   long gives ``arc / chord − 1`` (arc: 8-connected path length, chord: the
   distance between its two ends); ``T`` is their length-weighted mean.
4. **Width** ``W``: twice the distance transform of the vessel mask on the
   skeleton (the local diameter), averaged, as a fraction of D.
5. ``vascular_severity = T / T_REF + W / W_REF``: each sign scaled by a
   round reference value fixed before any real photograph was looked at
   (:data:`T_REF` 5 % excess length, :data:`W_REF` 1 % of the FOV diameter)
   and weighted equally. Higher = more severe; no threshold for plus is
   claimed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from eyescan.api import fundus
from eyescan_rop.fov import InfantFov

#: FOV diameter (pixels) at which everything is measured.
REFERENCE_DIAMETER = 512
#: Vessel probability threshold.
VESSEL_THRESHOLD = 0.5
#: Rim of the FOV left out, fraction of its diameter.
RIM = 0.06
#: σ of the vessel-density smoothing that finds the pole's centre, fraction of D.
CENTRE_SIGMA = 0.05
#: Radius of the posterior pole, fraction of D.
POLE_RADIUS = 0.25
#: Shortest skeleton segment whose tortuosity counts, fraction of D.
MIN_SEGMENT = 0.03
#: Fewest vessel pixels (fraction of the measured FOV) for a score.
MIN_VESSELS = 0.002
#: Reference values of the two signs (fixed a priori, not fitted).
T_REF = 0.05
W_REF = 0.01


def _resampled(prob: np.ndarray, fov: InfantFov) -> tuple[np.ndarray, np.ndarray, float, tuple]:
    """Probability and FOV mask cropped to the FOV at diameter REFERENCE_DIAMETER."""
    top, left, bottom, right = fundus.crop_box(fov.mask)
    scale = REFERENCE_DIAMETER / fov.diameter
    shape = (max(1, round((bottom - top) * scale)), max(1, round((right - left) * scale)))
    p = fundus.resize(np.asarray(prob, np.float32)[top:bottom, left:right], shape)
    m = fundus.resize(fov.mask[top:bottom, left:right], shape)
    return p, m, scale, (top, left)


def _segments(skeleton: np.ndarray) -> tuple[np.ndarray, int]:
    """Skeleton cut at its branch points: labelled segments (8-connected) and their count."""
    from scipy import ndimage

    kernel = np.ones((3, 3), int)
    neighbours = ndimage.convolve(skeleton.astype(int), kernel, mode="constant") - 1
    branch = skeleton & (neighbours >= 3)
    cut = skeleton & ~ndimage.binary_dilation(branch, structure=np.ones((3, 3), bool))
    return ndimage.label(cut, structure=kernel)


def _length(skeleton: np.ndarray) -> float:
    """Length of a skeleton in pixels (1 per orthogonal, √2 per diagonal neighbour pair)."""
    s = skeleton.astype(bool)
    orthogonal = (s[:, 1:] & s[:, :-1]).sum() + (s[1:, :] & s[:-1, :]).sum()
    diagonal = (s[1:, 1:] & s[:-1, :-1]).sum() + (s[1:, :-1] & s[:-1, 1:]).sum()
    return max(1.0, float(orthogonal + np.sqrt(2) * diagonal))


def _tortuosity(labels: np.ndarray, count: int, min_length: float) -> tuple[float, int]:
    """Length-weighted mean ``arc/chord − 1`` of the open segments at least ``min_length`` long."""
    from scipy import ndimage

    if count == 0:
        return float("nan"), 0
    arc = np.zeros(count + 1)
    h, w = labels.shape
    for dy, dx, step in ((0, 1, 1.0), (1, 0, 1.0), (1, 1, np.sqrt(2)), (1, -1, np.sqrt(2))):
        a = labels[: h - dy, max(0, -dx) : w - max(0, dx)]
        b = labels[dy:, max(0, dx) : w - max(0, -dx)]
        same = (a == b) & (a > 0)
        arc += np.bincount(a[same], minlength=count + 1) * step
    on = labels > 0
    degree = ndimage.convolve(on.astype(int), np.ones((3, 3), int), mode="constant") - 1
    ys, xs = np.nonzero(on & (degree == 1))
    ends: dict[int, list[tuple[int, int]]] = {}
    for y, x in zip(ys, xs, strict=True):
        ends.setdefault(int(labels[y, x]), []).append((y, x))
    total, weight, used = 0.0, 0.0, 0
    for label, points in ends.items():
        if len(points) != 2 or arc[label] < min_length:
            continue  # loops and stubs
        (y0, x0), (y1, x1) = points
        chord = float(np.hypot(y1 - y0, x1 - x0))
        if chord <= 0:
            continue
        total += (arc[label] / chord - 1.0) * arc[label]
        weight += arc[label]
        used += 1
    return (total / weight if weight else float("nan")), used


def vascular_severity(prob: np.ndarray, fov: InfantFov) -> dict[str, Any]:
    """The score and its parts for one photo (``vascular_severity`` None when not measurable).

    ``prob``: vessel probability at the photo's size; ``fov``: its
    :func:`eyescan_rop.fov.infant_fov`.
    """
    from scipy import ndimage
    from skimage.morphology import skeletonize

    p, m, scale, (top, left) = _resampled(prob, fov)
    inner = ndimage.distance_transform_edt(np.pad(m, 1))[1:-1, 1:-1] > RIM * REFERENCE_DIAMETER
    vessels = (p >= VESSEL_THRESHOLD) & inner
    parts: dict[str, Any] = {"fov_diameter_px": round(fov.diameter, 1)}
    if vessels.sum() < MIN_VESSELS * max(1, inner.sum()):
        return {"vascular_severity": None, "vascular": {**parts, "status": "too few vessels"}}
    density = ndimage.gaussian_filter(vessels.astype(np.float32), CENTRE_SIGMA * REFERENCE_DIAMETER)
    cy, cx = np.unravel_index(int(np.argmax(density)), density.shape)
    yy, xx = np.ogrid[: p.shape[0], : p.shape[1]]
    pole = (yy - cy) ** 2 + (xx - cx) ** 2 <= (POLE_RADIUS * REFERENCE_DIAMETER) ** 2
    selected = vessels & pole
    skeleton = skeletonize(selected)
    if not skeleton.any():
        return {"vascular_severity": None, "vascular": {**parts, "status": "no vessel skeleton"}}
    labels, count = _segments(skeleton)
    # mean diameter = vessel area / centreline length (soft area: sub-pixel at any resolution)
    near = ndimage.binary_dilation(selected, iterations=2) & pole & inner
    w = float(np.clip(p[near], 0, 1).sum() / _length(skeleton)) / REFERENCE_DIAMETER
    t, used = _tortuosity(labels, count, MIN_SEGMENT * REFERENCE_DIAMETER)
    if not np.isfinite(t):
        return {"vascular_severity": None, "vascular": {**parts, "status": "no vessel segment"}}
    parts.update(
        {
            "status": "ok",
            "tortuosity": round(float(t), 5),
            "width_fraction": round(w, 5),
            "segments": used,
            "pole_centre_xy": [
                round(float(left + cx / scale), 1),
                round(float(top + cy / scale), 1),
            ],
            "pole_vessel_fraction": round(float(selected.sum() / max(1, (pole & inner).sum())), 5),
        }
    )
    return {"vascular_severity": round(float(t / T_REF + w / W_REF), 4), "vascular": parts}
