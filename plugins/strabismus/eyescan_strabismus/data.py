"""Strabismus data: readers for eye-region boxes and labels, crops and tensors.

Two layouts (registered as readers ``folders`` and ``manifest``); both return
every sample, marked with the split the data set gives it (``train``/``val``/
``test`` folders or a ``split`` column; ``None`` where it says nothing, and
the core's hold-out rule divides those):

``folders`` — ``DATA/[train|val|test/]`` holding the images either in
``images/`` (labels in ``labels.csv``: ``image,label[,patient]``) or in class
folders ``normal/`` and ``strabismus/``; eye-region boxes in
``annotations/<image stem>.xml`` (Pascal VOC as labelImg writes it) or
``boxes.csv`` (``image,label,xmin,ymin,xmax,ymax``, one box a row, an empty
label for an image without an eye region). Images are matched by file name.

``manifest`` — one CSV: ``image,label[,xmin,ymin,xmax,ymax][,split][,patient]``
``[,id][,subtype]``, paths relative to the CSV or absolute (``--columns
image=path,label=binary`` maps other names). ``id`` names the sample (default: its
image path without the suffix); ``subtype`` (e.g. ``esotropia``, ``exotropia``,
``normal``) is carried to evaluation, which then counts the results per sub-type.

Labels are ``0``/``normal`` and ``1``/``strabismus``. Boxes are optional for
the classifier (without them the whole image is taken as the eye region),
labels are optional for the detector.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from eyescan.api import (
    DataError,
    Sample,
    imageio,
    read_box_csv,
    read_csv_rows,
    read_voc_xml,
    split_of,
)

CLASS_NAMES = ("normal", "strabismus")
#: Margin added around a box on every side before cropping, as a fraction of its long side.
CROP_MARGIN = 0.1
#: The detector's one class (both eyes in one box).
BOX_LABEL = "eye region"
#: Split folder names of the ``folders`` layout.
SPLIT_FOLDERS = ("train", "val", "test")

Box = tuple[float, float, float, float]


@dataclass
class EyeSample(Sample):
    """A sample with its eye-region boxes (``None``: not annotated; ``[]``: no eye region)
    and its sub-type (``None``: not given)."""

    boxes: list[Box] | None = None
    subtype: str | None = None


@dataclass
class LoadedEye:
    id: str
    image: np.ndarray  # uint8 H×W×3
    label: int | None
    boxes: list[Box] | None = field(default=None)
    subtype: str | None = None


def parse_label(value: str, where: str) -> int | None:
    """``0``/``normal`` → 0, ``1``/``strabismus`` → 1, empty → None."""
    text = value.strip().lower()
    if not text:
        return None
    if text in ("0", "1"):
        return int(text)
    if text in CLASS_NAMES:
        return CLASS_NAMES.index(text)
    raise DataError(f"{where}: label {value!r} is not 0/1 or normal/strabismus")


def split_roots(path: Path) -> list[tuple[Path, str | None]]:
    """``(folder, split)`` of each split folder, or ``[(path, None)]`` without any."""
    path = Path(path)
    found = [(path / s, s) for s in SPLIT_FOLDERS if (path / s).is_dir()]
    return found or [(path, None)]


class FolderReader:
    """Images in ``images/`` or ``normal/``+``strabismus/``; VOC XML or box CSV; labels CSV."""

    description = (
        "[train|val|test/]images/ + labels.csv, or normal/ + strabismus/; "
        "boxes in annotations/*.xml (VOC) or boxes.csv"
    )

    def detect(self, path: Path) -> bool:
        path = Path(path)
        if not path.is_dir():
            return False
        root = split_roots(path)[0][0]
        return any((root / name).is_dir() for name in ("images", *CLASS_NAMES))

    def read(self, path: Path, columns: dict[str, str] | None = None) -> list[EyeSample]:
        samples: list[EyeSample] = []
        for root, split in split_roots(Path(path)):
            samples += self._read_root(root, split, columns)
        return samples

    def _read_root(
        self, root: Path, split: str | None, columns: dict[str, str] | None
    ) -> list[EyeSample]:
        images: list[tuple[Path, int | None, str | None]] = []
        if (root / "images").is_dir():
            labels = self._labels(root, columns)
            for image in _images_in(root / "images"):
                label, patient = labels.get(image.name, (None, None))
                images.append((image, label, patient))
        for label, name in enumerate(CLASS_NAMES):
            images += [(image, label, None) for image in _images_in(root / name)]
        if not images:
            raise DataError(f"{root}: no images in images/, normal/ or strabismus/")
        boxes = self._boxes(root)
        samples = []
        for image, label, patient in images:
            found = boxes.get(image.stem) if boxes is not None else None
            sample_id = image.relative_to(root).with_suffix("").as_posix()
            if split is not None:
                sample_id = f"{split}/{sample_id}"
            samples.append(
                EyeSample(sample_id, image, label=label, split=split, patient=patient, boxes=found)
            )
        return samples

    @staticmethod
    def _labels(
        root: Path, columns: dict[str, str] | None
    ) -> dict[str, tuple[int | None, str | None]]:
        """``image name -> (label, patient)`` from ``labels.csv`` (empty without one)."""
        path = root / "labels.csv"
        if not path.exists():
            return {}
        rows = read_csv_rows(path, ("image", "label"), columns)
        return {
            Path(row["image"]).name: (
                parse_label(row["label"], f"{path}:{number}"),
                row.get("patient") or None,
            )
            for number, row in enumerate(rows, start=2)
        }

    @staticmethod
    def _boxes(root: Path) -> dict[str, list[Box]] | None:
        """Boxes by image stem (``None`` when the split has no box annotations)."""
        folder = root / "annotations"
        if folder.is_dir():
            return {
                xml.stem: [tuple(b) for b in read_voc_xml(xml).boxes]
                for xml in sorted(folder.glob("*.xml"))
            }
        if (root / "boxes.csv").exists():
            return {
                Path(name).stem: [tuple(b) for b in annotation.boxes]
                for name, annotation in read_box_csv(root / "boxes.csv").items()
            }
        return None


def _images_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in imageio.IMAGE_EXTENSIONS)


BOX_COLUMNS = ("xmin", "ymin", "xmax", "ymax")


class BoxManifestReader:
    """One CSV: ``image,label[,xmin,ymin,xmax,ymax][,split][,patient][,id][,subtype]``
    (paths relative to it, or absolute)."""

    description = (
        "CSV with columns image,label[,xmin,ymin,xmax,ymax][,split][,patient][,id][,subtype]"
    )

    def detect(self, path: Path) -> bool:
        return Path(path).suffix.lower() == ".csv" and Path(path).is_file()

    def read(self, path: Path, columns: dict[str, str] | None = None) -> list[EyeSample]:
        path = Path(path)
        rows = read_csv_rows(path, ("image",), columns)
        has_boxes = set(BOX_COLUMNS) <= set(rows[0])
        samples: dict[str, EyeSample] = {}
        for number, row in enumerate(rows, start=2):
            where = f"{path}:{number}"
            sample = samples.setdefault(
                row["image"],
                EyeSample(
                    row.get("id") or Path(row["image"]).with_suffix("").as_posix(),
                    path.parent / row["image"],
                    label=parse_label(row.get("label", ""), where),
                    split=split_of(row.get("split"), where),
                    patient=row.get("patient") or None,
                    boxes=[] if has_boxes else None,
                    subtype=row.get("subtype") or None,
                ),
            )
            if has_boxes and row["xmin"]:
                try:
                    box = tuple(float(row[k]) for k in BOX_COLUMNS)
                except ValueError:
                    raise DataError(f"{where}: box coordinates must be numbers") from None
                sample.boxes.append(box)
        if not samples:
            raise DataError(f"{path}: no rows")
        counts = Counter(s.id for s in samples.values())
        twice = sorted(i for i, n in counts.items() if n > 1)
        if twice:
            raise DataError(f"{path}: ids name more than one image: {', '.join(twice[:5])}")
        return list(samples.values())


def load_sample(sample: Sample) -> LoadedEye:
    """Decode a sample's image; boxes are checked against the image size."""
    image = imageio.read_image(sample.image)
    boxes = getattr(sample, "boxes", None)
    h, w = image.shape[:2]
    for box in boxes or []:
        x0, y0, x1, y1 = box
        if not (x1 > x0 and y1 > y0) or x0 < -1 or y0 < -1 or x1 > w + 1 or y1 > h + 1:
            raise DataError(f"{sample.image}: box {box} is empty or outside the {w}×{h} image")
    return LoadedEye(sample.id, image, sample.label, boxes, getattr(sample, "subtype", None))


