"""Write the fixed 5-fold cross-validation views of the IDRiD 512-px training copy.

Fold ``k`` holds out the images whose position in the sorted list of ids is
``k`` modulo the fold count (5 folds: fold 0 = IDRiD_01, 06, 11, …, 51; sizes
11, 11, 11, 11, 10). Each view is a folder of symbolic links to the data set's
files (nothing is copied), readable by the same ``idrid-512`` reader:

    OUT/fold{k}/train/   the other folds' images and masks (training)
    OUT/fold{k}/test/    the fold's images and masks (scored)
    OUT/fold{k}/test-he/ the fold's images of the haemorrhage copy (01–20 at
                         1072×712), when ``--he`` names it
    OUT/all/train/       all images (the model that ships)
    OUT/folds.json       the assignment

    python plugins/redlesion/scripts/cv_folds.py TRAIN_512_DIR OUT [--he HE_DIR]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff"}


def image_ids(folder: Path) -> list[str]:
    """``IDRiD_NN`` of the images (not the masks) in ``folder``, sorted."""
    return sorted(
        p.stem
        for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES and p.stem.count("_") == 1
    )


def assign(ids: list[str], folds: int) -> dict[str, int]:
    """The fold of each id: its position in the sorted ids modulo ``folds``."""
    return {image: k % folds for k, image in enumerate(sorted(ids))}


def link(files: list[Path], folder: Path) -> None:
    """Symbolic links to ``files`` in ``folder`` (replaced when present)."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        if old.is_symlink():
            old.unlink()
    for path in files:
        os.symlink(path.resolve(), folder / path.name)


def files_of(folder: Path, ids: set[str]) -> list[Path]:
    """Images and masks of ``ids`` in ``folder`` (``IDRiD_NN.*`` and ``IDRiD_NN_*.*``)."""
    return sorted(p for p in folder.iterdir() if p.name.split(".")[0][:8] in ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("train", type=Path, help="the 512-px copy (IDRiD_NN.jpg, _MA, _HE)")
    parser.add_argument("out", type=Path)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--he", type=Path, help="haemorrhage copy (images/, masks/)")
    args = parser.parse_args()
    ids = image_ids(args.train)
    folds = assign(ids, args.folds)
    for k in range(args.folds):
        held = {i for i, f in folds.items() if f == k}
        base = args.out / f"fold{k}"
        link(files_of(args.train, set(ids) - held), base / "train")
        link(files_of(args.train, held), base / "test")
        if args.he:
            for part in ("images", "masks"):
                link(files_of(args.he / part, held), base / "test-he" / part)
    link(files_of(args.train, set(ids)), args.out / "all" / "train")
    record = {
        "data": str(args.train),
        "rule": f"position in the sorted ids modulo {args.folds}",
        "folds": {str(k): sorted(i for i, f in folds.items() if f == k) for k in range(args.folds)},
    }
    (args.out / "folds.json").write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps({k: len(v) for k, v in record["folds"].items()}))


if __name__ == "__main__":
    main()
