"""ROP data: readers, the seed's preprocessing, class balancing, augmentation and folds.

Labels: 0 ``normal``, 1 ``rop`` (ROP not requiring treatment), 2 ``tr-rop``
(treatment-requiring ROP). Stage 1 sees all images (normal vs ROP = labels 1
and 2); stage 2 sees the ROP images only (non-TR vs TR).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eyescan.api import ClassFolderReader, DataError, Sample, fundus, imageio, read_csv_rows

LABELS = ("normal", "rop", "tr-rop")
_ALIASES = {
    "0": 0,
    "normal": 0,
    "1": 1,
    "rop": 1,
    "non-tr": 1,
    "non-tr-rop": 1,
    "2": 2,
    "tr": 2,
    "tr-rop": 2,
    "trrop": 2,
}
#: CLAHE runs on the image scaled down to at most this side (then resized to the input size).
WORK_SIZE = 512


@dataclass
class RopSample(Sample):
    """A labelled image and, when the manifest gives it, its patient id (for grouped folds)."""

    patient: str | None = None


def parse_label(text: str, where: str) -> int:
    label = _ALIASES.get(text.strip().lower())
    if label is None:
        raise DataError(f"{where}: label {text!r} is not one of normal, rop, tr-rop (or 0, 1, 2)")
    return label


class RopManifestReader:
    """CSV with columns ``image``, ``label`` and optional ``patient`` and ``split``.

    Labels are ``normal``/``rop``/``tr-rop`` or 0/1/2. Paths are relative to the
    CSV. Rows without a ``split`` value belong to every split.
    """

    description = "CSV manifest: image, label (normal|rop|tr-rop), [patient], [split]"

    def detect(self, path: Path) -> bool:
        return Path(path).suffix.lower() == ".csv" and Path(path).is_file()

    def read(self, path: Path, split: str) -> list[RopSample]:
        path = Path(path)
        rows = read_csv_rows(path, ("image", "label"))
        samples = []
        for number, row in enumerate(rows, start=2):
            if (row.get("split") or "").strip() not in ("", split):
                continue
            label = parse_label(row["label"] or "", f"{path}:{number}")
            image = path.parent / row["image"]
            patient = (row.get("patient") or "").strip() or None
            samples.append(RopSample(Path(row["image"]).stem, image, label=label, patient=patient))
        if not samples:
            raise DataError(f"{path}: no rows for split {split!r}")
        return samples


def folder_reader() -> ClassFolderReader:
    """Class folders ``[train|test/]normal|rop|tr-rop/<images>``."""
    return ClassFolderReader(list(LABELS))


def enhance(image: np.ndarray) -> np.ndarray:
    """The seed's enhancement: pad to square, CLAHE; float32 in [0, 1], side ≤ WORK_SIZE.

    Padding (instead of squashing) keeps the eye round; large photos are
    scaled down first so CLAHE's tiles cover the same anatomy at any size.
    """
    square = fundus.pad_to_square(np.asarray(image))
    if square.shape[0] > WORK_SIZE:
        square = fundus.resize(square, WORK_SIZE)
    return fundus.clahe(square, clip_limit=0.01)


def to_input(enhanced: np.ndarray, size: int) -> np.ndarray:
    """Resize an enhanced image to the network input (size², float32 in [0, 1])."""
    if enhanced.shape[0] == size and enhanced.shape[1] == size:
        return enhanced.astype(np.float32)
    return np.clip(fundus.resize(enhanced.astype(np.float32), size), 0.0, 1.0)


def load_images(samples: list[Sample], size: int) -> np.ndarray:
    """Read and preprocess every sample: uint8 N×3×size×size (CLAHE applied)."""
    out = np.empty((len(samples), 3, size, size), np.uint8)
    for i, sample in enumerate(samples):
        x = to_input(enhance(imageio.read_image(sample.image)), size)
        out[i] = imageio.probability_to_uint8(x).transpose(2, 0, 1)
    return out


def stage_targets(labels: np.ndarray, stage: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the images a stage trains on and their binary targets.

    Stage 1: every image, target ROP (label ≥ 1). Stage 2: ROP images only,
    target TR-ROP (label 2).
    """
    labels = np.asarray(labels)
    if stage == 1:
        return np.arange(len(labels)), (labels >= 1).astype(np.int64)
    if stage == 2:
        index = np.flatnonzero(labels >= 1)
        return index, (labels[index] == 2).astype(np.int64)
    raise DataError(f"stage must be 1 (normal/ROP) or 2 (non-TR/TR-ROP), got {stage}")


