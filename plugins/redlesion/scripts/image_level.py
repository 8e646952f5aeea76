"""Image-level screening AUCs of ``eyescan predict redlesion`` on IDRiD part B's test set.

    python plugins/redlesion/scripts/image_level.py PREDICTIONS.jsonl GRADING_DIR [--exclude F]

IDRiD's segmentation images all have microaneurysms, so "has MA" cannot be scored
there; part B's 103 test photographs (1072×712, another image set) can:

- ``ma_image_auc``: truth "retinopathy grade ≥ 1" (ICDR: grade 1 is microaneurysms
  only, so every graded DR image has them), score ``ma_score``;
- ``he_image_auc``: truth "grade ≥ 2" (more than microaneurysms; a surrogate: most
  such images have haemorrhages, not necessarily all), score ``he_score``;
- ``red_image_auc``: truth "a CODRAS ``haemorrhage`` box" (CODRAS boxes haemorrhages
  *and* microaneurysms in that class; images without a box file are left out),
  score ``max(ma_score, he_score)``.

``--exclude`` names a ``same_photos.py`` output: the part B photographs (its ``b``
side) that are images the model trained on are left out and listed as ``excluded``.

Prints one JSON object: each AUC, its 95 % bootstrap interval (images resampled) and
the counts of positive and negative images.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

from eyescan.api import bootstrap, metrics

RED_CLASS = "haemorrhage"


def grades(folder: Path) -> dict[str, int]:
    """``IDRiD_NNN`` → retinopathy grade of the test labels CSV."""
    path = next((folder / "2. Groundtruths").glob("b.*Testing*.csv"))
    with path.open(newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    return {r[0].strip(): int(r[1]) for r in rows[1:] if r and r[0].strip()}


def red_boxes(folder: Path) -> dict[str, bool]:
    """``IDRiD_NNN`` → whether its CODRAS label file has a ``haemorrhage`` box."""
    boxes = next(folder.glob("3. Lesion boxes*"))
    names = (boxes / "classes.txt").read_text().split()
    red = str(names.index(RED_CLASS))
    out = {}
    for label in (boxes / "b. Testing Set").glob("*.txt"):
        lines = label.read_text().split("\n")
        out[label.stem] = any(line.split()[:1] == [red] for line in lines)
    return out


def auc_with_ci(truth: list[bool], score: list[float]) -> dict:
    t, s = np.asarray(truth, bool), np.asarray(score, float)
    ci = bootstrap.bootstrap_ci(len(t), lambda idx: {"auc": metrics.rank_auc(t[idx], s[idx])})
    return {
        "auc": metrics.rank_auc(t, s),
        "ci95": ci["auc"],
        "positive": int(t.sum()),
        "negative": int((~t).sum()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("predictions", type=Path)
    parser.add_argument("grading", type=Path)
    parser.add_argument("--exclude", type=Path, help="same_photos.py output (trained-on images)")
    parser.add_argument("--stage", default=None, help="which model made the predictions")
    args = parser.parse_args(argv)
    records = [json.loads(line) for line in args.predictions.read_text().splitlines() if line]
    records = [r for r in records if r.get("ok") and "outputs" in r]
    grade, red = grades(args.grading), red_boxes(args.grading)
    scores = {Path(r["input"]).stem: r["outputs"] for r in records}
    excluded = []
    if args.exclude:
        excluded = sorted(p["b"] for p in json.loads(args.exclude.read_text())["pairs"])
    ids = sorted(set(scores) & set(grade) - set(excluded))
    boxed = [i for i in ids if i in red]
    out = {
        "images": len(ids),
        "stage": args.stage,
        "excluded": excluded,
        "ma_image_auc": auc_with_ci(
            [grade[i] >= 1 for i in ids], [scores[i]["ma_score"] for i in ids]
        ),
        "he_image_auc": auc_with_ci(
            [grade[i] >= 2 for i in ids], [scores[i]["he_score"] for i in ids]
        ),
        "red_image_auc": auc_with_ci(
            [red[i] for i in boxed],
            [max(scores[i]["ma_score"], scores[i]["he_score"]) for i in boxed],
        ),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
