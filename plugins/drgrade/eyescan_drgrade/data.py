"""DR data: grade tables, lesion boxes (VOC XML / CSV), class folders, and the
distortion-free square view of a fundus photograph.

Readers return :class:`DrSample` items: an image with its grade (``label``) and/or
its lesion boxes (``boxes``, in the original image's pixels).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eyescan.api import (
    BoxAnnotation,
    ClassFolderReader,
    DataError,
    Sample,
    fundus,
    read_box_csv,
    read_voc_xml,
)
from eyescan_drgrade.lesions import N_GRADES

#: Column names accepted for the image and the grade in grade tables
#: (eyescan, APTOS 2019, EyePACS, IDRiD, Messidor spellings).
IMAGE_COLUMNS = ("image", "id_code", "image_id", "image name", "image_name", "id", "filename")
GRADE_COLUMNS = ("grade", "label", "diagnosis", "level", "retinopathy grade", "dr_grade")
BOX_COLUMNS = ("xmin", "ymin", "xmax", "ymax")
IMAGE_FOLDERS = ("", "images", "JPEGImages", "train_images", "test_images")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


@dataclass
class DrSample(Sample):
    """A sample with optional lesion boxes (original-image pixels)."""

    boxes: BoxAnnotation | None = None


def _header(path: Path) -> list[str]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            return [c.strip().lower() for c in next(csv.reader(handle), [])]
    except (OSError, UnicodeDecodeError, csv.Error):
        return []


def _rows(path: Path) -> list[dict[str, str]]:
    """CSV rows with lower-case, stripped column names."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            return [
                {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
                for row in csv.DictReader(handle)
            ]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read CSV ({exc})") from None


def _pick(columns: list[str], names: tuple[str, ...]) -> str | None:
    return next((n for n in names if n in columns), None)


def find_image(base: Path, name: str) -> Path:
    """The image file ``name`` (with or without extension) under ``base`` or its
    ``images``, ``JPEGImages``, ``train_images`` or ``test_images`` folder."""
    for folder in IMAGE_FOLDERS:
        candidate = base / folder / name
        if candidate.is_file():
            return candidate
        if not Path(name).suffix:
            for suffix in IMAGE_SUFFIXES:
                with_suffix = candidate.with_name(candidate.name + suffix)
                if with_suffix.is_file():
                    return with_suffix
    raise DataError(f"{base}: image {name!r} not found (looked in {', '.join(IMAGE_FOLDERS[1:])})")


def _in_split(row: dict[str, str], split: str) -> bool:
    value = row.get("split", "")
    return not value or value == split


def read_grades(path: Path, split: str) -> list[DrSample]:
    """Grade table: one row per image (image id or file, grade 0-4, optional split)."""
    path = Path(path)
    rows = _rows(path)
    columns = list(rows[0]) if rows else []
    image_col, grade_col = _pick(columns, IMAGE_COLUMNS), _pick(columns, GRADE_COLUMNS)
    if image_col is None or grade_col is None:
        raise DataError(
            f"{path}: a grade table needs an image column ({', '.join(IMAGE_COLUMNS)}) "
            f"and a grade column ({', '.join(GRADE_COLUMNS)})"
        )
    samples = []
    for number, row in enumerate(rows, start=2):
        if not _in_split(row, split):
            continue
        try:
            grade = int(float(row[grade_col]))
        except ValueError:
            raise DataError(f"{path}:{number}: grade {row[grade_col]!r} is not a number") from None
        if not 0 <= grade < N_GRADES:
            raise DataError(f"{path}:{number}: grade {grade} is outside 0-{N_GRADES - 1}")
        image = find_image(path.parent, row[image_col])
        samples.append(DrSample(Path(row[image_col]).stem, image, label=grade))
    if not samples:
        raise DataError(f"{path}: no rows for split {split!r}")
    return samples


def read_boxes(path: Path, split: str) -> list[DrSample]:
    """Box table (``image,label,xmin,ymin,xmax,ymax[,split]``; one box a row)."""
    path = Path(path)
    splits = {row.get("image", ""): row.get("split", "") for row in _rows(path)}
    samples = []
    for name, annotation in read_box_csv(path).items():
        if splits.get(name) and splits[name] != split:
            continue
        samples.append(DrSample(Path(name).stem, find_image(path.parent, name), boxes=annotation))
    if not samples:
        raise DataError(f"{path}: no images for split {split!r}")
    return samples


class GradeTableReader:
    description = "CSV grade table: image (or id_code/image name), grade (or diagnosis/level)"

    def detect(self, path: Path) -> bool:
        path = Path(path)
        if path.suffix.lower() != ".csv" or not path.is_file():
            return False
        columns = _header(path)
        return (
            _pick(columns, IMAGE_COLUMNS) is not None
            and _pick(columns, GRADE_COLUMNS) is not None
            and not set(BOX_COLUMNS) <= set(columns)
        )

    def read(self, path: Path, split: str) -> list[DrSample]:
        return read_grades(path, split)


class BoxTableReader:
    description = "CSV lesion boxes: image,label,xmin,ymin,xmax,ymax[,split]"

    def detect(self, path: Path) -> bool:
        path = Path(path)
        return (
            path.suffix.lower() == ".csv"
            and path.is_file()
            and set(BOX_COLUMNS) <= set(_header(path))
        )

    def read(self, path: Path, split: str) -> list[DrSample]:
        return read_boxes(path, split)


