"""benchmarks/goals.py (the performance goals run, docs/performance.md): a tiny live run
and the goals table it writes."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def goals_module():
    spec = importlib.util.spec_from_file_location("goals", ROOT / "benchmarks" / "goals.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_tiny_goals_run_writes_its_section_between_the_markers(tmp_path):
    goals = goals_module()
    doc = tmp_path / "performance.md"
    doc.write_text(f"# Performance\n\nbefore\n\n{goals.START}\nold\n{goals.END}\n\nafter\n")
    report = goals.main(
        ["--out", str(tmp_path / "run"), "--doc", str(doc), "--skip", "e2e,highres",
         "--repeats", "1", "--json"]
    )  # fmt: skip
    assert report["help_seconds"] > 0 and report["tasks_seconds"] > 0
    text = doc.read_text()
    assert text.startswith("# Performance\n\nbefore\n") and text.endswith("\n\nafter\n")
    assert "old" not in text and text.count(goals.START) == 1
    assert "`eyescan --help`: median ≤ 0.25 s" in text
    assert json.loads((tmp_path / "run" / "goals.json").read_text())["cpus"] >= 1


def test_the_goals_table_says_met_or_not_from_the_ratios():
    goals = goals_module()
    e2e = {"task": "vessels", "backend": "onnx", "batch_size": 1, "images": 40,
           "images_per_s": 7.0, "forward_images_per_s": 10.0, "ratio": 0.7,
           "stage_ms_mean": {"read": 5.0}, "peak_mb": 900.0}  # fmt: skip
    hr = {"task": "vessels", "backend": "onnx", "megapixels": 8.19, "images": 3,
          "seconds_per_image": 2.5, "pipeline_seconds": 7.5, "process_seconds": 12.0,
          "peak_mb": 1500.0, "stage_ms_mean": {}}  # fmt: skip
    limit = {"limit_megapixels": 400.0, "measured_megapixels": 64.0, "size": [9797, 6532],
             "tasks": [{"task": "vessels", "backend": "onnx", "peak_mb": 2500.0,
                        "seconds_per_image": 20.0, "mb_per_megapixel": 17.9,
                        "peak_mb_at_limit": 8500.0, "extrapolated": True}]}  # fmt: skip
    report = {"end_to_end": [e2e], "high_resolution": [hr], "input_limit": limit,
              "help_seconds": 0.2, "tasks_seconds": 0.5}  # fmt: skip
    rows = {goal.split(":")[0]: (measured, met) for goal, measured, met in goals.goal_rows(report)}
    assert rows["`predict vessels` on 40 DRIVE-size photos, onnx, batch 1"] == (
        "7.00 / 10.00 img/s = **70 %**",
        "**not met**",
    )
    hr_row = next(v for k, v in rows.items() if k.startswith("8-MP photo"))
    assert hr_row[0].startswith("**2.50 s** a photo") and hr_row[1] == "**met**"
    limit_row = next(v for k, v in rows.items() if k.startswith("peak memory at the input"))
    assert "extrapolated from 64 MP" in limit_row[0] and limit_row[1] == "**not met**"
    assert rows["`eyescan --help`"][1] == "**met**"
