"""Data-set readers: the :class:`Reader` protocol, CSV tables and the generic readers.

A reader turns a data-set path into all its samples, each marked with the
split the data set gives it (``train``, ``val``, ``test``) or ``None`` where
it gives none; :func:`read_split` then picks one split by the rule of
:mod:`eyescan.data.splits`. Task plugins register readers for their layouts
through the ``register_readers`` hook; ``eyescan train``/``evaluate`` pick the
first whose ``detect`` accepts the path.

CSV files are read as they are: a column mapping (``--columns
image=path,label=treatment,patient=infant``) renames the user's columns to
the canonical names (:data:`CANONICAL_COLUMNS`).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from eyescan.errors import DataError


@dataclass
class Sample:
    """One item of a data set: an image and its labels (mask paths and/or a label)."""

    id: str
    image: Path
    masks: dict[str, Path] = field(default_factory=dict)
    fov: Path | None = None
    label: int | None = None
    split: str | None = None  # train | val | test as the data set says; None: not said
    patient: str | None = None  # who the image is of (patient or eye): groups splits
    notes: list[str] = field(default_factory=list)  # data-quality remarks (read_split's info)


class Reader(Protocol):
    """What a data-set reader offers."""

    description: str

    def detect(self, path: Path) -> bool:
        """True if ``path`` looks like this reader's layout."""

    def read(self, path: Path, columns: dict[str, str] | None = None) -> list[Sample]:
        """All samples, each with the ``split`` the data set gives it (or ``None``).

        ``columns`` maps canonical column names to the user's (CSV readers). A
        reader of data with several observers' labels also takes
        ``annotator: int | None`` (``--annotator``; ``None``: the first).
        """


#: Column names the readers understand; ``--columns`` maps a CSV's own names onto them.
CANONICAL_COLUMNS = ("image", "label", "split", "patient", "fov")


def parse_columns(text: str | None) -> dict[str, str]:
    """``"image=path,label=treatment"`` -> ``{"image": "path", "label": "treatment"}``."""
    mapping: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        name, sep, column = part.partition("=")
        if not sep or not name.strip() or not column.strip():
            raise DataError(f"--columns: {part.strip()!r} is not NAME=COLUMN")
        mapping[name.strip()] = column.strip()
    return mapping


