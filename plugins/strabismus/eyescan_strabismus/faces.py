"""The strabismus-faces layout (``labels.csv`` with ``path,split,code,…,binary`` and
``train|test/<code>/`` photographs) read as it is, with the plugin's reviewed eye-region
boxes (``data/eye_boxes.csv``): reader ``strabismus-faces``.

Sub-types from the folder code (``11`` normal, ``12``/``31`` exotropia, ``13``/``21``
esotropia); byte-identical photographs share a ``patient``; a training photograph that
is a copy of a test photograph is dropped (the core's ``resolve_duplicates``: the test
copy stays). ``scripts/real_manifest.py`` writes the same rows as a manifest CSV.
"""

from __future__ import annotations

import csv
from pathlib import Path

from eyescan.api import DataError
from eyescan_strabismus.data import EyeSample, parse_label

BOXES = Path(__file__).parent / "data" / "eye_boxes.csv"
LABEL_COLUMNS = {"path", "split", "code", "binary"}


#: Sub-type of each folder code (<right eye><left eye>; 1 normal, 2/3 deviated).
SUBTYPES = {
    "11": "normal",
    "12": "exotropia",
    "31": "exotropia",
    "13": "esotropia",
    "21": "esotropia",
}


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        return [
            {k.strip(): (v or "").strip() for k, v in r.items()} for r in csv.DictReader(handle)
        ]


def build(data_dir: Path, boxes_csv: Path = BOXES) -> tuple[list[dict], list[dict], list[str]]:
    """``(manifest rows, dropped rows, notes)`` of the photographs in ``data_dir``.

    Raises ``ValueError`` when a photograph has no box, a box row disagrees with
    labels.csv on split or label, a code is unknown, or a file is missing.
    """
    from eyescan.api import resolve_duplicates

    data_dir = Path(data_dir).resolve()
    labels = _rows(data_dir / "labels.csv")
    boxes = {row["path"]: row for row in _rows(Path(boxes_csv))}
    samples, rows = [], {}
    for item in labels:
        path = item["path"]
        if path not in boxes:
            raise ValueError(f"{boxes_csv}: no eye-region box for {path}")
        box = boxes[path]
        if box["split"] != item["split"] or box["label"] != item["binary"]:
            raise ValueError(
                f"{boxes_csv}: {path} is {box['split']}/{box['label']} there, "
                f"{item['split']}/{item['binary']} in labels.csv"
            )
        code = item["code"]
        if code not in SUBTYPES:
            raise ValueError(f"{data_dir / 'labels.csv'}: {path}: unknown code {code!r}")
        subtype = SUBTYPES[code]
        if item.get("label") and item["label"] != subtype:
            raise ValueError(f"{path}: code {code} is {subtype}, labels.csv says {item['label']}")
        image = data_dir / path
        if not image.is_file():
            raise ValueError(f"{image}: missing")
        sample_id = Path(path).with_suffix("").as_posix()
        samples.append(
            EyeSample(sample_id, image, label=item["binary"], split=item["split"], subtype=subtype)
        )
        rows[sample_id] = {
            "image": str(image),
            "id": sample_id,
            "label": item["binary"],
            "subtype": subtype,
            "code": code,
            "xmin": box["x0"],
            "ymin": box["y0"],
            "xmax": box["x1"],
            "ymax": box["y1"],
            "split": item["split"],
            "patient": "",
        }
    kept, groups = resolve_duplicates(samples, label=lambda s: f"{s.label} ({s.subtype})")
    kept_ids = {s.id for s in kept}
    for sample in kept:
        rows[sample.id]["patient"] = sample.patient or ""
    dropped, notes = [], []
    for group in groups:
        notes.append(group.note())
        for name in group.dropped:
            row = rows[name]
            dropped.append(
                {
                    **{k: row[k] for k in ("image", "id", "split", "label", "subtype")},
                    "same_as": " ".join(group.kept),
                    "sha256": group.sha256,
                }
            )
    manifest = [row for name, row in rows.items() if name in kept_ids]
    return manifest, dropped, notes


class FacesReader:
    """``labels.csv`` (``path,split,code,binary``) + ``train|test/<code>/`` photographs."""

    description = "labels.csv (path, split, code, binary) and train|test/<code>/ photographs"

    def detect(self, path: Path) -> bool:
        labels = Path(path) / "labels.csv"
        if not labels.is_file():
            return False
        with open(labels, newline="", encoding="utf-8-sig") as handle:
            header = {c.strip() for c in next(csv.reader(handle), [])}
        return LABEL_COLUMNS <= header

    def read(self, path: Path, columns: dict[str, str] | None = None) -> list[EyeSample]:
        try:
            manifest, _, _ = build(Path(path))
        except ValueError as exc:
            raise DataError(str(exc)) from None
        return [
            EyeSample(
                row["id"],
                Path(row["image"]),
                label=parse_label(row["label"], f"{path}/labels.csv: {row['id']}"),
                split=row["split"],
                patient=row["patient"] or None,
                boxes=[tuple(float(row[k]) for k in ("xmin", "ymin", "xmax", "ymax"))],
                subtype=row["subtype"],
            )
            for row in manifest
        ]
