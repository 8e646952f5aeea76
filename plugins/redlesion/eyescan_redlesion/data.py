"""Red-lesion data: the IDRiD segmentation layout, a CSV manifest, and decoded samples.

IDRiD as distributed (``A. Segmentation``)::

    1. Original Images/a. Training Set/IDRiD_01.jpg            (b. Testing Set: 55–81)
    2. All Segmentation Groundtruths/a. Training Set/1. Microaneurysms/IDRiD_01_MA.tif
    2. All Segmentation Groundtruths/a. Training Set/2. Haemorrhages/IDRiD_01_HE.tif

:class:`IdridReader` returns the images of both sets, marked ``train`` ("a. Training
Set") and ``test`` ("b. Testing Set"), the official split. Masks are read by
``api.imageio.read_mask`` with the reader's ``mask_threshold`` (``None``: by content,
right for the official red-on-black or 0/255 TIFs; a reader of grey copies with JPEG
artefacts sets about 30). An image without a mask file for a lesion type has none of
that lesion (IDRiD ships 53 HE masks for 54 training images).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eyescan.api import DataError, ManifestReader, Sample, fundus, imageio

LESIONS = ("ma", "he")
#: The official IDRiD sets and the split each one is.
_SPLITS = {"train": ("training",), "test": ("testing", "test")}
_LESION_FOLDERS = {"ma": ("microaneurysm",), "he": ("haemorrhage", "hemorrhage")}
_SUFFIX = {"ma": "MA", "he": "HE"}
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def _child(folder: Path, *keywords: str) -> Path | None:
    """The sub-folder whose name contains one of ``keywords`` (case-insensitive)."""
    if not folder.is_dir():
        return None
    for child in sorted(folder.iterdir()):
        if child.is_dir() and any(k in child.name.lower() for k in keywords):
            return child
    return None


class IdridReader:
    """IDRiD segmentation part (``A. Segmentation``), given it or the folder holding it.

    ``mask_threshold`` (0–255 scale, ``None`` = by content) is passed to
    ``read_mask`` for this data set's masks.
    """

    description = "IDRiD: A. Segmentation/1. Original Images, 2. All Segmentation Groundtruths"

    def __init__(self, mask_threshold: int | None = None):
        self.mask_threshold = mask_threshold

    def _root(self, path: Path) -> Path | None:
        path = Path(path)
        if _child(path, "original images"):
            return path
        inner = _child(path, "segmentation")
        return inner if inner is not None and _child(inner, "original images") else None

    def detect(self, path: Path) -> bool:
        return self._root(path) is not None

    def read(self, path: Path, columns: dict[str, str] | None = None) -> list[Sample]:
        """All images of the training and testing sets, marked ``train`` and ``test``."""
        root = self._root(path)
        if root is None:
            raise DataError(f"{path}: no IDRiD 'A. Segmentation/1. Original Images' folder")
        originals, truths = _child(root, "original images"), _child(root, "groundtruth")
        samples: list[Sample] = []
        for split, keywords in _SPLITS.items():
            images_dir = _child(originals, *keywords) if originals else None
            if images_dir is None:
                continue
            truth_dir = _child(truths, *keywords) if truths else None
            if truth_dir is None:
                raise DataError(f"{root}: no ground truth for {images_dir.name!r}")
            samples += self._read_set(images_dir, truth_dir, split)
        if not samples:
            raise DataError(f"{root}: no '… Training Set'/'… Testing Set' folders of images")
        return samples

    def _read_set(self, images_dir: Path, truth_dir: Path, split: str) -> list[Sample]:
        images = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
        if not images:
            raise DataError(f"{images_dir}: no IDRiD images (IDRiD_XX.jpg)")
        lesion_dirs = {name: _child(truth_dir, *k) for name, k in _LESION_FOLDERS.items()}
        missing = [name for name, folder in lesion_dirs.items() if folder is None]
        if missing:
            raise DataError(
                f"{truth_dir}: no lesion folder for {', '.join(missing)} "
                "('1. Microaneurysms', '2. Haemorrhages')"
            )
        samples = []
        for image in images:
            masks = {}
            for name, folder in lesion_dirs.items():
                for ext in (".tif", ".tiff", ".png"):
                    mask = folder / f"{image.stem}_{_SUFFIX[name]}{ext}"
                    if mask.exists():
                        masks[name] = mask
                        break
            samples.append(Sample(image.stem, image, masks, split=split))
        if not any(s.masks for s in samples):
            raise DataError(f"{truth_dir}: no masks named IDRiD_XX_MA.tif / IDRiD_XX_HE.tif")
        return samples


class LesionManifestReader(ManifestReader):
    """CSV with columns ``image``, ``ma``, ``he`` (empty cell: no such lesion), ``[split]``,
    ``[patient]``; ``mask_threshold`` as for :class:`IdridReader`."""

    description = "CSV manifest with columns image, ma, he, [split], [patient]"

    def __init__(self, mask_threshold: int | None = None):
        super().__init__({"ma": "ma", "he": "he"})
        self.mask_threshold = mask_threshold


def manifest_reader(mask_threshold: int | None = None) -> LesionManifestReader:
    """The ``manifest`` reader (see :class:`LesionManifestReader`)."""
    return LesionManifestReader(mask_threshold)


def reader_mask_threshold(registry: object, name: str) -> int | None:
    """The ``mask_threshold`` of the registered redlesion reader ``name`` (None if unset)."""
    return getattr(registry.reader("redlesion", name).reader, "mask_threshold", None)


def normalise(image: np.ndarray) -> np.ndarray:
    """uint8 RGB → float32 with ImageNet's mean and std (VGG16's input convention)."""
    return (image.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD


@dataclass
class LesionSample:
    """A decoded sample at the model's input scale."""

    id: str
    image: np.ndarray  # uint8 H×W×3
    ma: np.ndarray  # bool H×W
    he: np.ndarray  # bool H×W
    scale: float  # model-input width / original width


