"""Find the photographs two image folders share, whatever their size, crop or letterbox.

    python plugins/redlesion/scripts/same_photos.py FOLDER_A FOLDER_B [--glob-a PATTERN]

IDRiD's segmentation (part A) and grading (part B) images come from the same
examinations, copied here at other sizes (a 512-px crop, a letterboxed 1024 px, 1072×712),
so byte hashes cannot match them. Each image is reduced to its field of view
(``api.fundus.fov_box``), 64×64 grey, high-passed (minus a 9-px mean, so the vessels
decide, not the vignetting) and normalised; a pair is the same photograph when its
correlation is at least ``MATCH`` (0.97) and beats the image's second-best candidate
by at least ``MARGIN`` (0.08). Different photographs of this set correlate at most about
0.93. Prints one JSON object: the pairs found, with their scores.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from eyescan.api import fundus, imageio

MATCH = 0.97
MARGIN = 0.08
SIZE = 64
SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff"}


def signature(path: Path) -> np.ndarray:
    """The normalised, high-passed 64×64 grey field of view of one image."""
    from PIL import Image
    from scipy import ndimage

    image = imageio.read_image(path)
    box = fundus.fov_box(image, fundus.fov_mask(image))
    if box:
        top, left, bottom, right = box
        image = image[top:bottom, left:right]
    grey = Image.fromarray(image).convert("L").resize((SIZE, SIZE), Image.BILINEAR)
    g = np.asarray(grey, np.float32)
    g = g - ndimage.uniform_filter(g, 9)
    g = g - g.mean()
    return (g / (np.linalg.norm(g) + 1e-6)).ravel()


def images(folder: Path, pattern: str) -> list[Path]:
    return sorted(p for p in folder.glob(pattern) if p.suffix.lower() in SUFFIXES)


def same_photos(a: list[Path], b: list[Path]) -> list[dict]:
    """``{"a", "b", "score", "second"}`` for each image of ``a`` that is one of ``b``."""
    table = np.stack([signature(p) for p in b])
    pairs = []
    for path in a:
        scores = table @ signature(path)
        order = np.argsort(scores)[::-1]
        best, second = float(scores[order[0]]), float(scores[order[1]])
        if best >= MATCH and best - second >= MARGIN:
            pairs.append({"a": path.stem, "b": b[order[0]].stem, "score": round(best, 4),
                          "second": round(second, 4)})  # fmt: skip
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder_a", type=Path)
    parser.add_argument("folder_b", type=Path)
    parser.add_argument("--glob-a", default="*", help="which files of FOLDER_A (default all)")
    args = parser.parse_args(argv)
    a, b = images(args.folder_a, args.glob_a), images(args.folder_b, "*")
    pairs = same_photos(a, b)
    print(json.dumps({"a": str(args.folder_a), "b": str(args.folder_b), "images_a": len(a),
                      "images_b": len(b), "pairs": pairs}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
