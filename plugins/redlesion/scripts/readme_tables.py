"""Print the README's IDRiD tables from ``measure_real.sh``'s outputs.

    python plugins/redlesion/scripts/readme_tables.py OUT

Reads ``OUT/cv.jsonl`` (cv_measure.py), ``OUT/test-stage{1,2}.jsonl`` (``eyescan
evaluate --json`` on the official test set 55–81) and ``OUT/image-level.json``
(image_level.py). ``tests/test_redlesion_shipped.py`` checks that the README holds
the rows this prints for the shipped model.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

STAGES = {"stage1": "one-stage (weighted BCE)", "stage2": "two-stage (+ MSE)"}
FROC_RATES = ("0.125", "0.25", "0.5", "1", "2", "4", "8")


def num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def cell(s: dict, key: str) -> str:
    """The value and, when the summary has it, its 95 % interval: ``0.412 (0.35–0.47)``."""
    ci = (s.get("ci95") or {}).get(key)
    return f"{num(s.get(key))} ({num(ci[0])}–{num(ci[1])})" if ci else num(s.get(key))


def summary(path: Path) -> dict:
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return next(r for r in reversed(lines) if r.get("kind") == "summary")


def cv_rows(lines: list[dict]) -> list[str]:
    cv = lines[-1]["stages"]
    rows = []
    for stage, name in STAGES.items():
        s = cv[stage]
        cells = [name] + [
            f"{s[k]['mean']:.3f} ± {s[k]['sd']:.3f}"
            for k in ("ma_auc_pr", "he_auc_pr", "he_auc_pr_1072")
        ]
        cells += [num(s["ma_pooled_auc_pr"]), num(s["he_pooled_auc_pr"])]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def fold_rows(lines: list[dict]) -> list[str]:
    folds = {(r["stage"], r["fold"]): r for r in lines if r.get("kind") == "fold"}
    rows = []
    for k in sorted({fold for _, fold in folds}):
        one, two = folds[("stage1", k)], folds[("stage2", k)]
        cells = [str(k), str(one["ma_images"])]
        for key in ("ma_auc_pr", "he_auc_pr", "he_auc_pr_1072"):
            cells += [num(one.get(key)), num(two.get(key))]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def test_row(name: str, s: dict) -> str:
    cells = [name, str(s["images"]), cell(s, "ma_froc"), cell(s, "he_froc")]
    cells += [str(s.get(k)) for k in ("ma_froc_lesions", "he_froc_lesions")]
    cells += [f"{s['ma_froc_false_positives'] / s['images']:.1f}"]
    return "| " + " | ".join(cells) + " |"


def froc_row(name: str, s: dict) -> str:
    cells = [name] + [num(s.get(f"ma_froc_at_{r}_fp")) for r in FROC_RATES]
    cells += [num(s.get(f"he_froc_at_{r}_fp")) for r in ("0.125", "1", "8")]
    return "| " + " | ".join(cells) + " |"


def image_row(name: str, result: dict) -> str:
    r = result[name]
    low, high = r["ci95"] or (None, None)
    auc = f"{num(r['auc'])} ({num(low)}–{num(high)})"
    return f"| {name} | {auc} | {r['positive']} | {r['negative']} |"


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    out = Path(args[0])
    cv = [json.loads(line) for line in (out / "cv.jsonl").read_text().splitlines() if line]
    print("5-fold cross-validation, 54 IDRiD training images, pixel AUC-PR at the masks' size")
    print("| training | MA AUC-PR | HE AUC-PR | HE AUC-PR (1072×712) | MA pooled | HE pooled |")
    print("|---|---|---|---|---|---|")
    print("\n".join(cv_rows(cv)))
    print("\nPer fold (one-stage / two-stage)")
    print("| fold | images | MA 1 | MA 2 | HE 1 | HE 2 | HE 1072 1 | HE 1072 2 |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(fold_rows(cv)))
    for stage, name in STAGES.items():
        chosen = {k: round(cv[-1]["stages"][stage][f"{k}_threshold"], 3) for k in ("ma", "he")}
        print(f"\nthresholds (pooled out-of-fold), {name}: {chosen}")
    tests = {stage: summary(out / f"test-{stage}.jsonl") for stage in STAGES}
    n = tests["stage2"]["images"]
    print(f"\nOfficial test set 55–81 ({n} images, boxes), models trained on all 54")
    print("| training | images | MA FROC | HE FROC | MA boxes | HE boxes | MA FP/image |")
    print("|---|---|---|---|---|---|---|")
    for stage, name in STAGES.items():
        print(test_row(name, tests[stage]))
    unseen = out / "test-unseen.jsonl"
    if unseen.exists():
        image = json.loads((out / "image-level.json").read_text())
        name = STAGES.get(image.get("stage"), "chosen")
        print(test_row(f"{name}, images the backbone never saw", summary(unseen)))
    print("\nFROC sensitivity at false positives per image")
    rates = " | ".join(f"MA @{r}" for r in FROC_RATES)
    print(f"| training | {rates} | HE @0.125 | HE @1 | HE @8 |")
    print("|---" * (1 + len(FROC_RATES) + 3) + "|")
    for stage, name in STAGES.items():
        print(froc_row(name, tests[stage]))
    image = json.loads((out / "image-level.json").read_text())
    left_out = ", ".join(image.get("excluded") or []) or "none"
    model = STAGES.get(image.get("stage"), "model")
    print(f"\nImage level, IDRiD part B test ({image['images']} photographs; left out as "
          f"part A training images: {left_out}), {model}")  # fmt: skip
    print("| question | AUC (95 % CI) | positive | negative |")
    print("|---|---|---|---|")
    for name in ("ma_image_auc", "he_image_auc", "red_image_auc"):
        print(image_row(name, image))
    return 0


if __name__ == "__main__":
    sys.exit(main())
