"""Readers of published DR grading sets in their distributed layouts.

- :class:`IdridGradingReader`: IDRiD part B "Disease Grading" (official folder
  and CSV names), both labels (DR grade, DME risk), the official train/test
  split, and the CODRAS lesion boxes (YOLO) where the folder has them.
- :class:`KaggleGradingReader`: the Kaggle layouts of APTOS 2019
  (``train.csv``: ``id_code,diagnosis``) and EyePACS (``trainLabels.csv``:
  ``image,level``), images in ``train_images/`` or ``train/``; no split.

Both drop or group byte-identical copies by the core's rule
(:func:`eyescan.api.resolve_duplicates`) and report them in ``notes``, and name
their data set in ``source`` (its terms: :data:`SOURCES`, copied into model cards).
"""

from __future__ import annotations

import re
from pathlib import Path

from eyescan.api import (
    DataError,
    find_yolo_names,
    read_csv_rows,
    read_yolo_names,
    resolve_duplicates,
    yolo_annotation,
)
from eyescan_drgrade.data import IMAGE_SUFFIXES, DrSample, csv_header, level, unique_ids
from eyescan_drgrade.lesions import DME_LEVELS, N_GRADES

#: IDRiD part B: (split, the official folder/CSV name's word for it).
IDRID_SPLITS = (("train", "Training"), ("test", "Testing"))
#: IDRiD CSV columns (header cells are read stripped: "Risk of macular edema ").
IDRID_COLUMNS = {
    "image": "Image name",
    "label": "Retinopathy grade",
    "dme": "Risk of macular edema",
}
#: Kaggle layouts: (labels file, image column, grade column).
KAGGLE_TABLES = (("train.csv", "id_code", "diagnosis"), ("trainLabels.csv", "image", "level"))
KAGGLE_FOLDERS = ("train_images", "train")
#: EyePACS names an image ``<patient>_<left|right>``.
EYEPACS_EYE = re.compile(r"^(?P<patient>.+)_(left|right)$")
#: Each published data set's ``source`` name -> what it is and the terms of its images,
#: which weights trained on it inherit (model cards: ``training.data_sources``).
SOURCES = {
    "idrid": "IDRiD part B, Porwal et al., Data 3(3):25, 2018: CC BY 4.0",
    "aptos2019": (
        "APTOS 2019 Blindness Detection, Kaggle competition data: the competition's "
        "rules, non-commercial research use only, no redistribution"
    ),
    "eyepacs": (
        "EyePACS, Kaggle Diabetic Retinopathy Detection competition data: the "
        "competition's rules, non-commercial research use only, no redistribution"
    ),
}


def _one(folder: Path, pattern: str) -> Path | None:
    """The single entry of ``folder`` matching ``pattern`` (None: none; error: several)."""
    found = sorted(folder.glob(pattern)) if folder.is_dir() else []
    if len(found) > 1:
        names = ", ".join(repr(p.name) for p in found)
        raise DataError(f"{folder}: several entries match {pattern!r} ({names})")
    return found[0] if found else None


def _images_by_stem(folder: Path) -> dict[str, Path | None]:
    """Image files of ``folder`` by name without extension (None: ambiguous stem)."""
    index: dict[str, Path | None] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            index[path.stem] = None if path.stem in index else path
    return index


def _image(index: dict[str, Path | None], folder: Path, name: str, where: str) -> Path:
    stem = Path(name).stem if Path(name).suffix.lower() in IMAGE_SUFFIXES else name
    if stem not in index:
        raise DataError(f"{where}: image {name!r} not found in {folder}")
    if index[stem] is None:
        raise DataError(f"{where}: several files in {folder} are named {stem!r}.*")
    return index[stem]


def idrid_root(path: Path) -> Path | None:
    """The part B folder (``1. Original Images/`` + ``2. Groundtruths/``) at or under ``path``."""
    path = Path(path)
    for root in (path, path / "B. Disease Grading"):
        if _one(root, "*Original Images") and _one(root, "*Groundtruths"):
            return root
    return None


