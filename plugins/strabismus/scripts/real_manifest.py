"""The manifest of the real strabismus-faces photographs, for the plugin's ``manifest`` reader.

    python plugins/strabismus/scripts/real_manifest.py DATA_DIR OUT_CSV [--boxes CSV]

From ``DATA_DIR/labels.csv`` (``path,split,code,…,binary``) and the reviewed eye-region
boxes (``--boxes``, default the plugin's ``data/eye_boxes.csv``:
``path,split,label,x0,y0,x1,y1,method``), one row per photograph:

``image,id,label,subtype,code,xmin,ymin,xmax,ymax,split,patient``

- ``image``: the photograph's absolute path (the reader takes absolute paths as they
  are); ``id``: its path in DATA_DIR without the suffix (``test/21/21_ (7)``), so ids do
  not depend on where OUT_CSV lies;
- ``label``: ``normal``/``strabismus`` (labels.csv's ``binary``); ``subtype`` from the
  code: ``11`` normal, ``12``/``31`` exotropia, ``13``/``21`` esotropia (checked against
  labels.csv's ``label``); ``split``: ``train``/``test`` as the data set gives it;
- ``patient``: byte-identical photographs (SHA-256, :func:`eyescan.api.find_identical`)
  share one, ``identical:<sha256[:12]>``; empty for the others (the data set names no
  patients, so each photograph is its own group);
- byte-identical copies across splits follow the core's rule
  (:func:`eyescan.api.resolve_duplicates`): the test copy stays, the train copy is
  dropped from the manifest (strabismus-faces has 6 such pairs). Every dropped row is
  listed in ``<OUT_CSV stem>_dropped.csv`` (``image,id,split,label,subtype,same_as,
  sha256``) and in one note per pair on stderr.

Nothing but paths, labels and box numbers is written: no image, crop or picture of a
face. OUT_CSV belongs under ``runs/`` (git-ignored) or /tmp.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

PLUGIN = Path(__file__).resolve().parents[1]
BOXES = PLUGIN / "eyescan_strabismus" / "data" / "eye_boxes.csv"
COLUMNS = (
    "image",
    "id",
    "label",
    "subtype",
    "code",
    "xmin",
    "ymin",
    "xmax",
    "ymax",
    "split",
    "patient",
)
DROPPED_COLUMNS = ("image", "id", "split", "label", "subtype", "same_as", "sha256")
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
    from eyescan_strabismus.data import EyeSample

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


def dropped_path(out_csv: Path) -> Path:
    """The sidecar listing the rows dropped as copies of held-out images."""
    return Path(out_csv).with_name(f"{Path(out_csv).stem}_dropped.csv")


def write(out_csv: Path, manifest: list[dict], dropped: list[dict]) -> None:
    """Write the manifest and its ``_dropped.csv`` sidecar (header only when none)."""
    out_csv = Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    for path, columns, rows in (
        (out_csv, COLUMNS, manifest),
        (dropped_path(out_csv), DROPPED_COLUMNS, dropped),
    ):
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the strabismus-faces folder (labels.csv)")
    parser.add_argument("out", type=Path, help="manifest CSV to write (under runs/ or /tmp)")
    parser.add_argument("--boxes", type=Path, default=BOXES, help="eye-region box CSV")
    args = parser.parse_args(argv)
    try:
        manifest, dropped, notes = build(args.data, args.boxes)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write(args.out, manifest, dropped)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    splits = {s: sum(r["split"] == s for r in manifest) for s in ("train", "test")}
    print(
        f"{args.out}: {len(manifest)} photographs (train {splits['train']}, test "
        f"{splits['test']}); {len(dropped)} train copies of test photographs dropped, "
        f"listed in {dropped_path(args.out)}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
