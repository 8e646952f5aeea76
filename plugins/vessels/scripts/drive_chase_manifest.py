"""Write one manifest of DRIVE and CHASE_DB1 as distributed, for training on both.

    python plugins/vessels/scripts/drive_chase_manifest.py ../shared/data/DRIVE \
        ../shared/data/CHASE_DB1 runs/drive-chase/manifest.csv

Splits: DRIVE ``training/`` (21–40) train, 38–40 of them validation, ``test/``
(01–20) test; CHASE_DB1 images 01–10 train (the seed's split), 10L/10R of
them validation, 11–14 test. CHASE_DB1 ships no official FOV masks, so its
FOV is left empty (estimated); its labels are the first observer's. Paths in
the manifest are absolute: nothing is copied.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

DRIVE_VAL = {38, 39, 40}
CHASE_TRAIN = range(1, 11)
CHASE_VAL = {10}


def rows(drive: Path, chase: Path) -> list[dict[str, str]]:
    out = []
    for folder, split in (("training", "train"), ("test", "test")):
        for image in sorted((drive / folder / "images").glob("*.tif")):
            number = int(image.stem.split("_")[0])
            mask = drive / folder / "1st_manual" / f"{number:02d}_manual1.gif"
            fov = drive / folder / "mask" / f"{image.stem}_mask.gif"
            chosen = "val" if split == "train" and number in DRIVE_VAL else split
            out.append(
                {
                    "image": str(image.resolve()),
                    "mask": str(mask.resolve()),
                    "fov": str(fov.resolve()),
                    "split": chosen,
                    "patient": f"drive-{number}",
                }
            )
    for image in sorted((chase / "images").glob("Image_*.jpg")):
        number = int(image.stem[6:8])
        split = "train" if number in CHASE_TRAIN else "test"
        if split == "train" and number in CHASE_VAL:
            split = "val"
        mask = chase / "1stHO" / f"{image.stem}_1stHO.png"
        out.append(
            {
                "image": str(image.resolve()),
                "mask": str(mask.resolve()),
                "fov": "",
                "split": split,
                "patient": f"chase-{number:02d}",
            }
        )  # both eyes: one child
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    drive, chase, out = (Path(a) for a in argv)
    table = rows(drive, chase)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, ["image", "mask", "fov", "split", "patient"])
        writer.writeheader()
        writer.writerows(table)
    counts = {s: sum(r["split"] == s for r in table) for s in ("train", "val", "test")}
    print(f"{out}: {len(table)} images {counts}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