def main_box(boxes: list[Box] | None, shape: tuple[int, ...]) -> Box:
    """The largest box (the eye region), or the whole image when there is none."""
    if not boxes:
        return (0.0, 0.0, float(shape[1]), float(shape[0]))
    return max(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))


def with_margin(box: Box, shape: tuple[int, ...], margin: float = CROP_MARGIN) -> tuple[int, ...]:
    """Integer crop box: ``box`` grown by ``margin`` of its long side, clipped to the image."""
    x0, y0, x1, y1 = box
    m = margin * max(x1 - x0, y1 - y0)
    h, w = shape[:2]
    left, top = max(0, int(np.floor(x0 - m))), max(0, int(np.floor(y0 - m)))
    right, bottom = min(w, int(np.ceil(x1 + m))), min(h, int(np.ceil(y1 + m)))
    return left, top, max(right, left + 1), max(bottom, top + 1)


def crop(image: np.ndarray, box: Box, size: int, margin: float = CROP_MARGIN) -> np.ndarray:
    """The eye region with its margin, resized to ``size``×``size`` (uint8 RGB)."""
    from PIL import Image

    left, top, right, bottom = with_margin(box, image.shape, margin)
    patch = Image.fromarray(np.ascontiguousarray(image[top:bottom, left:right]))
    return np.asarray(patch.resize((size, size), Image.BILINEAR))


def classifier_tensor(crops: list[np.ndarray]):
    """uint8 crops (N of S×S×3) → normalised float tensor N×3×S×S."""
    import torch

    x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255.0
    return normalise(x)


def normalise(x):
    """A float image batch in [0, 1] → the classifiers' input scale (centred, ×4)."""
    return (x - 0.5) / 0.25


def detector_tensor(image: np.ndarray):
    """uint8 H×W×3 → float tensor 3×H×W in [0, 1] (the detector normalises itself)."""
    import torch

    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).float() / 255.0
