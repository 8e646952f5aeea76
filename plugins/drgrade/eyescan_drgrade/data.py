"""DR data: grade tables, lesion boxes (VOC XML / CSV), class folders, and the
distortion-free square view of a fundus photograph.

Readers return ALL samples of a data set as :class:`DrSample` items: an image
with its grade (``label``), DME risk (``dme``) and/or its lesion boxes
(``boxes``, in the original image's pixels), its ``split``
(``train``/``val``/``test`` where the data set says, else None: the core's
hold-out rule divides those) and its ``patient``. CSV columns are found by
their usual names (eyescan, APTOS, EyePACS, IDRiD, Messidor spellings) or
mapped with ``--columns image=…,label=…,patient=…``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from eyescan_drgrade.lesions import DME_LEVELS, N_GRADES

#: Column names recognised (case-insensitive) for each canonical column of a grade table.
COLUMN_NAMES: dict[str, tuple[str, ...]] = {
    "image": ("image", "id_code", "image_id", "image name", "image_name", "id", "filename"),
    "label": ("grade", "label", "diagnosis", "level", "retinopathy grade", "dr_grade"),
    "split": ("split",),
    "patient": ("patient", "patient_id", "patientid", "subject"),
    "dme": ("dme", "dme_risk", "risk of macular edema", "risk of macular oedema"),
    "id": ("id",),
    "source": ("source",),
}
IMAGE_COLUMNS = COLUMN_NAMES["image"]
GRADE_COLUMNS = COLUMN_NAMES["label"]
BOX_COLUMNS = ("xmin", "ymin", "xmax", "ymax")
IMAGE_FOLDERS = ("", "images", "JPEGImages", "train_images", "test_images")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
#: Training's FOV margin (fraction of the FOV's longer side): :func:`square_fundus`.
FOV_MARGIN = 0.02
#: The square view's frame (``eyescan.api.fundus.SquareFrame``): where it sits in the photo.
Frame = fundus.SquareFrame


@dataclass
class DrSample(Sample):
    """A sample with optional lesion boxes (original-image pixels), DME risk and source.

    ``boxes`` is ``None`` for an image without box annotation (an annotated image
    without lesions has an empty :class:`BoxAnnotation`); ``dme`` is the risk of
    diabetic macular edema 0-2 where the data set grades it (IDRiD), else None;
    ``source`` names the data set a row of a combined table came from.
    """

    boxes: BoxAnnotation | None = None
    dme: int | None = None
    source: str | None = None


def level(value: str, where: str, what: str, levels: int) -> int:
    """A label cell as an integer 0..levels-1; a one-line error naming the line."""
    try:
        number = float(value)
    except ValueError:
        raise DataError(f"{where}: {what} {value!r} is not a number") from None
    if not number.is_integer() or not 0 <= number < levels:
        raise DataError(f"{where}: {what} {value} is outside 0-{levels - 1}")
    return int(number)


def unique_ids(samples: list[DrSample], table: Path, hint: str = "") -> list[DrSample]:
    """``samples``, refused when empty or when an image id is listed twice."""
    if not samples:
        raise DataError(f"{table}: no rows")
    seen: set[str] = set()
    for sample in samples:
        if sample.id in seen:
            raise DataError(f"{table}: image {sample.id.split('/')[-1]!r} is listed twice{hint}")
        seen.add(sample.id)
    return samples


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
    """Grade table: one row per image (image id or file, grade 0-4; optional split,
    patient, DME risk 0-2 (empty: unknown), source and ``id`` columns). Ids are the
    ``id`` column where there is one, else the image's name without extension."""
    path = Path(path)
    mapping = column_mapping(csv_header(path), columns)
    try:
        rows = read_csv_rows(path, ("image", "label"), mapping)
    except DataError as exc:
        raise DataError(
            f"{exc} (a grade table needs an image column: {', '.join(IMAGE_COLUMNS)}; "
            f"and a grade column: {', '.join(GRADE_COLUMNS)})"
        ) from None
    own_id = mapping.get("id") not in (None, mapping["image"])
    samples = []
    for number, row in enumerate(rows, start=2):
        where = f"{path}:{number}"
        dme = row.get("dme", "")
        samples.append(
            DrSample(
                row["id"] if own_id and row["id"] else Path(row["image"]).stem,
                find_image(path.parent, row["image"]),
                label=level(row["label"], where, "grade", N_GRADES),
                split=split_of(row.get("split"), where),
                patient=row.get("patient") or None,
                dme=level(dme, where, "DME risk", DME_LEVELS) if dme else None,
                source=row.get("source") or None,
            )
        )
    return unique_ids(samples, path, " (one name in several folders: give an 'id' column)")


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


def square_fundus(
    image: np.ndarray, margin: float = 0.0, mask: np.ndarray | None = None
) -> tuple[np.ndarray, Frame]:
    """Crop to the field of view (+ ``margin`` × its longer side), pad to a square
    (black): no distortion (``eyescan.api.fundus.square_fov``; ``mask``: the FOV,
    estimated when None). Models trained before the margin existed use 0."""
    return fundus.square_fov(image, margin, mask)


def fundus_item(image: np.ndarray, fov: np.ndarray | None = None) -> dict[str, Any]:
    """A photograph ready for the models: the original and its FOV mask (``fov`` when
    given, else estimated once; each model crops its square view from them with its
    own margin)."""
    return {"original": image, "fov": fundus.fov_mask(image) if fov is None else fov}


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
