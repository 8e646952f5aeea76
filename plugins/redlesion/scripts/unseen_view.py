"""A view of the letterboxed IDRiD copy without the photographs another model saw.

    python plugins/redlesion/scripts/unseen_view.py BOXES_DIR SAME_PHOTOS.json OUT_DIR

``SAME_PHOTOS.json`` is a ``same_photos.py`` output whose ``a`` side is
``BOXES_DIR/images/val``: those images are left out. The official test images 55–81 that
are also IDRiD part B *training* photographs were seen (with their grades, not their
lesions) by drgrade's grader, whose backbone initialises the shipped encoder; the view
holds the others, for the same ``eyescan evaluate`` (symbolic links, nothing copied).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def write_view(boxes: Path, seen: set[str], out: Path) -> list[str]:
    """Links to ``data.yaml`` and the ``val`` images and labels not in ``seen``."""
    (out / "images" / "val").mkdir(parents=True, exist_ok=True)
    (out / "labels" / "val").mkdir(parents=True, exist_ok=True)
    link(boxes / "data.yaml", out / "data.yaml")
    kept = []
    for image in sorted((boxes / "images" / "val").iterdir()):
        if image.stem in seen:
            continue
        kept.append(image.stem)
        link(image, out / "images" / "val" / image.name)
        label = boxes / "labels" / "val" / f"{image.stem}.txt"
        if label.exists():
            link(label, out / "labels" / "val" / label.name)
    return kept


def link(source: Path, target: Path) -> None:
    if not target.is_symlink():
        os.symlink(source.resolve(), target)


def main(argv: list[str] | None = None) -> int:
    boxes, same, out = (Path(a) for a in (argv if argv is not None else sys.argv[1:]))
    seen = {pair["a"] for pair in json.loads(same.read_text())["pairs"]}
    kept = write_view(boxes, seen, out)
    print(json.dumps({"view": str(out), "kept": kept, "left_out": sorted(seen)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
