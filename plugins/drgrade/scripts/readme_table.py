"""Print the README's result tables from ``eyescan evaluate drgrade --json`` outputs.

    python plugins/drgrade/scripts/readme_table.py [NAME=]EVALUATION.jsonl ...

One row per evaluation and grade (classifier, lesion-based, combined: what the
evaluated model has), the DME-risk table, the confusion matrices and, for
evaluations with lesion boxes, the detection table.
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


def dme_row(name: str, s: dict) -> str:
    cells = [name, str(s["dme_images"]), cell(s, "dme_accuracy", pct), cell(s, "dme_kappa"),
             cell(s, "joint_accuracy", pct)]  # fmt: skip
    return "| " + " | ".join(cells) + " |"


def detection_table(s: dict) -> None:
    print("| lesion | AP@0.5 | precision | recall | test lesions |")
    print("|---|---|---|---|---|")
    for lesion in ("microaneurysm", "haemorrhage", "hard_exudate"):
        if not s.get(f"truths_{lesion}"):
            continue  # a class the data set does not box (CODRAS: no microaneurysm class)
        print(
            f"| {lesion} | {num(s.get(f'ap_{lesion}'))} | {pct(s.get(f'precision_{lesion}'))} "
            f"| {pct(s.get(f'recall_{lesion}'))} | {s.get(f'truths_{lesion}')} |"
        )
    print(
        f"| all (mAP / pooled) | {cell(s, 'map')} | {cell(s, 'detection_precision', pct)} "
        f"| {cell(s, 'detection_recall', pct)} | |"
    )
    print(f"\nPrecision/recall at score >= {s.get('score_threshold')}.")


def main() -> None:
    """Arguments: ``NAME=EVALUATION.jsonl`` (a label for the table, then the file)."""
    runs = [(a.split("=", 1) if "=" in a else (Path(a).stem, a)) for a in sys.argv[1:]]
    runs = [(name, summary(Path(path))) for name, path in runs]
    print("| data (images) | grade from | kappa (quadratic) | accuracy | referable Se "
          "| referable Sp | referable AUC |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for name, s in runs:
        label = f"{name} ({s['graded_images']})"
        if "kappa" in s:
            print(grading_row(f"{label} | classifier", s))
        if "lesion_grade_kappa" in s:
            print(grading_row(f"{label} | lesions (counts)", s, "lesion_grade_", auc=False))
        if "combined_kappa" in s:
            print(grading_row(f"{label} | combined ({s['combine']})", s, "combined_", auc=False))
    with_dme = [(n, s) for n, s in runs if s.get("dme_images")]
    if with_dme:
        print("\n| data | images | DME-risk accuracy | DME-risk kappa | grade and risk right |")
        print("|---|---|---|---|---|")
        for name, s in with_dme:
            print(dme_row(name, s))
    for name, s in runs:
        if "confusion_matrix" in s:
            print(
                f"\n{name}: confusion matrix (classifier; rows truth 0-4): {s['confusion_matrix']}"
            )
        if "dme_confusion_matrix" in s:
            print(
                f"{name}: DME-risk confusion matrix (rows truth 0-2): {s['dme_confusion_matrix']}"
            )
    for name, s in runs:
        if s.get("annotated_images"):
            print(f"\n{name}: lesion boxes of {s['annotated_images']} images\n")
            detection_table(s)
    intervals = next((s["ci_method"] for _, s in runs if s.get("ci_method")), None)
    if intervals:
        print(f"\nIntervals: {intervals}.")


if __name__ == "__main__":
    main()
