"""Synthetic ROP fundus images (a test and demo tool; no accuracy claim may rest on them).

Built on :func:`eyescan.api.synthetic.make_fundus`. Every image shows an
immature retina: the vessels stop at a vascular/avascular border, an irregular
closed curve around the optic disc, and the periphery beyond it is avascular.

* ``normal`` (label 0): the border alone, no ridge;
* ``rop`` (label 1, not treatment-requiring): a faint, thin whitish demarcation
  ridge along part of the border;
* ``tr-rop`` (label 2, treatment-requiring): a stronger, wider ridge, and the
  vessels inside the border made tortuous and slightly darker (plus-disease-like).

Photos of one patient share the fundus and its lesions and differ by a small
rotation, exposure and noise, so folds must be split by patient.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

LABEL_NAMES = ("normal", "rop", "tr-rop")
#: Default class proportions (normal, ROP, TR-ROP): ROP is the minority in stage 1
#: and non-TR ROP the minority in stage 2, as in the seed's data set.
PROPORTIONS = (0.6, 0.12, 0.28)


@dataclass
class RopFundus:
    """A synthetic ROP photograph and its truth."""

    image: np.ndarray  # uint8 H×W×3 RGB
    label: int  # 0 normal, 1 ROP (not treatment-requiring), 2 TR-ROP
    ridge: np.ndarray  # bool H×W, where the ridge was painted (empty for normal)
    vascular: np.ndarray  # bool H×W, the vascularised retina inside the border
    fov: np.ndarray  # bool H×W


def _border_radius(theta: np.ndarray, r0: float, rng: np.random.Generator) -> np.ndarray:
    """An irregular closed border: ``r0`` modulated by a few low-frequency waves."""
    radius = np.full(theta.shape, r0, dtype=np.float64)
    for k in (2, 3, 5):
        radius *= 1 + rng.uniform(0.01, 0.04) * np.sin(k * theta + rng.uniform(0, 2 * math.pi))
    return radius


def _inpaint_vessels(image: np.ndarray, vessels: np.ndarray, sigma: float) -> np.ndarray:
    """The background under the vessels, by normalised Gaussian smoothing of the rest."""
    keep = (~vessels).astype(np.float32)
    weight = ndimage.gaussian_filter(keep, sigma)
    out = image.copy()
    for c in range(3):
        smooth = ndimage.gaussian_filter(image[..., c] * keep, sigma)
        out[..., c] = np.where(vessels, smooth / np.maximum(weight, 1e-3), image[..., c])
    return out


def _tortuous_warp(
    shape: tuple[int, int], amplitude: float, wavelength: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Sampling coordinates displaced by a sum of three random plane waves."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    dy, dx = np.zeros(shape), np.zeros(shape)
    for _ in range(3):
        a = rng.uniform(0, math.pi)
        phase = (xx * math.cos(a) + yy * math.sin(a)) * 2 * math.pi / wavelength
        dy += np.sin(phase + rng.uniform(0, 2 * math.pi))
        dx += np.sin(phase + rng.uniform(0, 2 * math.pi))
    scale = amplitude / math.sqrt(3)
    return yy + scale * dy, xx + scale * dx


def make_rop_fundus(size: int = 256, seed: int = 0, label: int = 0) -> RopFundus:
    """One synthetic infant fundus of class ``label`` (0, 1 or 2); deterministic per seed."""
    from eyescan.api import synthetic

    if label not in (0, 1, 2):
        raise ValueError(f"label must be 0 (normal), 1 (ROP) or 2 (TR-ROP), got {label}")
    base = synthetic.make_fundus(size, seed=seed)
    rng = np.random.default_rng([seed, 7919])
    h, w = base.image.shape[:2]
    scale = min(h, w) / 128.0
    image = base.image.astype(np.float32)
    vessels = ndimage.binary_dilation(base.vessels, iterations=1) & base.fov
    background = _inpaint_vessels(image, vessels, 2.0 * scale)
    shading = np.where(vessels[..., None], background - image, 0.0)  # how much vessels darken

    if label == 2:  # plus-disease-like: tortuous, engorged vessels
        coords = _tortuous_warp(
            (h, w), rng.uniform(0.7, 1.2) * scale, rng.uniform(9, 13) * scale, rng
        )
        shading = np.stack(
            [ndimage.map_coordinates(shading[..., c], coords, order=1) for c in range(3)], -1
        )
        shading *= rng.uniform(1.1, 1.25)

    # The vascular/avascular border around the disc; vessels fade out across it.
    dy, dx = np.mgrid[0:h, 0:w].astype(np.float64)
    dy -= base.disc_center[0]
    dx -= base.disc_center[1]
    dist, theta = np.hypot(dy, dx), np.arctan2(dy, dx)
    fov_radius = 0.46 * min(h, w)
    border = _border_radius(theta, rng.uniform(0.9, 1.15) * fov_radius, rng)
    inside = np.clip((border - dist) / (1.5 * scale), 0.0, 1.0)
    pale = np.clip((dist - border) / (4.0 * scale), 0.0, 1.0) * 0.04  # avascular: paler
    out = background - shading * inside[..., None]
    out = out * (1 + pale[..., None])

    ridge = np.zeros((h, w), bool)
    if label > 0:
        # An arc of the border on the far side from the disc (where it lies inside the FOV).
        centre = math.atan2(h / 2 - base.disc_center[0], w / 2 - base.disc_center[1])
        centre += rng.uniform(-0.6, 0.6)
        half = math.radians(rng.uniform(35, 90))
        arc = np.abs(np.angle(np.exp(1j * (theta - centre)))) <= half
        taper = np.clip((half - np.abs(np.angle(np.exp(1j * (theta - centre))))) / 0.25, 0, 1)
        if label == 1:
            strength, width = rng.uniform(0.08, 0.16), rng.uniform(0.6, 0.9) * scale
        else:
            strength, width = rng.uniform(0.2, 0.35), rng.uniform(1.0, 1.6) * scale
        profile = np.exp(-0.5 * ((dist - border) / width) ** 2) * taper * arc * base.fov
        ridge = profile > 0.3
        colour = np.array([255.0, 238.0, 222.0], np.float32)
        alpha = (strength * profile)[..., None].astype(np.float32)
        out = out * (1 - alpha) + colour * alpha

    noise = rng.normal(0.0, 1.5, out.shape).astype(np.float32)
    out = np.where(base.fov[..., None], out + noise, base.image.astype(np.float32))
    image = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return RopFundus(image, label, ridge, (inside > 0.5) & base.fov, base.fov)


def retake(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Another photo of the same eye: small rotation, exposure change and fresh noise."""
    angle = rng.uniform(-12, 12)
    out = ndimage.rotate(image.astype(np.float32), angle, reshape=False, order=1, cval=0.0)
    out = out * rng.uniform(0.88, 1.12) + rng.normal(0.0, 1.5, out.shape)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def class_counts(n: int, proportions: tuple[float, float, float] = PROPORTIONS) -> list[int]:
    """Images per class for ``n`` images (largest remainder), at least 1 of each when n ≥ 3."""
    raw = [n * p / sum(proportions) for p in proportions]
    counts = [int(v) for v in raw]
    for i in sorted(range(3), key=lambda i: raw[i] - counts[i], reverse=True)[: n - sum(counts)]:
        counts[i] += 1
    for i in range(3):
        while n >= 3 and counts[i] == 0:
            j = int(np.argmax(counts))
            counts[j] -= 1
            counts[i] += 1
    return counts


