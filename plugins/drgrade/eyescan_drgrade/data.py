"""DR data: grade tables, lesion boxes (VOC XML / CSV), class folders, and the
distortion-free square view of a fundus photograph.

Readers return ALL samples of a data set as :class:`DrSample` items: an image
with its grade (``label``) and/or its lesion boxes (``boxes``, in the original
image's pixels), its ``split`` (``train``/``val``/``test`` where the data set
says, else None: the core's hold-out rule divides those) and its ``patient``.
CSV columns are found by their usual names (eyescan, APTOS, EyePACS, IDRiD,
Messidor spellings) or mapped with ``--columns image=…,label=…,patient=…``.
"""

from __future__ import annotations

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
    read_csv_rows,
    read_voc_xml,
    split_of,
    splits,
)
from eyescan_drgrade.lesions import N_GRADES

#: Column names recognised (case-insensitive) for each canonical column of a grade table.
COLUMN_NAMES: dict[str, tuple[str, ...]] = {
    "image": ("image", "id_code", "image_id", "image name", "image_name", "id", "filename"),
    "label": ("grade", "label", "diagnosis", "level", "retinopathy grade", "dr_grade"),
    "split": ("split",),
    "patient": ("patient", "patient_id", "patientid", "subject"),
}
IMAGE_COLUMNS = COLUMN_NAMES["image"]
GRADE_COLUMNS = COLUMN_NAMES["label"]
BOX_COLUMNS = ("xmin", "ymin", "xmax", "ymax")
IMAGE_FOLDERS = ("", "images", "JPEGImages", "train_images", "test_images")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


@dataclass
class DrSample(Sample):
    """A sample with optional lesion boxes (original-image pixels) and DME risk.

    ``boxes`` is ``None`` for an image without box annotation (an annotated image
    without lesions has an empty :class:`BoxAnnotation`); ``dme`` is the risk of
    diabetic macular edema 0-2 where the data set grades it (IDRiD).
    """

    boxes: BoxAnnotation | None = None
    dme: int | None = None


def csv_header(path: Path) -> list[str]:
    """The CSV's column names ([] when it is not a readable table): for ``detect``."""
    try:
        rows = read_csv_rows(path)
    except DataError:
        return []
    return list(rows[0]) if rows else []


def column_mapping(header: list[str], columns: dict[str, str] | None) -> dict[str, str]:
    """Canonical name -> the file's column: the user's ``columns`` first, then the
    usual names of :data:`COLUMN_NAMES` (``grade`` is accepted for ``label``)."""
    given = dict(columns or {})
    if "grade" in given and "label" not in given:
        given["label"] = given.pop("grade")
    lower = {name.lower(): name for name in header}
    mapping = {}
    for canonical, names in COLUMN_NAMES.items():
        found = next((lower[n] for n in names if n in lower), None)
        if canonical in given:
            mapping[canonical] = given[canonical]
        elif found is not None:
            mapping[canonical] = found
    return {**given, **mapping}


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


def read_grades(path: Path, columns: dict[str, str] | None = None) -> list[DrSample]:
    """Grade table: one row per image (image id or file, grade 0-4, optional split and
    patient columns)."""
    path = Path(path)
    mapping = column_mapping(csv_header(path), columns)
    try:
        rows = read_csv_rows(path, ("image", "label"), mapping)
    except DataError as exc:
        raise DataError(
            f"{exc} (a grade table needs an image column: {', '.join(IMAGE_COLUMNS)}; "
            f"and a grade column: {', '.join(GRADE_COLUMNS)})"
        ) from None
    samples = []
    for number, row in enumerate(rows, start=2):
        where = f"{path}:{number}"
        try:
            grade = int(float(row["label"]))
        except ValueError:
            raise DataError(f"{where}: grade {row['label']!r} is not a number") from None
        if not 0 <= grade < N_GRADES:
            raise DataError(f"{where}: grade {grade} is outside 0-{N_GRADES - 1}")
        image = find_image(path.parent, row["image"])
        samples.append(
            DrSample(
                Path(row["image"]).stem,
                image,
                label=grade,
                split=split_of(row.get("split"), where),
                patient=row.get("patient") or None,
            )
        )
    if not samples:
        raise DataError(f"{path}: no rows")
    return samples


