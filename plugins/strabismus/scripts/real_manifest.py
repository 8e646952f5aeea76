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

from eyescan_strabismus.faces import BOXES, build

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
