"""Vessel data: the DRIVE folder layout, a CSV manifest, preprocessing and decoded samples.

Readers return every sample of a data set, each marked with its split
(DRIVE: ``training/`` → ``train``, ``test/`` → ``test``; a manifest: its
``split`` column); ``api.read_split`` picks the split a command needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eyescan.api import (
    DataError,
    ManifestReader,
    Sample,
    SplitData,
    find_reader,
    fundus,
    imageio,
    read_task_split,
)

#: DRIVE's folders and the split each holds.
DRIVE_FOLDERS = {"training": "train", "test": "test"}


class DriveReader:
    """DRIVE layout: ``{training,test}/{images,1st_manual,mask}``.

    Images ``21_training.tif``, manual annotations ``21_manual1.gif``, FOV masks
    ``21_training_mask.gif`` (``01_test…`` in ``test/``). Sample ids are the
    image names (``21_training``, ``01_test``).
    """

    description = "DRIVE folders: training|test/images, 1st_manual, mask"
    #: DRIVE's masks are 0/255 grey GIFs: foreground above 127, as always read.
    mask_threshold: int | None = 127

    def detect(self, path: Path) -> bool:
        path = Path(path)
        return any((path / folder / "images").is_dir() for folder in DRIVE_FOLDERS)

    def read(self, path: Path, columns: dict[str, str] | None = None) -> list[Sample]:
        samples = []
        for name, split in DRIVE_FOLDERS.items():
            folder = Path(path) / name
            if (folder / "images").is_dir():
                samples += self._folder(folder, split)
        if not samples:
            raise DataError(f"{path}: no DRIVE images (training|test/images/*.tif) found")
        return samples

    @staticmethod
    def _folder(folder: Path, split: str) -> list[Sample]:
        samples = []
        for image in sorted((folder / "images").glob("*.tif")):
            number = image.stem.split("_")[0]
            manual = folder / "1st_manual" / f"{number}_manual1.gif"
            mask = folder / "mask" / f"{image.stem}_mask.gif"
            if not manual.exists():
                raise DataError(f"{image}: manual annotation {manual} is missing")
            fov = mask if mask.exists() else None
            samples.append(Sample(image.stem, image, {"vessels": manual}, fov, split=split))
        return samples


def manifest_reader() -> ManifestReader:
    """CSV with columns ``image``, ``mask`` and optional ``fov``/``split``/``patient``."""
    return ManifestReader({"vessels": "mask"})


def mask_threshold(reader: object) -> int | None:
    """The mask threshold a reader asks for (0–255 scale; ``None``: decide by content)."""
    return getattr(reader, "mask_threshold", None)


def read_data(registry, data: Path, split: str, options: dict) -> tuple[SplitData, int | None]:
    """``split`` of ``data`` by the core's rule (``--reader``, ``--columns``, ``--holdout``)
    and the mask threshold of the reader that read it."""
    chosen = read_task_split("vessels", data, options, split)
    _, reader = find_reader(registry, "vessels", data, chosen.reader)
    return chosen, mask_threshold(reader)


@dataclass
class LoadedSample:
    """A sample decoded into arrays: preprocessed image, vessel mask, FOV mask."""

    id: str
    image: np.ndarray  # float32 H×W×3 in [0, 1], CLAHE-enhanced
    vessels: np.ndarray  # bool H×W
    fov: np.ndarray  # bool H×W
    original: np.ndarray  # uint8 H×W×3


def enhance(image: np.ndarray) -> np.ndarray:
    """The vessels task's preprocessing: CLAHE per channel, float32 in [0, 1]."""
    return fundus.clahe(image, clip_limit=0.01)


def load_sample(sample: Sample, threshold: int | None = None) -> LoadedSample:
    """Decode a sample; the FOV is estimated when the data set ships none.

    ``threshold`` is the reader's mask threshold (:func:`mask_threshold`).
    """
    original = imageio.read_image(sample.image)
    vessels = imageio.read_mask(sample.masks["vessels"], threshold)
    fov = imageio.read_mask(sample.fov, threshold) if sample.fov else fundus.fov_mask(original)
    if vessels.shape != original.shape[:2] or fov.shape != original.shape[:2]:
        raise DataError(
            f"{sample.image}: mask size {vessels.shape} does not match the image "
            f"{original.shape[:2]}"
        )
    return LoadedSample(sample.id, enhance(original), vessels, fov, original)