def read_boxes(path: Path, columns: dict[str, str] | None = None) -> list[DrSample]:
    """Box table (``image,label,xmin,ymin,xmax,ymax[,split][,patient]``; one box a row;
    ``columns`` maps the split and patient columns)."""
    path = Path(path)
    marks: dict[str, tuple[str | None, str | None]] = {}
    for number, row in enumerate(read_csv_rows(path, ("image",), columns), start=2):
        split = split_of(row.get("split"), f"{path}:{number}")
        known = marks.get(row["image"])
        if known is not None and known[0] != split:
            raise DataError(f"{path}:{number}: {row['image']} is in splits {known[0]} and {split}")
        marks[row["image"]] = (split, row.get("patient") or None)
    samples = []
    for name, annotation in read_box_csv(path).items():
        split, patient = marks.get(name, (None, None))
        samples.append(
            DrSample(
                Path(name).stem,
                find_image(path.parent, name),
                split=split,
                patient=patient,
                boxes=annotation,
            )
        )
    if not samples:
        raise DataError(f"{path}: no images")
    return samples


class GradeTableReader:
    description = "CSV grade table: image (or id_code/image name), grade (or diagnosis/level)"

    def detect(self, path: Path) -> bool:
        path = Path(path)
        if path.suffix.lower() != ".csv" or not path.is_file():
            return False
        header = csv_header(path)
        mapping = column_mapping(header, None)
        return (
            "image" in mapping
            and "label" in mapping
            and not set(BOX_COLUMNS) <= {c.lower() for c in header}
        )

    def read(self, path: Path, columns: dict[str, str] | None = None) -> list[DrSample]:
        return read_grades(path, columns)


class BoxTableReader:
    description = "CSV lesion boxes: image,label,xmin,ymin,xmax,ymax[,split][,patient]"

    def detect(self, path: Path) -> bool:
        path = Path(path)
        return (
            path.suffix.lower() == ".csv"
            and path.is_file()
            and set(BOX_COLUMNS) <= set(csv_header(path))
        )

    def read(self, path: Path, columns: dict[str, str] | None = None) -> list[DrSample]:
        return read_boxes(path, columns)


class VocFolderReader:
    """A Pascal VOC / labelImg folder, optionally with grades.

    ``ROOT/Annotations/*.xml`` or ``ROOT/*.xml`` (labelImg's Pascal VOC XML, saved
    beside the images by default), images in ``ROOT``,
    ``ROOT/images`` or ``ROOT/JPEGImages``, optional ``ROOT/grades.csv`` (image,
    grade[, split][, patient]) and ``ROOT/ImageSets/Main/{train,val,test}.txt``
    (image ids). The split comes from ``grades.csv``'s split column, else from
    ImageSets, else none (the core's hold-out rule divides the images).
    """

    description = "folder: Annotations/*.xml (labelImg VOC) and/or grades.csv, images/"

    def detect(self, path: Path) -> bool:
        path = Path(path)
        return path.is_dir() and (
            (path / "Annotations").is_dir()
            or (path / "grades.csv").exists()
            or any(path.glob("*.xml"))
        )

    def read(self, path: Path, columns: dict[str, str] | None = None) -> list[DrSample]:
        root = Path(path)
        folder = root / "Annotations" if (root / "Annotations").is_dir() else root
        annotations = {}
        for xml in sorted(folder.glob("*.xml")):
            annotation = read_voc_xml(xml)
            annotations[Path(annotation.filename).stem or xml.stem] = annotation
        grades = root / "grades.csv"
        if grades.exists():
            samples = read_grades(grades, columns)
        else:
            samples = [
                DrSample(stem, find_image(root, a.filename or stem))
                for stem, a in annotations.items()
            ]
        if not any(s.split for s in samples):
            listed = self._listed(root)
            for sample in samples:
                sample.split = listed.get(sample.id)
        for sample in samples:
            sample.boxes = annotations.get(sample.id)
        if not samples:
            raise DataError(f"{root}: no images")
        return samples

    @staticmethod
    def _listed(root: Path) -> dict[str, str]:
        """Image id -> split from ``ImageSets/Main/<split>.txt`` (when present)."""
        listed: dict[str, str] = {}
        for split in splits.SPLITS:
            path = root / "ImageSets" / "Main" / f"{split}.txt"
            if path.exists():
                for name in path.read_text(encoding="utf-8").split():
                    if listed.setdefault(name, split) != split:
                        raise DataError(f"{path}: {name} is also in {listed[name]}.txt")
        return listed


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