def input_size(height: int, width: int, input_width: int | None) -> tuple[int, int]:
    """(H, W) at the model's input width (aspect kept); the original size if None."""
    if not input_width or input_width == width:
        return height, width
    return max(1, round(height * input_width / width)), int(input_width)


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a bool mask: area-averaged, then at least half covered (keeps small lesions)."""
    if mask.shape == tuple(size):
        return mask
    return fundus.resize(mask.astype(np.float32), size) >= 0.5


def load_sample(
    sample: Sample, input_width: int | None = None, mask_threshold: int | None = None
) -> LesionSample:
    """Decode image and masks, resized to ``input_width`` (e.g. the seed's 1072).

    Masks are read with ``mask_threshold`` (the reader's; ``None`` = by content).
    """
    image = imageio.read_image(sample.image)
    h, w = image.shape[:2]
    masks = {}
    for name in LESIONS:
        path = sample.masks.get(name)
        mask = imageio.read_mask(path, mask_threshold) if path else np.zeros((h, w), bool)
        if mask.shape != (h, w):
            raise DataError(f"{path}: mask size {mask.shape} does not match the image {(h, w)}")
        masks[name] = mask
    size = input_size(h, w, input_width)
    if size != (h, w):
        image = fundus.resize(image, size)
        masks = {name: resize_mask(m, size) for name, m in masks.items()}
    return LesionSample(sample.id, image, masks["ma"], masks["he"], size[1] / w)


IDRID_SEGMENTATION = "A. Segmentation"
_IDRID_SPLITS = {"train": "a. Training Set", "test": "b. Testing Set"}
_IDRID_LESIONS = {"ma": "1. Microaneurysms", "he": "2. Haemorrhages"}


def write_synthetic_idrid(
    root: Path,
    n_train: int = 4,
    n_test: int = 2,
    size: int | tuple[int, int] = (160, 240),
    seed: int = 0,
) -> Path:
    """Write synthetic fundus images in IDRiD's segmentation layout; returns ``root``.

    Images come from :func:`eyescan.api.synthetic.make_fundus` with ``lesions=True``
    (grades 1–4, exact MA and haemorrhage masks), saved as ``IDRiD_XX.jpg``
    (quality 95); masks as IDRiD's red-on-black RGB TIFFs, written only when the
    image has that lesion (as IDRiD omits them). ``size`` is a side or (H, W).
    """
    from PIL import Image

    from eyescan.api import synthetic

    base = Path(root) / IDRID_SEGMENTATION
    seeds = np.random.SeedSequence(seed).generate_state(n_train + n_test)
    for index, child_seed in enumerate(seeds):
        split = "train" if index < n_train else "test"
        images = base / "1. Original Images" / _IDRID_SPLITS[split]
        truths = base / "2. All Segmentation Groundtruths" / _IDRID_SPLITS[split]
        images.mkdir(parents=True, exist_ok=True)
        fundus_ = synthetic.make_fundus(size, seed=int(child_seed), lesions=True)
        stem = f"IDRiD_{index + 1:02d}"
        Image.fromarray(fundus_.image).save(images / f"{stem}.jpg", quality=95)
        for name, mask in (("ma", fundus_.microaneurysms), ("he", fundus_.haemorrhages)):
            folder = truths / _IDRID_LESIONS[name]
            folder.mkdir(parents=True, exist_ok=True)
            if mask.any():
                red = np.zeros((*mask.shape, 3), np.uint8)
                red[mask, 0] = 255
                Image.fromarray(red).save(folder / f"{stem}_{_SUFFIX[name]}.tif")
    return Path(root)