def balance_by_rotation(targets: np.ndarray, seed: int = 0) -> list[tuple[int, int]]:
    """The seed's offline balancing: ``(index, quarter_turns)`` pairs.

    Every image once unrotated, plus copies of minority-class images rotated
    by 90° (1 quarter turn) and then 180° (2) until the classes are about 1:1
    (at most three times the minority).
    """
    targets = np.asarray(targets)
    pairs = [(int(i), 0) for i in range(len(targets))]
    counts = np.bincount(targets, minlength=2)
    if counts.min() == 0:
        return pairs
    minority = int(np.argmin(counts))
    members = np.flatnonzero(targets == minority)
    members = np.random.default_rng(seed).permutation(members)
    need = int(counts.max() - counts.min())
    for turns in (1, 2):
        take = members[: min(need, len(members))]
        pairs += [(int(i), turns) for i in take]
        need -= len(take)
    return pairs


@dataclass
class AugmentConfig:
    """Online augmentation: flips, rotation and a mild affine transform."""

    hflip: bool = True
    vflip: bool = True
    rotation: float = 30.0  # maximum absolute angle, degrees
    translate: float = 0.05  # fraction of the side
    scale: tuple[float, float] = (0.9, 1.1)
    shear: float = 5.0  # degrees
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> AugmentConfig:
        values = dict(values or {})
        known = {k: values.pop(k) for k in list(values) if k in cls.__dataclass_fields__}
        if "scale" in known:
            known["scale"] = tuple(known["scale"])
        return cls(**known, extra=values)


def augment(image, config: AugmentConfig, generator):
    """One random flip/rotation/affine of a float 3×S×S tensor (black fill)."""
    import torch
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    def uniform(low: float, high: float) -> float:
        return low + (high - low) * float(torch.rand((), generator=generator))

    flips = torch.rand(2, generator=generator)
    if config.hflip and flips[0] < 0.5:
        image = image.flip(-1)
    if config.vflip and flips[1] < 0.5:
        image = image.flip(-2)
    side = image.shape[-1]
    shift = config.translate * side
    return TF.affine(
        image,
        angle=uniform(-config.rotation, config.rotation),
        translate=[uniform(-shift, shift), uniform(-shift, shift)],
        scale=uniform(*config.scale),
        shear=[uniform(-config.shear, config.shear), 0.0],
        interpolation=InterpolationMode.BILINEAR,
    )


def grouped_folds(
    labels: np.ndarray, groups: list[str | None] | None, k: int, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` stratified folds ``(train, held_out)``, never splitting a patient's images.

    Stratified on the three-class label; images without a patient id are their
    own group.
    """
    import warnings

    from sklearn.model_selection import StratifiedGroupKFold

    labels = np.asarray(labels)
    if k < 2 or k > len(labels):
        raise DataError(f"cannot make {k} folds of {len(labels)} images")
    ids = [g if g else f"#image{i}" for i, g in enumerate(groups or [None] * len(labels))]
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # fewer members than folds in a class
        return [
            (np.asarray(a), np.asarray(b))
            for a, b in splitter.split(np.zeros(len(labels)), labels, ids)
        ]


def validation_split(
    labels: np.ndarray, groups: list[str | None] | None, fraction: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Hold out about ``fraction`` of the images (grouped, stratified) for early stopping."""
    if fraction <= 0:
        return np.arange(len(labels)), np.arange(0)
    k = max(2, round(1 / fraction))
    return grouped_folds(labels, groups, k, seed)[0]
