"""Vascular severity per eye on a labelled ROP set (ROP-DRAGON's labels.csv), and a rescaling check.

Runs ``eyescan predict rop`` on the CSV's images (or reads ``--records``, its
``--json`` output), groups the frames by infant and eye, and prints a
Markdown table: the eye's plus label, frames scored, mean ± sd, median and
range of ``vascular_severity``; then whether the eye means order plus >
pre-plus > none, over all eyes and within each infant (where camera and
infant are the same). ``--exclude REGEX`` leaves out frames whose path
matches (in ROP-DRAGON the first frame of every eye, ``*_1.JPG``, is an
external photograph of the infant, not of the fundus). ``--rescale N``
also scores N frames resized to 0.5×, 0.8× and 2× of their size, to show how
much the photo's resolution moves the score.

    python plugins/rop/scripts/severity_by_eye.py ../shared/data/ROP-DRAGON/labels.csv \\
        --exclude '_1\\.JPG$' --rescale 7

Nothing is written to the repository; rescaled copies go to a temporary folder.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

PLUS_ORDER = {"plus": 2, "preplus": 1, "no plus": 0}
COLUMNS = "image=path,label=treatment,patient=infant,split=split"


def predict(paths: list[Path], folder: Path) -> dict[str, dict]:
    """``eyescan predict rop`` on ``paths`` (linked into ``folder``): record per input path."""
    links = folder / "in"
    links.mkdir(parents=True, exist_ok=True)
    names = {}
    for i, path in enumerate(paths):
        link = links / f"{i:04d}{path.suffix}"
        link.symlink_to(path.resolve())
        names[str(link)] = str(path)
    command = ["eyescan", "predict", "rop", str(links), "--json", "--out", str(folder / "out")]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode not in (0, 2):
        sys.exit(f"eyescan predict failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    records = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return {names.get(r["input"], r["input"]): r for r in records}


def severity(record: dict | None) -> float | None:
    if not record or not record.get("ok"):
        return None
    return (record.get("outputs") or {}).get("vascular_severity")


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "mean": statistics.fmean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else float("nan"),
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
    }


def eye_table(rows: list[dict], records: dict[str, dict], exclude: str | None) -> list[dict]:
    from PIL import Image

    eyes: dict[tuple[str, str], dict] = {}
    for row in rows:
        key = (row["infant"], row["eye"])
        eye = eyes.setdefault(
            key,
            {
                "infant": row["infant"],
                "eye": row["eye"],
                "plus": row.get("plus_from_folder") or "not stated",
                "stage": row.get("stage_from_folder") or "?",
                "zone": row.get("zone_from_folder") or "?",
                "size": "×".join(map(str, Image.open(row["image"]).size)),
                "frames": 0,
                "values": [],
            },
        )
        eye["frames"] += 1
        if exclude and re.search(exclude, row["path"]):
            continue
        value = severity(records.get(row["image"]))
        if value is not None:
            eye["values"].append(float(value))
    return [{**e, **summary(e["values"])} for e in eyes.values() if e["values"]]


def order_checks(eyes: list[dict]) -> list[str]:
    lines = []
    by_class = defaultdict(list)
    for e in eyes:
        if e["plus"] in PLUS_ORDER:
            by_class[e["plus"]].append(e["mean"])
    means = {c: statistics.fmean(v) for c, v in by_class.items()}
    shown = ", ".join(
        f"{c} {means[c]:.3f} ({len(by_class[c])} eye)" for c in PLUS_ORDER if c in means
    )
    holds = all(
        means[a] > means[b]
        for a, b in (("plus", "preplus"), ("preplus", "no plus"))
        if a in means and b in means
    )
    lines.append(
        f"- all labelled eyes, mean of eye means: {shown}: plus > preplus > none "
        f"{'holds' if holds else 'does NOT hold'}"
    )
    infants = defaultdict(list)
    for e in eyes:
        if e["plus"] in PLUS_ORDER:
            infants[e["infant"]].append(e)
    for infant, pair in sorted(infants.items()):
        if len(pair) < 2:
            continue
        pair.sort(key=lambda e: -PLUS_ORDER[e["plus"]])
        worse, better = pair[0], pair[-1]
        ok = worse["mean"] > better["mean"]
        lines.append(
            f"- within infant {infant} (same camera): {worse['eye']} {worse['plus']} "
            f"{worse['mean']:.3f} vs {better['eye']} {better['plus']} {better['mean']:.3f}: "
            f"{'in order' if ok else 'NOT in order'}"
        )
    return lines


def rescale_check(rows: list[dict], count: int, exclude: str | None) -> list[str]:
    """Score ``count`` frames (one per eye first) at 0.5×, 0.8×, 1× and 2× their size."""
    from PIL import Image

    seen, picked = set(), []
    for row in rows:
        if exclude and re.search(exclude, row["path"]):
            continue
        key = (row["infant"], row["eye"])
        if key not in seen:
            seen.add(key)
            picked.append(Path(row["image"]))
    picked = picked[:count]
    factors = (0.5, 0.8, 1.0, 2.0)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, path in enumerate(picked):
            image = Image.open(path).convert("RGB")
            for f in factors:
                out = Path(tmp) / f"{i:02d}_{f}.png"
                size = (round(image.width * f), round(image.height * f))
                image.resize(size, Image.BICUBIC).save(out)
                paths.append(out)
        records = predict(paths, Path(tmp) / "run")
        lines = [
            "| frame | " + " | ".join(f"{f}×" for f in factors) + " | max − min |",
            "| --- |" + " --- |" * (len(factors) + 1),
        ]
        spreads = []
        for i, path in enumerate(picked):
            values = [severity(records.get(str(Path(tmp) / f"{i:02d}_{f}.png"))) for f in factors]
            cells = ["—" if v is None else f"{v:.3f}" for v in values]
            known = [v for v in values if v is not None]
            spread = f"{max(known) - min(known):.3f}" if known else "—"
            if known:
                spreads.append(max(known) - min(known))
            lines.append(f"| {path.name} | " + " | ".join(cells) + f" | {spread} |")
    if spreads:
        lines.append(
            f"\nmedian spread over rescalings: {statistics.median(spreads):.3f} "
            f"({len(spreads)} frames with a score)"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labels", type=Path, help="ROP-DRAGON labels.csv (path, infant, eye, …)")
    parser.add_argument("--records", type=Path, help="eyescan predict rop --json output to reuse")
    parser.add_argument("--exclude", help="regular expression of frame paths to leave out")
    parser.add_argument("--rescale", type=int, default=0, help="frames for the rescaling check")
    args = parser.parse_args()
    with args.labels.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["image"] = str((args.labels.parent / row["path"]).resolve())
    if args.records:
        records = {}
        for line in args.records.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                records[str(Path(record["input"]).resolve())] = record
    else:
        with tempfile.TemporaryDirectory() as tmp:
            records = predict([Path(r["image"]) for r in rows], Path(tmp))
    eyes = eye_table(rows, records, args.exclude)
    print(f"vascular_severity per eye ({args.labels}; excluded: {args.exclude or 'none'})\n")
    print(
        "| infant | eye | plus | stage | zone | size | frames scored | mean ± sd | median | range |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for e in sorted(eyes, key=lambda e: (-PLUS_ORDER.get(e["plus"], -1), e["infant"], e["eye"])):
        print(
            f"| {e['infant']} | {e['eye']} | {e['plus']} | {e['stage']} | {e['zone']} | "
            f"{e['size']} | {e['n']}/{e['frames']} | {e['mean']:.3f} ± {e['sd']:.3f} | "
            f"{e['median']:.3f} | {e['min']:.3f}–{e['max']:.3f} |"
        )
    print()
    print("\n".join(order_checks(eyes)))
    if args.rescale:
        print("\nrescaling check (the same photo resized before prediction):\n")
        print("\n".join(rescale_check(rows, args.rescale, args.exclude)))


if __name__ == "__main__":
    main()
