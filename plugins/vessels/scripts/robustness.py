"""Robustness and cross-data-set table of a vessels model, every number from ``eyescan evaluate``.

    python plugins/vessels/scripts/robustness.py [DRIVE] [--model M] [--weights W]
        [--work DIR] [--variants NAME,...] [--json]
    python plugins/vessels/scripts/robustness.py --cross DATA [--cross DATA ...] [--split test]

Robustness (the default): makes variants of DRIVE's 20 test images in DRIVE layout
(``test/{images,1st_manual,mask}``) in a folder OUTSIDE the repository (a new one
under the system temp dir, removed afterwards; ``--work DIR`` chooses it and keeps
it, re-using variants already there): brightness ×0.6 and ×1.4, gamma 0.6 and 1.6,
JPEG quality 40 (decoded and stored lossless), scale 0.5× (area) and 3× (bicubic),
the manual labels and FOV masks resized nearest-neighbour so they stay binary.
Then ``eyescan evaluate vessels VARIANT --json`` scores the unchanged images and
each variant (inside the FOV, pixels pooled, 95 % bootstrap CIs over images), and
a Markdown row per set gives AUC-ROC, F1, sensitivity, the smallest per-image
sensitivity, ΔAUC against the unchanged images and whether the goal (AUC within
0.01 of the unchanged images) holds.

``--validation``: the same variants of DRIVE's validation images (training 38-40,
held out by every recipe) instead of its test images, for choosing between
models without looking at the test set.

Cross-data-set (``--cross DATA``): scores the model on another data set's
``--split`` (default test): pooled numbers, the smallest per-image sensitivity
and the images with sensitivity < 0.5 (goal: AUC ≥ 0.95, none below 0.5).

``--json``: one JSON object per row instead of the table. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[3]
#: The robustness goal: AUC-ROC within this of the unchanged images.
AUC_TOLERANCE = 0.01
#: The cross-data-set goals: pooled AUC-ROC at least this, no image's sensitivity below the floor.
CROSS_AUC, SENSITIVITY_FLOOR = 0.95, 0.5


def _brightness(factor: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda image: np.clip(image.astype(np.float32) * factor + 0.5, 0, 255).astype(np.uint8)


def _gamma(gamma: float) -> Callable[[np.ndarray], np.ndarray]:
    table = np.clip(255.0 * (np.arange(256) / 255.0) ** gamma + 0.5, 0, 255).astype(np.uint8)
    return lambda image: table[image]


def _jpeg(quality: int) -> Callable[[np.ndarray], np.ndarray]:
    def apply(image: np.ndarray) -> np.ndarray:
        buffer = BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
        return np.asarray(Image.open(BytesIO(buffer.getvalue())).convert("RGB"))

    return apply


#: Photometric variants: name → function of the uint8 RGB image (same size, labels unchanged).
PHOTOMETRIC: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "brightness ×0.6": _brightness(0.6),
    "brightness ×1.4": _brightness(1.4),
    "gamma 0.6": _gamma(0.6),
    "gamma 1.6": _gamma(1.6),
    "JPEG quality 40": _jpeg(40),
}
#: Geometric variants: name → scale factor of image, labels and FOV mask.
SCALES = {"scale 0.5×": 0.5, "scale 3×": 3.0}
VARIANTS = (*PHOTOMETRIC, *SCALES)
UNCHANGED = "unchanged"


def slug(name: str) -> str:
    """A folder name for a variant (``brightness ×0.6`` → ``brightness-x0.6``)."""
    return name.replace("×", "x").replace(" ", "-").lower()


def scaled_size(size: tuple[int, int], factor: float) -> tuple[int, int]:
    """``(height, width)`` scaled and rounded, at least one pixel."""
    return max(1, round(size[0] * factor)), max(1, round(size[1] * factor))


def resize_image(image: np.ndarray, factor: float) -> np.ndarray:
    """Area averaging when shrinking, bicubic when enlarging."""
    height, width = scaled_size(image.shape[:2], factor)
    method = Image.BOX if factor < 1 else Image.BICUBIC
    return np.asarray(Image.fromarray(image).resize((width, height), method))


def resize_label(label: np.ndarray, factor: float) -> np.ndarray:
    """Nearest-neighbour resize of a binary label: it stays binary."""
    height, width = scaled_size(label.shape, factor)
    as_image = Image.fromarray(label.astype(np.uint8) * 255)
    return np.asarray(as_image.resize((width, height), Image.NEAREST)) > 127


def save_label(label: np.ndarray, path: Path) -> None:
    """A 0/255 grey GIF, as DRIVE ships its labels."""
    Image.fromarray(label.astype(np.uint8) * 255).save(path)


#: ``--validation``: DRIVE's training images 38-40, the validation images of every recipe.
VALIDATION = ("training", ("38", "39", "40"))


def drive_test(drive: Path, source: tuple[str, tuple[str, ...] | None] = ("test", None)):
    """(image, manual label, FOV mask) of each DRIVE test image (or of ``source``:
    the folder and the image numbers to take)."""
    part, numbers = source
    folder = drive / part
    triples = []
    for image in sorted((folder / "images").glob("*.tif")):
        number = image.stem.split("_")[0]
        if numbers is not None and number not in numbers:
            continue
        manual = folder / "1st_manual" / f"{number}_manual1.gif"
        mask = folder / "mask" / f"{image.stem}_mask.gif"
        if not manual.exists() or not mask.exists():
            raise SystemExit(f"{image}: no {manual.name} or {mask.name} beside it")
        triples.append((image, manual, mask))
    if not triples:
        raise SystemExit(f"{drive}: no DRIVE images in {part}/images/*.tif")
    return triples


def make_variant(drive: Path, name: str, out: Path, source=("test", None)) -> Path:
    """Write variant ``name`` of DRIVE test (or ``source``) into ``out``, as DRIVE's test
    layout; returns ``out``. ``unchanged`` copies the images as they are.

    A folder already holding every image is kept as it is (re-runs with ``--work``).
    """
    from eyescan.api import imageio

    triples = drive_test(drive, source)
    folders = {part: out / "test" / part for part in ("images", "1st_manual", "mask")}
    if all((folders["images"] / image.name).exists() for image, _, _ in triples):
        return out
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    for image_path, manual, mask in triples:
        image = imageio.read_image(image_path)
        if name in PHOTOMETRIC or name == UNCHANGED:
            changed = PHOTOMETRIC[name](image) if name in PHOTOMETRIC else image
            shutil.copyfile(manual, folders["1st_manual"] / manual.name)
            shutil.copyfile(mask, folders["mask"] / mask.name)
        else:
            factor = SCALES[name]
            changed = resize_image(image, factor)
            for label, folder in ((manual, "1st_manual"), (mask, "mask")):
                resized = resize_label(imageio.read_mask(label, 127), factor)
                save_label(resized, folders[folder] / label.name)
        Image.fromarray(changed).save(folders["images"] / image_path.name)  # lossless TIFF
    return out


def evaluate(data: Path, model_args: list[str], split: str = "test") -> dict[str, Any]:
    """``eyescan evaluate vessels DATA --json``: ``{"summary": ..., "images": [...]}``."""
    from eyescan.testing import invoke_cli, json_lines

    result = invoke_cli("evaluate", "vessels", data, "--split", split, "--json", *model_args)
    if result.exit_code != 0:
        raise SystemExit(f"eyescan evaluate vessels {data} failed:\n{result.output[-3000:]}")
    lines = json_lines(result.stdout)
    return {
        "summary": lines[-1],
        "images": [line for line in lines if line.get("kind") == "image"],
    }


def row(name: str, data: Path, result: dict[str, Any]) -> dict[str, Any]:
    """The numbers of one evaluated set: pooled metrics, CIs and the per-image sensitivity."""
    summary, images = result["summary"], result["images"]
    sensitivities = {image["id"]: image["sensitivity"] for image in images}
    low = sorted(k for k, v in sensitivities.items() if v < SENSITIVITY_FLOOR)
    return {
        "variant": name,
        "data": str(data),
        "images": summary["images"],
        "auc_roc": summary["auc_roc"],
        "auc_roc_ci95": summary["ci95"].get("auc_roc"),
        "f1": summary["f1"],
        "f1_ci95": summary["ci95"].get("f1"),
        "sensitivity": summary["sensitivity"],
        "specificity": summary["specificity"],
        "min_image_sensitivity": min(sensitivities.values()),
        "images_below_sensitivity_floor": low,
        **{
            f"image_{stat}_{key}": float(fn([image[key] for image in images]))
            for key in ("auc_roc", "f1")
            for stat, fn in (("mean", np.mean), ("min", np.min))
        },
    }


def _ci(value: float, interval: list[float] | None) -> str:
    return f"{value:.4f} [{interval[0]:.4f}–{interval[1]:.4f}]" if interval else f"{value:.4f}"


def robustness_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| variant | images | AUC-ROC [95 % CI] | F1 [95 % CI] | sensitivity "
        "| min per-image sensitivity | ΔAUC | AUC within 0.01 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        delta = "—" if r["delta_auc"] is None else f"{r['delta_auc']:+.4f}"
        goal = "—" if r["goal_met"] is None else ("yes" if r["goal_met"] else "no")
        lines.append(
            f"| {r['variant']} | {r['images']} | {_ci(r['auc_roc'], r['auc_roc_ci95'])} "
            f"| {_ci(r['f1'], r['f1_ci95'])} | {r['sensitivity']:.4f} "
            f"| {r['min_image_sensitivity']:.4f} | {delta} | {goal} |"
        )
    return lines


def cross_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| data set | split | images | AUC-ROC [95 % CI] | F1 [95 % CI] | sensitivity "
        "| per-image AUC mean / min | per-image F1 mean / min "
        "| min per-image sensitivity | images with sensitivity < 0.5 | goal met |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        low = r["images_below_sensitivity_floor"]
        lines.append(
            f"| {r['variant']} | {r['split']} | {r['images']} "
            f"| {_ci(r['auc_roc'], r['auc_roc_ci95'])} | {_ci(r['f1'], r['f1_ci95'])} "
            f"| {r['sensitivity']:.4f} "
            f"| {r['image_mean_auc_roc']:.4f} / {r['image_min_auc_roc']:.4f} "
            f"| {r['image_mean_f1']:.4f} / {r['image_min_f1']:.4f} "
            f"| {r['min_image_sensitivity']:.4f} "
            f"| {len(low)}{' (' + ', '.join(low) + ')' if low else ''} "
            f"| {'yes' if r['goal_met'] else 'no'} |"
        )
    return lines


def outside_repo(path: Path) -> Path:
    """``path`` resolved; refuses a folder inside the repository (no derived images there)."""
    resolved = path.expanduser().resolve()
    if resolved == ROOT or ROOT in resolved.parents:
        raise SystemExit(f"--work {path}: inside the repository; choose a folder outside it")
    return resolved


def run_robustness(args: argparse.Namespace, model_args: list[str]) -> list[dict[str, Any]]:
    names = VARIANTS if not args.variants else tuple(args.variants.split(","))
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    work = outside_repo(args.work) if args.work else Path(tempfile.mkdtemp(prefix="eyescan-rob-"))
    source = VALIDATION if args.validation else ("test", None)
    root = work / "validation" if args.validation else work
    try:
        unchanged = args.data  # DRIVE test as it is; the validation images in a test layout
        if args.validation:
            unchanged = make_variant(args.data, UNCHANGED, root / UNCHANGED, source)
        _say(f"unchanged: {unchanged}")
        base = row(UNCHANGED, unchanged, evaluate(unchanged, model_args))
        base.update(delta_auc=None, goal_met=None)
        rows = [base]
        for name in names:
            _say(f"{name}: making and evaluating in {root / slug(name)}")
            folder = make_variant(args.data, name, root / slug(name), source)
            r = row(name, folder, evaluate(folder, model_args))
            delta = r["auc_roc"] - base["auc_roc"]
            r.update(delta_auc=delta, goal_met=abs(delta) <= AUC_TOLERANCE)
            rows.append(r)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    return rows


def run_cross(args: argparse.Namespace, model_args: list[str]) -> list[dict[str, Any]]:
    rows = []
    for data in args.cross:
        _say(f"cross-data-set: {data} ({args.split})")
        r = row(Path(data).name, data, evaluate(data, model_args, args.split))
        floor_ok = not r["images_below_sensitivity_floor"]
        r.update(split=args.split, goal_met=r["auc_roc"] >= CROSS_AUC and floor_ok)
        rows.append(r)
    return rows


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", type=Path, default=ROOT.parent / "shared/data/DRIVE")
    parser.add_argument("--model", help="model name (default: the task's)")
    parser.add_argument("--weights", type=Path, help="weights file (default: the shipped ones)")
    parser.add_argument("--work", type=Path, help="folder for the variants (kept; outside repo)")
    parser.add_argument("--variants", help=f"comma-separated subset of: {', '.join(VARIANTS)}")
    parser.add_argument(
        "--validation",
        action="store_true",
        help="variants of DRIVE's validation images (training 38-40), for choosing models",
    )
    parser.add_argument("--cross", type=Path, action="append", help="cross-data-set DATA")
    parser.add_argument("--split", default="test", help="split of --cross data (default test)")
    parser.add_argument("--json", action="store_true", help="one JSON object per row")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse(argv)
    model_args = [*(["--model", args.model] if args.model else [])]
    model_args += ["--weights", str(args.weights)] if args.weights else []
    rows = run_cross(args, model_args) if args.cross else run_robustness(args, model_args)
    if args.json:
        for r in rows:
            print(json.dumps(r, ensure_ascii=False))
    else:
        print("\n".join(cross_table(rows) if args.cross else robustness_table(rows)))
    return rows


if __name__ == "__main__":
    main()
