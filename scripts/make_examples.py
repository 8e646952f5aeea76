"""Write the bundled example images.

    python scripts/make_examples.py [--idrid "../shared/data/IDRiD/B. Disease Grading"]

1. scikit-image's CC0 retina photograph (Häggström, Wikimedia Commons) at two sizes;
2. four IDRiD disease-grading **test** photographs (CC BY 4.0, attribution in
   examples/README.md), the first test photo of DR grade 0, 2, 3 and 4 in the official
   label order (a rule, not a choice by how well our models do on them), down-sampled
   to at most 1072 px wide (a quarter of the originals: 1072×712) JPEG. Skipped when
   the IDRiD folder is absent.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from PIL import Image
from skimage import data

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
IDRID = ROOT.parent / "shared" / "data" / "IDRiD" / "B. Disease Grading"
GRADES = (0, 2, 3, 4)
#: Width of the bundled IDRiD copies (a quarter of the 4288-px originals).
WIDTH = 1072
#: Test photos that are byte-identical to a training photo (IDRiD/duplicates.csv).
SKIP = {"IDRiD_064"}


def haggstrom() -> None:
    image = Image.fromarray(data.retina())  # Häggström, Wikimedia Commons, CC0 1.0
    image.resize((584, 584), Image.LANCZOS).save(
        EXAMPLES / "haggstrom_fundus_left_584.jpg", quality=92
    )
    image.resize((900, 900), Image.LANCZOS).transpose(Image.FLIP_LEFT_RIGHT).save(
        EXAMPLES / "haggstrom_fundus_mirrored_900.jpg", quality=92
    )


def idrid_rows(folder: Path) -> list[tuple[str, int, int]]:
    """``(name, DR grade, DME risk)`` of the test photos, in the official file's order."""
    labels = folder / "2. Groundtruths" / "b. IDRiD_Disease Grading_Testing Labels.csv"
    with open(labels, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))[1:]
    return [(r[0].strip(), int(r[1]), int(r[2])) for r in rows if r and r[0].strip()]


def idrid(folder: Path) -> list[Path]:
    written = []
    rows = [r for r in idrid_rows(folder) if r[0] not in SKIP]
    for grade in GRADES:
        name, _, dme = next(r for r in rows if r[1] == grade)
        source = folder / "1. Original Images" / "b. Testing Set" / f"{name}.jpg"
        image = Image.open(source).convert("RGB")
        factor = max(1, -(-image.width // WIDTH))  # the originals are 4288 wide; copies 1072
        small = image.resize((image.width // factor, image.height // factor), Image.LANCZOS)
        target = EXAMPLES / f"idrid_{name[-3:]}_dr{grade}_dme{dme}.jpg"
        small.save(target, quality=90)
        written.append(target)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idrid", type=Path, default=IDRID)
    args = parser.parse_args()
    haggstrom()
    if args.idrid.is_dir():
        for path in idrid(args.idrid):
            print(path.relative_to(ROOT))
    else:
        print(f"{args.idrid}: not found; IDRiD examples not written")


if __name__ == "__main__":
    main()
