"""Print the README's result tables from ``eyescan evaluate drgrade --json`` outputs.

    python plugins/drgrade/scripts/readme_table.py SCREEN.jsonl [GRADER.jsonl ...]

The first file is the screen model's evaluation (grading + detection); the
others are graders evaluated alone (one row each).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def summary(path: Path) -> dict:
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return next(r for r in reversed(lines) if r.get("kind") == "summary")


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def cell(s: dict, key: str, show=num) -> str:
    """The value and, when the summary has it, its 95 % interval: ``0.966 (0.95–0.98)``."""
    ci = (s.get("ci95") or {}).get(key)
    text = show(s.get(key))
    return f"{text} ({show(ci[0])}–{show(ci[1])})" if ci else text


def grading_row(name: str, s: dict, prefix: str = "", auc: bool = True) -> str:
    cells = [
        name,
        cell(s, f"{prefix}kappa"),
        cell(s, f"{prefix}accuracy", pct),
        cell(s, f"{prefix}referable_sensitivity", pct),
        cell(s, f"{prefix}referable_specificity", pct),
        cell(s, "referable_auc") if auc else "n/a",
    ]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    screen, *others = [Path(p) for p in sys.argv[1:]]
    s = summary(screen)
    print(f"Test split: {s['images']} images ({s['data']})\n")
    print("| grade from | kappa (quadratic) | accuracy | referable Se | referable Sp | AUC |")
    print("|---|---|---|---|---|---|")
    print(grading_row("classifier (ordinal head)", s))
    for path in others:
        print(grading_row(f"classifier ({path.stem})", summary(path)))
    print(grading_row("lesions (rule)", s, "lesion_grade_", auc=False))
    print(grading_row(f"combined ({s.get('combine')})", s, "combined_", auc=False))
    print(f"\nConfusion matrix (classifier; rows truth 0-4): {s['confusion_matrix']}\n")
    print("| lesion | AP@0.5 | precision | recall | test lesions |")
    print("|---|---|---|---|---|")
    for lesion in ("microaneurysm", "haemorrhage", "hard_exudate"):
        print(
            f"| {lesion} | {num(s.get(f'ap_{lesion}'))} | {pct(s.get(f'precision_{lesion}'))} "
            f"| {pct(s.get(f'recall_{lesion}'))} | {s.get(f'truths_{lesion}')} |"
        )
    print(
        f"| all (mAP / pooled) | {cell(s, 'map')} | {cell(s, 'detection_precision', pct)} "
        f"| {cell(s, 'detection_recall', pct)} | |"
    )
    print(f"\nPrecision/recall at score >= {s.get('score_threshold')}.")
    if s.get("ci_method"):
        print(f"Intervals: {s['ci_method']}.")


if __name__ == "__main__":
    main()
