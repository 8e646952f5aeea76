"""Data-set readers: the :class:`Reader` protocol and the generic CSV manifest.

A reader turns a data-set path into a list of samples for one split
(``"train"`` or ``"test"``). Task plugins register readers for their layouts
through the ``register_readers`` hook; ``eyescan train``/``evaluate`` pick the
first whose ``detect`` accepts the path.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from eyescan.errors import DataError


@dataclass
class Sample:
    """One item of a data set: an image and its labels (mask paths and/or a label)."""

    id: str
    image: Path
    masks: dict[str, Path] = field(default_factory=dict)
    fov: Path | None = None
    label: int | None = None


class Reader(Protocol):
    """What a data-set reader offers."""

    description: str

    def detect(self, path: Path) -> bool:
        """True if ``path`` looks like this reader's layout."""

    def read(self, path: Path, split: str) -> list[Sample]:
        """Samples of ``split`` (``train`` or ``test``)."""


def _csv_dicts(path: Path, what: str) -> list[dict[str, str]]:
    """Rows of a CSV file as dicts; a one-line :class:`DataError` when it cannot be read."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read {what} ({exc})") from None


def read_csv_rows(path: Path, required: tuple[str, ...] = ()) -> list[dict[str, str]]:
    """A CSV manifest's rows as dicts; a one-line :class:`DataError` naming the file when
    it cannot be read, is empty or lacks a ``required`` column."""
    path = Path(path)
    rows = _csv_dicts(path, "manifest")
    missing = [c for c in required if not rows or c not in rows[0]]
    if missing:
        names = " and ".join(repr(c) for c in missing)
        raise DataError(f"{path}: manifest needs {names} column{'s' if len(missing) > 1 else ''}")
    return rows


class ManifestReader:
    """CSV manifest: ``image`` column, mask columns, optional ``fov``, ``label`` and ``split``.

    Paths are relative to the CSV's folder. Rows without a ``split`` column
    value belong to every split. ``mask_columns`` maps a mask name to its column.
    """

    description = "CSV manifest with columns image, <masks>, [fov], [label], [split]"

    def __init__(self, mask_columns: dict[str, str] | None = None):
        self.mask_columns = mask_columns or {}

    def detect(self, path: Path) -> bool:
        return Path(path).suffix.lower() == ".csv" and Path(path).is_file()

    def read(self, path: Path, split: str) -> list[Sample]:
        path = Path(path)
        rows = read_csv_rows(path, ("image",))
        missing = [c for c in self.mask_columns.values() if c not in rows[0]]
        if missing:
            raise DataError(f"{path}: manifest lacks column(s) {', '.join(missing)}")
        base = path.parent
        samples = []
        for number, row in enumerate(rows, start=2):
            if row.get("split") and row["split"].strip() != split:
                continue
            image = base / row["image"]
            masks = {name: base / row[col] for name, col in self.mask_columns.items() if row[col]}
            fov = base / row["fov"] if row.get("fov") else None
            label = None
            if row.get("label", "").strip():
                try:
                    label = int(row["label"])
                except ValueError:
                    raise DataError(
                        f"{path}:{number}: label {row['label']!r} is not an integer"
                    ) from None
            samples.append(Sample(Path(row["image"]).stem, image, masks, fov, label))
        if not samples:
            raise DataError(f"{path}: no rows for split {split!r}")
        return samples


def find_reader(registry, task: str, path: Path, name: str | None = None) -> tuple[str, Reader]:
    """The reader named ``name``, or the first registered for ``task`` that detects ``path``."""
    if name:
        entry = registry.reader(task, name)
        return entry.name, entry.reader
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: data set not found")
    for entry in registry.readers_for(task):
        if entry.reader.detect(path):
            return entry.name, entry.reader
    known = "; ".join(f"{e.name}: {e.reader.description}" for e in registry.readers_for(task))
    raise DataError(f"{path}: no {task} reader recognises this layout (readers: {known or 'none'})")


class ClassFolderReader:
    """Class folders: ``ROOT/[train|test/]<class>/*.jpg``; classes sorted by name.

    ``classes`` fixes the label order (e.g. ``["normal", "rop"]``); otherwise
    the sorted folder names are used. Without ``train``/``test`` folders every
    image belongs to both splits (use ``--split``-aware CSVs for real work).
    """

    description = "class folders: [train|test/]<class>/<images>"

    def __init__(self, classes: list[str] | None = None):
        self.classes = classes

    def _root(self, path: Path, split: str) -> Path:
        path = Path(path)
        return path / split if (path / split).is_dir() else path

    def detect(self, path: Path) -> bool:
        path = Path(path)
        if not path.is_dir():
            return False
        root = self._root(path, "train")
        names = self.classes or []
        return (
            any((root / c).is_dir() for c in names)
            if names
            else any(p.is_dir() for p in root.iterdir())
        )

    def read(self, path: Path, split: str) -> list[Sample]:
        from eyescan.imageio import IMAGE_EXTENSIONS

        root = self._root(path, split)
        classes = self.classes or sorted(p.name for p in root.iterdir() if p.is_dir())
        samples = []
        for label, name in enumerate(classes):
            folder = root / name
            if not folder.is_dir():
                continue
            for image in sorted(folder.rglob("*")):
                if image.suffix.lower() in IMAGE_EXTENSIONS:
                    samples.append(Sample(f"{name}/{image.stem}", image, label=label))
        if not samples:
            raise DataError(f"{root}: no images in class folders {classes}")
        return samples


@dataclass
class BoxAnnotation:
    """Boxes of one image, as Pascal VOC XML (labelImg) or a CSV row set holds them."""

    filename: str
    width: int
    height: int
    labels: list[str] = field(default_factory=list)
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)  # x0 y0 x1 y1


def read_voc_xml(path: Path) -> BoxAnnotation:
    """Parse one Pascal VOC annotation (as labelImg writes it)."""
    import xml.etree.ElementTree as ET

    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise DataError(f"{path}: cannot parse VOC XML ({exc})") from None
    size = root.find("size")

    def number(node, tag: str) -> float:
        text = node.findtext(tag) if node is not None else None
        if text is None:
            raise DataError(f"{path}: missing <{tag}>")
        return float(text)

    ann = BoxAnnotation(
        filename=root.findtext("filename") or path.with_suffix(".jpg").name,
        width=int(number(size, "width")) if size is not None else 0,
        height=int(number(size, "height")) if size is not None else 0,
    )
    for obj in root.iter("object"):
        box = obj.find("bndbox")
        ann.labels.append((obj.findtext("name") or "").strip())
        ann.boxes.append(tuple(number(box, t) for t in ("xmin", "ymin", "xmax", "ymax")))
    return ann


def read_box_csv(path: Path) -> dict[str, BoxAnnotation]:
    """Boxes from a CSV with columns ``image,label,xmin,ymin,xmax,ymax`` (one box a row)."""
    path = Path(path)
    rows = _csv_dicts(path, "box CSV")
    needed = {"image", "label", "xmin", "ymin", "xmax", "ymax"}
    if rows and not needed <= set(rows[0]):
        raise DataError(f"{path}: box CSV needs columns {', '.join(sorted(needed))}")
    out: dict[str, BoxAnnotation] = {}
    for number, row in enumerate(rows, start=2):
        ann = out.setdefault(row["image"], BoxAnnotation(row["image"], 0, 0))
        if not row["label"]:
            continue  # an image without boxes
        try:
            box = tuple(float(row[k]) for k in ("xmin", "ymin", "xmax", "ymax"))
        except ValueError:
            raise DataError(f"{path}:{number}: box coordinates must be numbers") from None
        ann.labels.append(row["label"])
        ann.boxes.append(box)
    return out
