"""ROP data: readers, the seed's preprocessing, class balancing and patient-grouped folds.

Labels: 0 ``normal``, 1 ``rop`` (ROP not requiring treatment), 2 ``tr-rop``
(treatment-requiring ROP). Stage 1 sees all images (normal vs ROP = labels 1
and 2); stage 2 sees the ROP images only (non-TR vs TR). ``Treated`` /
``Not-Treated`` (as ROP-DRAGON's ``treatment`` column says) read as ``tr-rop`` /
``rop``: every image of such a table shows ROP.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eyescan.api import (
    ClassFolderReader,
    DataError,
    Sample,
    fundus,
    imageio,
    read_csv_rows,
    read_task_split,
    split_of,
    splits,
)
from eyescan_rop.fov import InfantFov, infant_fov, square_view

LABELS = ("normal", "rop", "tr-rop")
_ALIASES = {
    "0": 0,
    "normal": 0,
    "1": 1,
    "rop": 1,
    "non-tr": 1,
    "non-tr-rop": 1,
    "not-treated": 1,
    "not treated": 1,
    "non-treated": 1,
    "untreated": 1,
    "2": 2,
    "tr": 2,
    "tr-rop": 2,
    "trrop": 2,
    "treated": 2,
}
#: CLAHE runs on the image scaled down to at most this side (then resized to the input size).
WORK_SIZE = 512


def parse_label(text: str, where: str) -> int:
    label = _ALIASES.get(text.strip().lower())
    if label is None:
        raise DataError(
            f"{where}: label {text!r} is not one of normal, rop, tr-rop "
            "(or 0, 1, 2; Treated, Not-Treated)"
        )
    return label


class RopManifestReader:
    """CSV with columns ``image``, ``label`` and optional ``patient`` and ``split``.

    Labels are ``normal``/``rop``/``tr-rop``, 0/1/2 or ``Treated``/``Not-Treated``.
    Paths are relative to the CSV. ``split`` (``train``/``val``/``test``, any
    case) marks a row's split; rows without one are left to the hold-out rule.
    Other column names map with ``--columns``, e.g. ROP-DRAGON's
    ``image=path,label=treatment,patient=infant``.
    """

    description = "CSV manifest: image, label (normal|rop|tr-rop), [patient], [split]"

    def detect(self, path: Path) -> bool:
        return Path(path).suffix.lower() == ".csv" and Path(path).is_file()

    def read(self, path: Path, columns: dict[str, str] | None = None) -> list[Sample]:
        path = Path(path)
        rows = read_csv_rows(path, ("image", "label"), columns)
        stems = Counter(Path(row["image"]).stem for row in rows)
        samples = []
        for number, row in enumerate(rows, start=2):
            where = f"{path}:{number}"
            name = Path(row["image"])
            # The file name is the id, unless two rows share it (then the relative path).
            sid = name.stem if stems[name.stem] == 1 else name.with_suffix("").as_posix()
            samples.append(
                Sample(
                    sid,
                    path.parent / name,
                    label=parse_label(row["label"], where),
                    split=split_of(row.get("split"), where),
                    patient=row.get("patient") or None,
                )
            )
        if not samples:
            raise DataError(f"{path}: no rows")
        return samples


def folder_reader() -> ClassFolderReader:
    """Class folders ``[train|test/]normal|rop|tr-rop/<images>``."""
    return ClassFolderReader(list(LABELS))


def enhance(image: np.ndarray, fov: InfantFov | None = None) -> np.ndarray:
    """The seed's enhancement on the infant FOV: float32 in [0, 1], side ≤ WORK_SIZE.

    Black outside the circular field of view (:func:`eyescan_rop.fov.infant_fov`,
    estimated when not given), cropped to it, padded to a square (the eye stays
    round; a photo without a border is padded as it is), CLAHE. Large photos
    are scaled down first so CLAHE's tiles cover the same anatomy at any size.
    """
    square, _ = square_view(image, fov or infant_fov(image))
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
    data: RopData, index: np.ndarray, fraction: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``(train, val)`` indices of the images ``index``: a grouped, stratified hold-out.

    Images the data set marks ``val`` are the validation set when there are
    any; otherwise :func:`eyescan.api.splits.hold_out` sets about ``fraction``
    of the patients aside (the core's rule, by label, patient or image id).
    """
    index = np.asarray(index, np.int64)
    marked = np.array([data.splits[i] == "val" for i in index], bool)
    if marked.any():
        return index[~marked], index[marked]
    if fraction <= 0:
        return index, np.zeros(0, np.int64)
    kept, held = splits.hold_out(
        [int(i) for i in index],
        fraction,
        seed,
        label=lambda i: int(data.labels[i]),
        group=lambda i: data.groups[i],
        ident=lambda i: data.ids[i],
    )
    return np.asarray(kept, np.int64), np.asarray(held, np.int64)


@dataclass
class RopData:
    """A preprocessed split of a data set, held in memory."""

    images: np.ndarray  # uint8 N×3×S×S, CLAHE applied
    labels: np.ndarray  # 0 normal, 1 ROP, 2 TR-ROP
    groups: list[str | None]  # patient ids
    ids: list[str]
    paths: list[str]
    splits: list[str | None]  # as the data set marks them (train, val, test or None)
    source: str
    reader: str
    info: dict[str, Any]  # how the split was chosen (eyescan.api.read_split)


def load_data(data: Path, split: str, size: int, options: dict[str, Any]) -> RopData:
    """The ``split`` of ``data`` by the core's rule (reader, ``columns``, ``holdout`` options)."""
    chosen = read_task_split("rop", data, options, split)
    samples = chosen.samples
    unlabelled = [s.image for s in samples if s.label is None]
    if unlabelled:
        raise DataError(f"{unlabelled[0]}: no label (normal, rop or tr-rop)")
    return RopData(
        load_images(samples, size),
        np.array([s.label for s in samples], np.int64),
        [s.patient for s in samples],
        [s.id for s in samples],
        [str(s.image) for s in samples],
        [s.split for s in samples],
        str(data),
        chosen.reader,
        dict(chosen.info),
    )