class IdridGradingReader:
    """IDRiD part B, official layout (``path``: ``B. Disease Grading/`` or its parent).

    ``1. Original Images/{a. Training Set,b. Testing Set}/IDRiD_NNN.jpg``,
    ``2. Groundtruths/{a. …Training Labels,b. …Testing Labels}.csv`` (``Image
    name``, ``Retinopathy grade`` 0-4, ``Risk of macular edema`` 0-2; padded
    headers and trailing empty columns tolerated), optional ``3. Lesion boxes
    …/{a. Training Set,b. Testing Set}/IDRiD_NNN.txt`` (YOLO; class names from
    its ``classes.txt``). Names repeat across the splits, so ids are
    ``train/IDRiD_001``, ``test/IDRiD_001``. IDRiD names no patient
    (``patient`` stays None, except for byte-identical copies, grouped).
    ``boxes`` is None for an image without a label file.
    """

    description = "IDRiD part B: '1. Original Images/', '2. Groundtruths/' [, '3. Lesion boxes/']"

    def detect(self, path: Path) -> bool:
        try:
            return Path(path).is_dir() and idrid_root(path) is not None
        except DataError:
            return False

    def read(self, path: Path, columns: dict[str, str] | None = None) -> list[DrSample]:
        root = idrid_root(path)
        if root is None:
            raise DataError(f"{path}: not IDRiD part B ('1. Original Images/', '2. Groundtruths/')")
        images, truths = _one(root, "*Original Images"), _one(root, "*Groundtruths")
        boxes = _one(root, "*Lesion boxes*")
        names_file = find_yolo_names(boxes) if boxes else None
        names = read_yolo_names(names_file) if names_file else None
        samples = []
        for split, word in IDRID_SPLITS:
            folder = _one(images, f"*{word} Set")
            table = _one(truths, f"*{word} Labels*.csv")
            if folder is None or table is None:
                raise DataError(f"{root}: no '{word} Set' image folder or '{word} Labels' CSV")
            labels = _one(boxes, f"*{word} Set") if boxes else None
            samples += self._split(split, folder, table, labels, names, columns)
        kept, _ = resolve_duplicates(samples, label=lambda s: f"grade {s.label}, DME {s.dme}")
        return kept

    @staticmethod
    def _split(
        split: str,
        folder: Path,
        table: Path,
        labels: Path | None,
        names: list[str] | None,
        columns: dict[str, str] | None,
    ) -> list[DrSample]:
        index = _images_by_stem(folder)
        mapping = {**IDRID_COLUMNS, **(columns or {})}
        header = csv_header(table)
        missing = [repr(c) for c in mapping.values() if header and c not in header]
        if missing:
            raise DataError(f"{table}: IDRiD grading table lacks column(s) {', '.join(missing)}")
        rows = read_csv_rows(table, tuple(IDRID_COLUMNS), mapping)
        samples = []
        for number, row in enumerate(rows, start=2):
            where = f"{table}:{number}"
            if not row["image"]:
                continue  # a row of empty cells
            image = _image(index, folder, row["image"], where)
            samples.append(
                DrSample(
                    f"{split}/{image.stem}",
                    image,
                    label=level(row["label"], where, "retinopathy grade", N_GRADES),
                    split=split,
                    boxes=yolo_annotation(image, labels / f"{image.stem}.txt", names)
                    if labels
                    else None,
                    dme=level(row["dme"], where, "risk of macular edema", DME_LEVELS),
                    source="idrid",
                )
            )
        return unique_ids(samples, table)


def kaggle_layout(root: Path) -> tuple[Path, str, str, Path] | None:
    """(labels CSV, image column, grade column, image folder) of a Kaggle layout, or None."""
    root = Path(root)
    folder = next((root / f for f in KAGGLE_FOLDERS if (root / f).is_dir()), None)
    if folder is None:
        return None
    for name, image, grade in KAGGLE_TABLES:
        if (root / name).is_file() and {image, grade} <= set(csv_header(root / name)):
            return root / name, image, grade, folder
    return None


class KaggleGradingReader:
    """Kaggle DR layouts: APTOS 2019 (``train.csv``: ``id_code,diagnosis``) and EyePACS
    (``trainLabels.csv``: ``image,level``); images ``<id>.<any image extension>`` in
    ``train_images/`` or ``train/``.

    Neither names a split (the core's hold-out divides the images). APTOS names
    no patient; EyePACS images ``<patient>_left``/``_right`` carry that patient.
    """

    description = (
        "Kaggle: train.csv (id_code,diagnosis) or trainLabels.csv (image,level), "
        "train_images/ or train/"
    )

    def detect(self, path: Path) -> bool:
        return Path(path).is_dir() and kaggle_layout(path) is not None

    def read(self, path: Path, columns: dict[str, str] | None = None) -> list[DrSample]:
        layout = kaggle_layout(path)
        if layout is None:
            raise DataError(
                f"{path}: no Kaggle layout (train.csv with id_code,diagnosis or "
                "trainLabels.csv with image,level, and train_images/ or train/)"
            )
        table, image_column, grade_column, folder = layout
        eyepacs = table.name == "trainLabels.csv"
        index = _images_by_stem(folder)
        mapping = {"image": image_column, "label": grade_column, **(columns or {})}
        samples = []
        for number, row in enumerate(read_csv_rows(table, ("image", "label"), mapping), start=2):
            where = f"{table}:{number}"
            image = _image(index, folder, row["image"], where)
            eye = EYEPACS_EYE.match(image.stem) if eyepacs else None
            samples.append(
                DrSample(
                    image.stem,
                    image,
                    label=level(row["label"], where, "grade", N_GRADES),
                    patient=row.get("patient") or (eye["patient"] if eye else None),
                    source="eyepacs" if eyepacs else "aptos2019",
                )
            )
        kept, _ = resolve_duplicates(unique_ids(samples, table), label=lambda s: f"grade {s.label}")
        return kept