class VocFolderReader:
    """A Pascal VOC / labelImg folder, optionally with grades.

    ``ROOT/Annotations/*.xml`` or ``ROOT/*.xml`` (labelImg's Pascal VOC XML, saved
    beside the images by default), images in ``ROOT``,
    ``ROOT/images`` or ``ROOT/JPEGImages``, optional ``ROOT/grades.csv`` (image,
    grade[, split]) and ``ROOT/ImageSets/Main/<split>.txt`` (image ids). The split
    comes from ``grades.csv``'s split column, else from ImageSets, else all images.
    """

    description = "folder: Annotations/*.xml (labelImg VOC) and/or grades.csv, images/"

    def detect(self, path: Path) -> bool:
        path = Path(path)
        return path.is_dir() and (
            (path / "Annotations").is_dir()
            or (path / "grades.csv").exists()
            or any(path.glob("*.xml"))
        )

    def read(self, path: Path, split: str) -> list[DrSample]:
        root = Path(path)
        folder = root / "Annotations" if (root / "Annotations").is_dir() else root
        annotations = {}
        for xml in sorted(folder.glob("*.xml")):
            annotation = read_voc_xml(xml)
            annotations[Path(annotation.filename).stem or xml.stem] = annotation
        if (root / "grades.csv").exists():
            samples = read_grades(root / "grades.csv", split)
        else:
            samples = [
                DrSample(stem, find_image(root, a.filename or stem))
                for stem, a in annotations.items()
            ]
        listed = root / "ImageSets" / "Main" / f"{split}.txt"
        has_split_column = "split" in _header(root / "grades.csv")
        if listed.exists() and not has_split_column:
            wanted = set(listed.read_text(encoding="utf-8").split())
            samples = [s for s in samples if s.id in wanted]
        for sample in samples:
            sample.boxes = annotations.get(sample.id)
        if not samples:
            raise DataError(f"{root}: no images for split {split!r}")
        return samples


def class_folder_reader() -> ClassFolderReader:
    """Class folders ``[train|test/]0 … 4/`` named by grade."""
    return ClassFolderReader([str(g) for g in range(N_GRADES)])


@dataclass
class Frame:
    """Where the square, FOV-centred view sits in the original photograph.

    The original is cropped to the FOV's bounding box (``top``, ``left``, size
    ``height`` × ``width``) and padded to a ``side`` × ``side`` square with the
    crop at ``(pad_top, pad_left)``; nothing is stretched.
    """

    top: int
    left: int
    pad_top: int
    pad_left: int
    side: int

    def to_square(self, boxes: np.ndarray, size: int) -> np.ndarray:
        """Boxes (N×4, original pixels) in a ``size`` × ``size`` resize of the square."""
        shift = np.array([self.pad_left - self.left, self.pad_top - self.top] * 2, float)
        return (np.asarray(boxes, float).reshape(-1, 4) + shift) * (size / self.side)

    def to_original(self, boxes: np.ndarray, size: int) -> np.ndarray:
        """Boxes (N×4) of a ``size`` × ``size`` square back in original pixels."""
        shift = np.array([self.pad_left - self.left, self.pad_top - self.top] * 2, float)
        return np.asarray(boxes, float).reshape(-1, 4) * (self.side / size) - shift

    def heat_to_original(self, heat: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """A square map (any size) placed back into an image of ``shape`` (zeros outside)."""
        full = fundus.resize(heat.astype(np.float32), self.side)
        out = np.zeros(shape, np.float32)
        h = min(shape[0] - self.top, self.side - self.pad_top)
        w = min(shape[1] - self.left, self.side - self.pad_left)
        out[self.top : self.top + h, self.left : self.left + w] = full[
            self.pad_top : self.pad_top + h, self.pad_left : self.pad_left + w
        ]
        return out


def square_fundus(image: np.ndarray) -> tuple[np.ndarray, Frame]:
    """Crop to the field of view, pad to a square (black): no distortion."""
    top, left, bottom, right = fundus.crop_box(fundus.fov_mask(image))
    crop = image[top:bottom, left:right]
    square = fundus.pad_to_square(crop)
    side = square.shape[0]
    frame = Frame(top, left, (side - crop.shape[0]) // 2, (side - crop.shape[1]) // 2, side)
    return square, frame


def write_voc_xml(path: Path, annotation: BoxAnnotation, image_path: Path | None = None) -> Path:
    """Write one annotation as labelImg writes Pascal VOC XML (tab-indented)."""
    import xml.etree.ElementTree as ET

    from eyescan.api import imageio

    root = ET.Element("annotation")
    folder = image_path.parent.name if image_path is not None else ""
    ET.SubElement(root, "folder").text = folder
    ET.SubElement(root, "filename").text = annotation.filename
    if image_path is not None:
        ET.SubElement(root, "path").text = str(image_path)
    ET.SubElement(ET.SubElement(root, "source"), "database").text = "Unknown"
    size = ET.SubElement(root, "size")
    ET.SubElement(size, "width").text = str(annotation.width)
    ET.SubElement(size, "height").text = str(annotation.height)
    ET.SubElement(size, "depth").text = "3"
    ET.SubElement(root, "segmented").text = "0"
    for label, box in zip(annotation.labels, annotation.boxes):
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = label
        ET.SubElement(obj, "pose").text = "Unspecified"
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        edge = x0 <= 1 or y0 <= 1 or x1 >= annotation.width or y1 >= annotation.height
        ET.SubElement(obj, "truncated").text = "1" if edge else "0"
        ET.SubElement(obj, "difficult").text = "0"
        bndbox = ET.SubElement(obj, "bndbox")
        for tag, value in zip(BOX_COLUMNS, (x0, y0, x1, y1)):
            ET.SubElement(bndbox, tag).text = str(value)
    ET.indent(root, space="\t")
    imageio.write_text(Path(path), ET.tostring(root, encoding="unicode") + "\n")
    return Path(path)