def _csv_dicts(path: Path, what: str) -> list[dict[str, str]]:
    """Rows of a CSV file as dicts (names and values stripped, blank columns dropped);
    a one-line :class:`DataError` when it cannot be read."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read {what} ({exc})") from None
    return [
        {k.strip(): (v or "").strip() for k, v in row.items() if isinstance(k, str) and k.strip()}
        for row in rows
    ]


def read_csv_rows(
    path: Path, required: tuple[str, ...] = (), columns: dict[str, str] | None = None
) -> list[dict[str, str]]:
    """A CSV table's rows as dicts under canonical names.

    ``columns`` maps a canonical name to the file's column (``{"image": "path"}``);
    the mapped column is read under the canonical name. A one-line
    :class:`DataError` names the file when it cannot be read, is empty, or
    lacks a ``required`` (canonical) column or a mapped one.
    """
    path = Path(path)
    rows = _csv_dicts(path, "table")
    header = set(rows[0]) if rows else set()
    mapping = dict(columns or {})
    absent = [f"{c!r} (for {n})" for n, c in mapping.items() if rows and c not in header]
    if absent:
        raise DataError(f"{path}: --columns names column(s) not in the file: {', '.join(absent)}")
    if mapping:
        rows = [{**row, **{n: row.get(c, "") for n, c in mapping.items()}} for row in rows]
    missing = [c for c in required if not rows or c not in rows[0]]
    if missing:
        names = " and ".join(repr(c) for c in missing)
        hint = " (map yours with --columns NAME=COLUMN)" if rows else ""
        raise DataError(
            f"{path}: table needs {names} column{'s' if len(missing) > 1 else ''}{hint}"
        )
    return rows


def split_of(value: str | None, where: str) -> str | None:
    """A split cell as ``train``/``val``/``test`` (``validation``, ``training`` accepted)."""
    text = (value or "").strip().lower()
    if not text:
        return None
    names = {
        "train": "train",
        "training": "train",
        "val": "val",
        "valid": "val",
        "validation": "val",
        "test": "test",
        "testing": "test",
    }
    if text not in names:
        raise DataError(f"{where}: split {value!r} is not train, val or test")
    return names[text]


class ManifestReader:
    """CSV manifest: ``image`` column, mask columns, optional ``fov``, ``label`` and ``split``.

    Paths are relative to the CSV's folder; a sample's id is its image path
    without the suffix. Rows without a ``split`` value carry none (the
    hold-out rule divides them). ``mask_columns`` maps a mask name to its column.
    """

    description = "CSV manifest with columns image, <masks>, [fov], [label], [split]"

    def __init__(self, mask_columns: dict[str, str] | None = None):
        self.mask_columns = mask_columns or {}

    def detect(self, path: Path) -> bool:
        return Path(path).suffix.lower() == ".csv" and Path(path).is_file()

    def read(self, path: Path, columns: dict[str, str] | None = None) -> list[Sample]:
        path = Path(path)
        rows = read_csv_rows(path, ("image",), columns)
        missing = [c for c in self.mask_columns.values() if c not in rows[0]]
        if missing:
            raise DataError(f"{path}: manifest lacks column(s) {', '.join(missing)}")
        base = path.parent
        samples = []
        for number, row in enumerate(rows, start=2):
            where = f"{path}:{number}"
            image = base / row["image"]
            masks = {name: base / row[col] for name, col in self.mask_columns.items() if row[col]}
            fov = base / row["fov"] if row.get("fov") else None
            label = None
            if row.get("label", ""):
                try:
                    label = int(row["label"])
                except ValueError:
                    raise DataError(f"{where}: label {row['label']!r} is not an integer") from None
            samples.append(
                Sample(
                    _manifest_id(row["image"]),
                    image,
                    masks,
                    fov,
                    label,
                    split=split_of(row.get("split"), where),
                    patient=row.get("patient") or None,
                )
            )
        if not samples:
            raise DataError(f"{path}: no rows")
        return samples


def _manifest_id(image: str) -> str:
    """A manifest row's id: its relative image path without the suffix (the file name
    alone for an absolute path, which would only tell where the data lies here)."""
    path = Path(image)
    return path.stem if path.is_absolute() else path.with_suffix("").as_posix()


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
    """Class folders: ``ROOT/[train|val|test/]<class>/*.jpg``; classes sorted by name.

    ``classes`` fixes the label order (e.g. ``["normal", "rop"]``); otherwise
    the sorted folder names are used. Images under ``train/``, ``val/`` or
    ``test/`` carry that split; images of plain class folders carry none
    (the hold-out rule divides them).
    """

    description = "class folders: [train|val|test/]<class>/<images>"

    def __init__(self, classes: list[str] | None = None):
        self.classes = classes

    def _roots(self, path: Path) -> list[tuple[Path, str | None]]:
        path = Path(path)
        split_dirs = [(path / s, s) for s in ("train", "val", "test") if (path / s).is_dir()]
        return split_dirs or [(path, None)]

    def detect(self, path: Path) -> bool:
        path = Path(path)
        if not path.is_dir():
            return False
        root = self._roots(path)[0][0]
        names = self.classes or []
        return (
            any((root / c).is_dir() for c in names)
            if names
            else any(p.is_dir() for p in root.iterdir())
        )

    def read(self, path: Path, columns: dict[str, str] | None = None) -> list[Sample]:
        from eyescan.imaging.imageio import IMAGE_EXTENSIONS

        samples = []
        classes: list[str] = []
        for root, split in self._roots(path):
            classes = self.classes or sorted(p.name for p in root.iterdir() if p.is_dir())
            for label, name in enumerate(classes):
                folder = root / name
                if not folder.is_dir():
                    continue
                for image in sorted(folder.rglob("*")):
                    if image.suffix.lower() in IMAGE_EXTENSIONS:
                        sid = (
                            f"{name}/{image.stem}"
                            if split is None
                            else f"{split}/{name}/{image.stem}"
                        )
                        samples.append(Sample(sid, image, label=label, split=split))
        if not samples:
            raise DataError(f"{path}: no images in class folders {classes}")
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


def read_box_csv(path: Path, columns: dict[str, str] | None = None) -> dict[str, BoxAnnotation]:
    """Boxes from a CSV with columns ``image,label,xmin,ymin,xmax,ymax`` (one box a row).

    ``columns`` maps those names to the file's own (``--columns``).
    """
    path = Path(path)
    rows = read_csv_rows(path, (), columns) if columns else _csv_dicts(path, "box CSV")
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


def read_samples(
    reader: Reader,
    path: Path,
    columns: dict[str, str] | None = None,
    annotator: int | None = None,
) -> list[Sample]:
    """All samples of ``path`` through ``reader`` (also readers of the older protocol).

    ``annotator`` reaches readers whose ``read`` takes it; asking another
    reader for an observer other than the first is an error. A reader written
    for contract 1 has ``read(path, split)``; its ``train`` and ``test``
    answers are marked with that split, and images it returns for both (it had
    no split information) are marked with none.
    """
    import inspect

    params = list(inspect.signature(reader.read).parameters)
    if "annotator" in params:
        return list(reader.read(Path(path), columns=columns, annotator=annotator))
    if annotator not in (None, 1):
        raise DataError(f"{path}: this layout has one set of labels (no --annotator {annotator})")
    if "split" not in params:
        return list(reader.read(Path(path), columns=columns))
    by_split = {s: list(reader.read(Path(path), s)) for s in ("train", "test")}
    test_images = {str(x.image) for x in by_split["test"]}
    both = {str(x.image) for x in by_split["train"]} & test_images
    samples = []
    for split, items in by_split.items():
        for sample in items:
            if str(sample.image) in both:
                if split == "train":
                    sample.split = None
                    samples.append(sample)
            else:
                sample.split = split
                samples.append(sample)
    return samples


@dataclass
class SplitData:
    """The samples of one split, where they came from and how they were chosen."""

    samples: list[Sample]
    reader: str
    info: dict[str, object]
    reader_object: Reader | None = None  # the reader itself (its per-data-set settings)


def read_split(
    registry,
    task: str,
    data: Path,
    split: str,
    reader: str | None = None,
    columns: dict[str, str] | None = None,
    holdout=None,
    annotator: int | None = None,
    fold=None,
) -> SplitData:
    """Read ``data`` with the task's reader and keep ``split`` by the hold-out rule.

    ``fold`` (a :class:`eyescan.data.splits.Fold`, from ``eyescan evaluate --cv``)
    replaces the data set's split marks: its patients are ``test``, the rest
    ``train``; ``info["fold"]`` names it.

    ``holdout`` is a :class:`eyescan.data.splits.HoldOut` (default: 20 %, seed 0)
    or ``False`` for none (then ``test`` of unsplit data is refused).
    ``info`` records the reader, the rule, the count and a hash of the ids, and
    ``notes``: the samples' data-quality remarks (e.g. byte-identical copies), if any.
    """
    from eyescan.data import splits

    name, found = find_reader(registry, task, data, reader)
    samples = read_samples(found, data, columns, annotator)
    rule = splits.HoldOut() if holdout is None else (None if holdout is False else holdout)
    if fold is not None:
        samples = splits.apply_fold(samples, fold)
    chosen, info = splits.select(samples, split, rule)
    if fold is not None:
        info = {**info, "rule": f"{fold.name}: {info['rule']}", "fold": fold.name}
    labels = {"annotator": annotator} if annotator else {}
    notes = sorted({n for s in samples for n in getattr(s, "notes", None) or ()})
    info = {**info, "notes": notes} if notes else info
    return SplitData(chosen, name, {"reader": name, **labels, **info}, found)


def read_task_split(
    task: str, data: Path, options: Mapping[str, Any], split: str | None = None
) -> SplitData:
    """:func:`read_split` with a train/evaluate hook's ``options`` (reader, columns, holdout,
    and ``fold`` in cross-validation).

    ``split`` defaults to ``options["split"]`` (evaluate's ``--split``), else ``test``.
    """
    from eyescan.plugins.registry import get_registry

    return read_split(
        get_registry(),
        task,
        data,
        split or options.get("split") or "test",
        options.get("reader"),
        options.get("columns"),
        options.get("holdout"),
        options.get("annotator"),
        options.get("fold"),
    )