def write_rop_dataset(
    root: Path,
    n_patients: int = 100,
    photos_per_patient: int = 2,
    size: int = 256,
    seed: int = 0,
    proportions: tuple[float, float, float] = PROPORTIONS,
    split: str | None = None,
) -> Path:
    """Write ``root/images/*.png`` and ``root/manifest.csv`` (image, label, patient).

    Labels are class names (``normal``, ``rop``, ``tr-rop``); each patient's
    photos share one label. ``split`` (e.g. ``"test"`` for a fresh test set)
    adds a ``split`` column with that value on every row. Returns the manifest path.
    """
    from PIL import Image

    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    labels = [c for c, k in enumerate(class_counts(n_patients, proportions)) for _ in range(k)]
    order = np.random.default_rng(seed).permutation(n_patients)
    seeds = np.random.SeedSequence(seed).generate_state(n_patients, np.uint32)
    rows = []
    for p in range(n_patients):
        label = labels[int(order[p])]
        fundus = make_rop_fundus(size, int(seeds[p]), label)
        rng = np.random.default_rng([int(seeds[p]), 1])
        for k in range(photos_per_patient):
            image = fundus.image if k == 0 else retake(fundus.image, rng)
            name = f"images/p{p:04d}_{k}.png"
            Image.fromarray(image).save(root / name)
            row = {"image": name, "label": LABEL_NAMES[label], "patient": f"p{p:04d}"}
            rows.append({**row, "split": split} if split else row)
    manifest = root / "manifest.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as handle:
        names = ["image", "label", "patient"] + (["split"] if split else [])
        writer = csv.DictWriter(handle, fieldnames=names)
        writer.writeheader()
        writer.writerows(rows)
    return manifest
