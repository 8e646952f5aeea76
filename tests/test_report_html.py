"""The HTML prediction report: summary, rows, overlays, CLI options, a CSV plugin, a browser."""

from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eyescan.api import hookimpl, imageio
from eyescan.plugins import registry as plugins
from eyescan.reports import report_html
from eyescan.testing import json_lines

from .toy_plugin import ToyPlugin


def _png(path: Path, value: int, size: int = 32) -> Path:
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path)
    return path


def _records(root: Path) -> list[dict]:
    """Three records: graded and flagged, graded with overlays, and a failure."""
    for name, value in (("a.png", 40), ("b.png", 120), ("b_overlay.png", 200), ("b_cam.png", 90)):
        _png(root / name, value)
    _png(root / "b_mask.png", 255)
    base = {"task": "demo", "model": "m", "weights_sha256": "ab" * 32, "timings_ms": {}}
    return [
        {
            **base,
            "input": str(root / "a.png"),
            "id": "a",
            "ok": True,
            "outputs": {"grade": 2, "referable": True, "p": 0.91, "flagged": True, "px": 5000},
            "files": {},
            "error": None,
        },
        {
            **base,
            "input": str(root / "b.png"),
            "id": "b",
            "ok": True,
            "outputs": {"grade": 0, "referable": False, "p": 0.12, "px": 7, "probs": {"x": 0.5}},
            "files": {"overlay": "b_overlay.png", "gradcam": "b_cam.png", "mask": "b_mask.png"},
            "error": None,
        },
        {
            **base,
            "input": str(root / "c.png"),
            "id": "c",
            "ok": False,
            "outputs": {},
            "files": {},
            "error": {"code": "image_read_error", "message": "c.png: not an image"},
        },
    ]


def test_summary_counts_categories_errors_and_flags(tmp_path):
    summary = report_html.summarize(_records(tmp_path))
    assert summary["images"] == 3 and summary["errors"] == 1 and summary["flagged"] == 1
    assert summary["counts"]["grade"] == {"0": 1, "2": 1}
    assert summary["counts"]["referable"] == {"no": 1, "yes": 1}
    assert "p" not in summary["counts"] and "px" not in summary["counts"]  # not categories


def test_report_has_a_row_per_image_overlays_embedded_and_no_network(tmp_path):
    page = report_html.prediction_html(_records(tmp_path), tmp_path)
    assert page.count('<tr class="image-row') == 3
    assert len(re.findall(r'src="data:image/jpeg;base64,', page)) == 4  # 2 inputs + 2 overlays
    assert ">mask<" not in page  # masks are not overlays
    assert "http://" not in page and "https://" not in page
    assert "c.png: not an image" in page and 'class="image-row failed"' in page
    assert 'class="sortable"' in page and "probs.x" in page


def test_report_command_and_missing_records(invoke, tmp_path):
    from eyescan.inference.predicting import write_jsonl

    write_jsonl(tmp_path / "predictions.jsonl", _records(tmp_path))
    result = invoke("report", tmp_path, "--out", tmp_path / "r.html")
    assert result.exit_code == 0, result.output
    assert "r.html" in result.stderr
    assert (tmp_path / "r.html").read_text().count('<tr class="image-row') == 3
    missing = invoke("report", tmp_path / "nowhere")
    assert missing.exit_code == 1 and "predictions.jsonl" in missing.stderr


class CsvReport:
    """A third-party plugin adding a report format: one CSV row per image."""

    @hookimpl
    def report(self, task, prediction, out_dir, stem):
        name = f"{stem}_values.csv"
        values = {**prediction.values, "explain": task.options.get("explain", False)}
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=sorted(values))
        writer.writeheader()
        writer.writerow(values)
        imageio.write_text(Path(out_dir) / name, text.getvalue())  # atomic, makes the folder
        return {"csv": name}


def test_predict_report_with_a_csv_plugin_and_explain(invoke, tmp_path):
    plugins.reset_registry([("toy", ToyPlugin()), ("csvreport", CsvReport())])
    trained = invoke("train", "toy", tmp_path, "--out", tmp_path / "run", "--json")
    weights = json_lines(trained.stdout)[0]["weights"]
    images = tmp_path / "images"
    images.mkdir()
    for i in range(3):
        _png(images / f"im{i}.png", 50 * i)
    out = tmp_path / "out"
    result = invoke(
        "predict", "toy", images, "--weights", weights, "--out", out, "--report",
        out / "report.html", "--explain",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"report: {out / 'report.html'}" in result.stderr
    assert (out / "report.html").read_text().count('<tr class="image-row') == 3
    rows = [
        next(csv.DictReader(io.StringIO((out / f"im{i}_values.csv").read_text()))) for i in range(3)
    ]
    assert [float(r["score"]) for r in rows] == pytest.approx(
        [0, 50 / 255 * 2, 100 / 255 * 2], abs=1e-6
    )
    assert all(r["explain"] == "True" for r in rows)  # --explain reaches task.options
    records = [json_lines(p.read_text())[0] for p in sorted(out.glob("im*.json"))]
    assert all(r["files"]["csv"].endswith("_values.csv") for r in records)


def _chromium_dom(page: Path, tmp_path: Path) -> str:
    command = [
        "chromium", "--headless", "--no-sandbox", "--disable-gpu",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={tmp_path / 'shot.png'}", "--window-size=1200,900", "--dump-dom",
        page.resolve().as_uri(),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=50)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.skipif(
    shutil.which("chromium") is None,
    reason="chromium not installed (apt-get install chromium; .ci/run installs it)",
)
def test_report_renders_in_a_headless_browser(tmp_path):
    page = report_html.write_prediction_report(
        _records(tmp_path), tmp_path, tmp_path / "report.html"
    )
    dom = _chromium_dom(page, tmp_path)
    assert dom.count('<tr class="image-row') == 3
    assert 'id="summary"' in dom
    with Image.open(tmp_path / "shot.png") as shot:
        assert shot.size == (1200, 900)
        assert len(np.unique(np.asarray(shot.convert("L")))) > 10  # something was drawn
