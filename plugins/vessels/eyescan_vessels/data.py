"""Vessel data: the DRIVE folder layout, a CSV manifest, and the training tensors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eyescan.api import DataError, ManifestReader, Sample, fundus, imageio

SPLIT_FOLDERS = {"train": "training", "test": "test"}


class DriveReader:
    """DRIVE layout: ``{training,test}/{images,1st_manual,mask}``.

    Images ``21_training.tif``, manual annotations ``21_manual1.gif``, FOV masks
    ``21_training_mask.gif`` (``01_test…`` in ``test/``).
    """

    description = "DRIVE folders: training|test/images, 1st_manual, mask"

    def detect(self, path: Path) -> bool:
        path = Path(path)
        return (path / "training" / "images").is_dir() or (path / "test" / "images").is_dir()

    def read(self, path: Path, split: str) -> list[Sample]:
        folder = Path(path) / SPLIT_FOLDERS.get(split, split)
        images = sorted((folder / "images").glob("*.tif")) if (folder / "images").is_dir() else []
        if not images:
            raise DataError(f"{folder / 'images'}: no DRIVE images (*.tif) found")
        samples = []
        for image in images:
            number = image.stem.split("_")[0]
            manual = folder / "1st_manual" / f"{number}_manual1.gif"
            mask = folder / "mask" / f"{image.stem}_mask.gif"
            if not manual.exists():
                raise DataError(f"{image}: manual annotation {manual} is missing")
            samples.append(
                Sample(image.stem, image, {"vessels": manual}, mask if mask.exists() else None)
            )
        return samples


def manifest_reader() -> ManifestReader:
    """CSV with columns ``image``, ``mask`` and optional ``fov``/``split``."""
    return ManifestReader({"vessels": "mask"})


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


def load_sample(sample: Sample) -> LoadedSample:
    """Decode a sample; the FOV is estimated when the data set ships none."""
    original = imageio.read_image(sample.image)
    vessels = imageio.read_mask(sample.masks["vessels"])
    fov = imageio.read_mask(sample.fov) if sample.fov else fundus.fov_mask(original)
    if vessels.shape != original.shape[:2] or fov.shape != original.shape[:2]:
        raise DataError(
            f"{sample.image}: mask size {vessels.shape} does not match the image "
            f"{original.shape[:2]}"
        )
    return LoadedSample(sample.id, enhance(original), vessels, fov, original)
