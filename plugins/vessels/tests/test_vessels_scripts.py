"""The scripts behind the README's ablation and averaging numbers, smoke-run on synthetic data."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from eyescan.api import synthetic
from eyescan.testing import invoke_cli, json_lines

ROOT = Path(__file__).resolve().parents[3]
SCRIPTS = ROOT / "plugins" / "vessels" / "scripts"
NUMBER = r"\d+\.\d{4}"


def test_ablation_script_trains_evaluates_benchmarks_and_resumes(tmp_path, tiny_recipe):
    data = synthetic.write_drive_layout(tmp_path / "drive", n_train=3, n_test=1, size=64)
    other = synthetic.write_drive_layout(tmp_path / "other", n_train=1, n_test=1, size=64)
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps(tiny_recipe))
    env = {
        **os.environ,
        "DATA": str(data),
        "EVAL": f"{data} {other}",  # one column group per data set scored
        "RECIPE": str(recipe),
        "MODELS": "unet-isam sccunet",
        "SHIPPED": "sccunet",  # evaluated from the shipped weights, not trained
        "BENCH_ARGS": "--size 64 --iterations 1 --warmup 0",
    }
    out = tmp_path / "runs"
    command = ["bash", str(SCRIPTS / "ablation.sh"), str(out)]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    rows = {line.split("|")[1].strip(): line for line in first.stdout.splitlines()}
    header = first.stdout.splitlines()[0]
    assert "drive AUC-ROC" in header and "other AUC-ROC" in header, header
    for model in ("unet-isam", "sccunet"):
        assert len(re.findall(rf"\| {NUMBER}(?= \|)", rows[f"`{model}`"])) == 10, rows
        assert (out / model / "test-other.jsonl").is_file()
    assert json.loads((out / "sccunet" / "train.json").read_text())["shipped"] is True
    trained = out / "unet-isam" / "train.json"
    assert json.loads(trained.read_text())["weights"].endswith("unet-isam.safetensors")
    stamp = trained.stat().st_mtime_ns
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert trained.stat().st_mtime_ns == stamp  # finished steps are skipped
    assert (out / "table.md").read_text() == again.stdout


def test_averaging_check_single_model_row_matches_evaluate(tmp_path):
    data = synthetic.write_drive_layout(tmp_path / "drive", n_train=1, n_test=2, size=64)
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "averaging_check.py"), str(data), "unet", "sccunet"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    rows = [line.split("|")[1:-1] for line in result.stdout.splitlines()[2:]]
    assert len(rows) == 6  # 3 combinations × with/without flip
    passes = {(name.strip(), tta.strip()): int(n) for name, tta, n, _, _ in rows}
    assert passes["unet + sccunet", "yes"] == 4
    alone = next(r for r in rows if r[0].strip() == "unet" and r[1].strip() == "no")
    evaluated = invoke_cli("evaluate", "vessels", data, "--model", "unet", "--json")
    summary = next(r for r in json_lines(evaluated.stdout) if r.get("kind") == "summary")
    assert float(alone[3]) == round(summary["auc_roc"], 4)
    assert float(alone[4]) == round(summary["f1"], 4)


def test_speed_script_times_predict_and_reports_the_scale(tmp_path):
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "speed.py"), "--size", "200x180", "--images", "1", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    (row,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert row["size"] == "200x180" and row["images"] == 1
    assert row["wall_s_per_photo"] > row["predict_ms_median"] / 1e3 > 0
    assert row["scale_factor"] > 2  # the default runs at a 540-px FOV: a small photo is enlarged
    bad = subprocess.run(
        [sys.executable, str(SCRIPTS / "speed.py"), "--size", "big"], capture_output=True, text=True
    )
    assert bad.returncode != 0 and "WIDTHxHEIGHT" in bad.stderr
