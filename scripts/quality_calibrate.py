"""Calibrate the fundus quality gate (eyescan.imaging.quality) on real photographs.

Good photographs: DRIVE (40), CHASE_DB1 (28), an IDRiD part B sample, an APTOS2019
sample, split per source into a calibration half and a held-out half (seeded;
IDRiD byte-identical duplicates and CHASE_DB1 left/right eyes of one child kept on
one side). Each threshold is the strictest one that rejects at most ``--budget``
of the calibration half's good photographs on its own measure (fov diameter:
fixed by design). The held-out half is then measured: false rejects of good
photographs, catch rates of synthetic degradations (seeded), rejected real photos.

    OMP_NUM_THREADS=1 nice -n 15 python scripts/quality_calibrate.py \
        --data ../shared/data --out runs/quality --write-thresholds
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np

from eyescan.imaging import quality
from eyescan.imaging.imageio import read_image

#: Degradations: name -> levels (see ``degrade``). Blur sigmas are fractions of the FOV diameter.
LEVELS = {
    "blur": [0.005, 0.01, 0.02, 0.04],
    "dim": ["gamma2_gain0.5", "gamma2.5_gain0.3"],
    "overexposed": ["gain2.5", "gain4"],
    "uneven": ["gradient_0.2", "gradient_0.05", "vignette"],
    "no_fov": ["black_frame", "outside_crop", "small_fov"],
}
#: Levels a grader would still call gradable: reported, not counted in the catch rate.
BORDERLINE = {("blur", 0.005)}
EXPECTED = {
    "blur": "blurred",
    "dim": "underexposed",
    "overexposed": "overexposed",
    "uneven": "uneven_illumination",
    "no_fov": "field_of_view",
}
#: Threshold -> (measure, side): "min" rejects below, "max" above.
CALIBRATED = {
    "min_fov_fraction": ("fov_fraction", "min"),
    "min_sharpness": ("sharpness", "min"),
    "min_luminance": ("luminance_median", "min"),
    "max_luminance": ("luminance_median", "max"),
    "max_clipped_fraction": ("clipped_fraction", "max"),
    "max_illumination_cv": ("illumination_cv", "max"),
}
#: Not calibrated: below this the 256-px measuring scale would upscale the FOV > 1.33×.
MIN_FOV_DIAMETER_PX = 192.0


def good_photos(data: Path, n_idrid: int, n_aptos: int, seed: int) -> list[dict]:
    """Good photographs as ``{source, name, path, group}`` (group: kept on one split side)."""
    photos = []
    for part in ("training", "test"):
        for path in sorted((data / "DRIVE" / part / "images").glob("*.tif")):
            photos.append({"source": "DRIVE", "path": path, "group": path.stem})
    for path in sorted((data / "CHASE_DB1" / "images").glob("*.jpg")):
        photos.append({"source": "CHASE_DB1", "path": path, "group": path.stem[:-1]})
    root = data / "IDRiD" / "B. Disease Grading" / "1. Original Images"
    idrid = sorted(root.glob("*/*.jpg"))
    idrid = sorted(random.Random(seed).sample(idrid, min(n_idrid, len(idrid))))
    same = {}
    dup_file = data / "IDRiD" / "duplicates.csv"
    if dup_file.exists():
        for row in csv.DictReader(dup_file.open()):
            same[row["identical_to"]] = row["first"]
    for path in idrid:
        key = ("train/" if path.parent.name.startswith("a.") else "test/") + path.name
        photos.append({"source": "IDRiD", "path": path, "group": same.get(key, key), "key": key})
    aptos = sorted((data / "APTOS2019" / "train_images").glob("*"))
    for path in sorted(random.Random(seed).sample(aptos, min(n_aptos, len(aptos)))):
        photos.append({"source": "APTOS2019", "path": path, "group": path.stem})
    for p in photos:
        p["name"] = p.get("key", p["path"].name)
    return photos


def split(photos: list[dict], seed: int) -> None:
    """Mark each photo ``half`` = "calibration" or "held_out": groups alternate per source."""
    for source in sorted({p["source"] for p in photos}):
        groups = sorted({p["group"] for p in photos if p["source"] == source})
        random.Random(f"{seed}-{source}").shuffle(groups)
        side = {g: ("calibration", "held_out")[i % 2] for i, g in enumerate(groups)}
        for p in photos:
            if p["source"] == source:
                p["half"] = side[p["group"]]


def degrade(image: np.ndarray, kind: str, level, diameter: float, seed: int) -> np.ndarray:
    """A degraded copy of a good photograph (deterministic given ``seed``)."""
    import cv2

    rng = np.random.default_rng(seed)
    x = image.astype(np.float32)
    h, w = image.shape[:2]
    if kind == "blur":
        out = cv2.GaussianBlur(x, (0, 0), max(0.3, level * diameter))
    elif kind == "dim":
        gamma, gain = (2.0, 0.5) if level == "gamma2_gain0.5" else (2.5, 0.3)
        out = 255 * (x / 255) ** gamma * gain + rng.normal(0, 1.5, x.shape)
    elif kind == "overexposed":
        out = x * (2.5 if level == "gain2.5" else 4.0)
    elif kind == "uneven":
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        if level == "vignette":
            cy, cx = h / 2 + rng.uniform(-0.1, 0.1) * h, w / 2 + rng.uniform(-0.1, 0.1) * w
            r = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2) / (diameter / 2)
            factor = np.clip(1 - 0.95 * r**1.5, 0.03, 1)
        else:
            low = float(level.split("_")[1])
            angle = rng.uniform(0, 2 * np.pi)
            t = ((xx - w / 2) * np.cos(angle) + (yy - h / 2) * np.sin(angle)) / diameter + 0.5
            factor = 1 - (1 - low) * np.clip(t, 0, 1)
        out = x * factor[..., None]
    elif level == "black_frame":
        out = np.abs(rng.normal(2, 2, x.shape))
    elif level == "outside_crop":
        side = max(8, min(h, w) // 7)
        out = x[:side, :side]
    else:  # small_fov: the photo shrunk to 30 % in a black frame of the same size
        small = cv2.resize(image, (max(1, int(w * 0.3)), max(1, int(h * 0.3))))
        out = np.zeros_like(x)
        top, left = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
        out[top : top + small.shape[0], left : left + small.shape[1]] = small
    return np.clip(out, 0, 255).astype(np.uint8)


def choose(values: list[float], side: str, budget: float) -> float:
    """Strictest threshold that rejects at most ``budget`` of ``values``."""
    ordered = sorted(values) if side == "min" else sorted(values, reverse=True)
    return float(ordered[min(len(ordered) - 1, int(math.floor(budget * len(ordered))))])


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (float("nan"), float("nan"))
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def rate(k: int, n: int) -> dict:
    low, high = wilson(k, n)
    return {"k": k, "n": n, "rate": k / n if n else float("nan"), "ci95": [low, high]}


def fmt(r: dict) -> str:
    low, high = r["ci95"]
    return f"{r['k']}/{r['n']} = {100 * r['rate']:.1f} % [{100 * low:.1f}, {100 * high:.1f}]"


def run(args: argparse.Namespace) -> dict:
    data = Path(args.data)
    photos = good_photos(data, args.idrid, args.aptos, args.seed)
    if args.limit:
        by_source: dict[str, list] = {}
        for p in photos:
            by_source.setdefault(p["source"], []).append(p)
        photos = [p for ps in by_source.values() for p in ps[: args.limit]]
    split(photos, args.seed)
    started = time.time()
    for p in photos:
        p["image"] = read_image(p["path"])
        p["measures"] = quality.measure(p["image"])
    calibration = [p for p in photos if p["half"] == "calibration" and "sharpness" in p["measures"]]
    thresholds = {"min_fov_diameter_px": MIN_FOV_DIAMETER_PX}
    for name, (key, side) in CALIBRATED.items():
        thresholds[name] = choose([p["measures"][key] for p in calibration], side, args.budget)
    gate = quality.Thresholds.from_dict(thresholds)

    held = [p for p in photos if p["half"] == "held_out"]
    results = {"false_reject": {}, "catch": [], "rejected_real": []}
    for source in ["all"] + sorted({p["source"] for p in held}):
        group = [p for p in held if source == "all" or p["source"] == source]
        k = sum(bool(quality.judge(p["measures"], gate)) for p in group)
        results["false_reject"][source] = rate(k, len(group))
    for p in photos:
        reasons = quality.judge(p["measures"], gate)
        if reasons:
            results["rejected_real"].append(
                {k: p[k] for k in ("source", "name", "half")} | {"reasons": list(reasons)}
            )
    seed = args.seed
    for kind, levels in LEVELS.items():
        for level in levels:
            caught = expected = n = 0
            for i, p in enumerate(held):
                diameter = p["measures"].get("fov_diameter_px") or max(p["image"].shape[:2])
                bad = degrade(p["image"], kind, level, diameter, seed * 100_003 + i)
                reasons = quality.judge(quality.measure(bad), gate)
                n += 1
                caught += bool(reasons)
                expected += any(EXPECTED[kind] in r for r in reasons)
            results["catch"].append(
                {
                    "kind": kind,
                    "level": level,
                    "borderline": (kind, level) in BORDERLINE,
                    "caught": rate(caught, n),
                    "expected_reason": rate(expected, n),
                }
            )
    sources = sorted({p["source"] for p in photos})
    counts = {s: sum(p["source"] == s for p in photos) for s in sources}
    summary = {
        "command": " ".join(["python", "scripts/quality_calibrate.py", *sys.argv[1:]]),
        "date": datetime.date.today().isoformat(),
        "data": {
            "good_photos": counts,
            "calibration": len(calibration),
            "held_out": len(held),
            "idrid_sample": args.idrid,
            "aptos_sample": args.aptos,
            "seed": args.seed,
        },
        "rule": (
            f"each threshold: the strictest value rejecting at most {args.budget:.0%} of the "
            "calibration half's good photos on its own measure; min_fov_diameter_px fixed"
        ),
        "thresholds": thresholds,
        "results": results,
        "seconds": round(time.time() - started, 1),
    }
    return summary


def markdown(s: dict) -> str:
    lines = ["## Thresholds", "", "| threshold | value |", "| --- | --- |"]
    lines += [f"| `{k}` | {v:g} |" for k, v in s["thresholds"].items()]
    lines += ["", f"Rule: {s['rule']}.", "", "## False rejects of good photos (held-out half)", ""]
    lines += ["| source | rejected (95 % Wilson CI) |", "| --- | --- |"]
    lines += [f"| {k} | {fmt(v)} |" for k, v in s["results"]["false_reject"].items()]
    lines += ["", "## Catch rate of synthetic degradations (held-out half)", ""]
    lines += ["| degradation | level | rejected (95 % CI) | with the expected reason |"]
    lines += ["| --- | --- | --- | --- |"]
    for c in s["results"]["catch"]:
        level = f"{c['level']}" + (" (borderline, not required)" if c["borderline"] else "")
        lines.append(
            f"| {c['kind']} | {level} | {fmt(c['caught'])} | {fmt(c['expected_reason'])} |"
        )
    lines += ["", "## Real photos rejected (both halves)", ""]
    lines += ["| source | file | half | reasons |", "| --- | --- | --- | --- |"]
    lines += [
        f"| {r['source']} | {r['name']} | {r['half']} | {', '.join(r['reasons'])} |"
        for r in s["results"]["rejected_real"]
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--out", default="runs/quality")
    parser.add_argument("--write-thresholds", action="store_true")
    parser.add_argument("--limit", type=int, default=0, help="at most N photos per source")
    parser.add_argument("--idrid", type=int, default=120)
    parser.add_argument("--aptos", type=int, default=200)
    parser.add_argument("--budget", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    summary = run(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "quality.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "quality.md").write_text(markdown(summary))
    if args.write_thresholds:
        record = {k: summary[k] for k in ("command", "date", "data", "rule", "thresholds")}
        path = Path(quality.__file__).with_name("quality_thresholds.json")
        path.write_text(json.dumps(record, indent=2) + "\n")
    print(markdown(summary), file=sys.stderr)
    return summary


if __name__ == "__main__":
    main()
