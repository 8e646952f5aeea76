"""Seconds per photo of ``eyescan predict vessels`` at photo sizes from DRIVE's to 12 megapixels.

    python plugins/vessels/scripts/speed.py [--size WxH ...] [--images N] [--weights W] [--json]

For each size (default: 565×584 as DRIVE, 999×960 as CHASE_DB1, 3504×2336 as HRF,
4000×3000 = 12 MP) writes ``--images`` synthetic fundus photographs of that size
(``api.synthetic.make_fundus``, black surround, no data set needed) into a temporary
folder outside the repository, runs ``eyescan predict vessels FOLDER --json`` once on
them in a subprocess and reports, per size: the wall time of the whole command per
photo (with start-up and writing the outputs), and the medians of the records'
``timings_ms`` (``read``, ``preprocess``: FOV estimate and resampling, ``predict``:
the network, ``report``: the mask and overlay files). Run it on an idle machine:
timings on a busy CPU lie. ``--json`` prints one JSON object per size.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_SIZES = ["565x584", "999x960", "3504x2336", "4000x3000"]
STAGES = ("read", "preprocess", "predict", "report")


def parse_size(text: str) -> tuple[int, int]:
    """``WxH`` → (width, height)."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        message = f"size {text!r}: expected WIDTHxHEIGHT, e.g. 3504x2336"
        raise argparse.ArgumentTypeError(message) from None
    return width, height


def write_photos(folder: Path, size: tuple[int, int], count: int) -> None:
    from PIL import Image

    from eyescan.api import synthetic

    width, height = size
    folder.mkdir(parents=True)
    for seed in range(count):
        fundus = synthetic.make_fundus((height, width), seed=seed)
        Image.fromarray(fundus.image).save(folder / f"photo{seed:02d}.png")


def measure(folder: Path, out: Path, weights: str | None) -> dict[str, float]:
    command = ["eyescan", "predict", "vessels", str(folder), "--out", str(out), "--json"]
    if weights:
        command += ["--weights", weights]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=os.environ)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"eyescan predict failed on {folder}: {done.stderr.strip()[-500:]}")
    records = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    images = [r for r in records if r.get("ok") and "timings_ms" in r]
    if not images:
        sys.exit(f"eyescan predict wrote no image records for {folder}")
    row: dict[str, float] = {"images": len(images), "wall_s_per_photo": wall / len(images)}
    for stage in STAGES:
        values = [r["timings_ms"].get(stage, 0.0) for r in images]
        row[f"{stage}_ms_median"] = statistics.median(values)
    scales = [r["outputs"].get("scale_factor") for r in images]
    scales = [s for s in scales if s is not None]
    row["scale_factor"] = statistics.median(scales) if scales else 1.0
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", action="append", type=parse_size, help="WIDTHxHEIGHT")
    parser.add_argument("--images", type=int, default=3, help="photos per size (default 3)")
    parser.add_argument("--weights", help="weights file (default: the shipped default)")
    parser.add_argument("--json", action="store_true", help="one JSON object per size")
    args = parser.parse_args(argv)
    sizes = args.size or [parse_size(s) for s in DEFAULT_SIZES]
    rows = []
    with tempfile.TemporaryDirectory(prefix="eyescan-speed-") as work:
        for width, height in sizes:
            folder = Path(work) / f"{width}x{height}"
            print(f"{width}×{height}: writing {args.images} photos, predicting", file=sys.stderr)
            write_photos(folder, (width, height), args.images)
            row = {"size": f"{width}x{height}", "megapixels": width * height / 1e6}
            row.update(measure(folder, Path(work) / f"out-{width}x{height}", args.weights))
            rows.append(row)
            if args.json:
                print(json.dumps(row), flush=True)
    if args.json:
        return
    print(
        "| photo | MP | scale factor | s per photo (whole command) | read ms | "
        "preprocess ms | network ms | outputs ms |\n" + "| --- " * 8 + "|"
    )
    for r in rows:
        print(
            f"| {r['size'].replace('x', '×')} | {r['megapixels']:.1f} | {r['scale_factor']:.2f} "
            f"| {r['wall_s_per_photo']:.2f} | {r['read_ms_median']:.0f} "
            f"| {r['preprocess_ms_median']:.0f} | {r['predict_ms_median']:.0f} "
            f"| {r['report_ms_median']:.0f} |"
        )


if __name__ == "__main__":
    main()
