"""The HTML report, round two: per-task summaries, sorting any column, enlarging, screening.

Hand-made ``eyescan.screening/1`` records and small PNGs in ``tmp_path``; the
real multi-task command is not needed.
"""

from __future__ import annotations

import base64
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eyescan.reports import report_html

from .test_report_html import _chromium_dom, _png, _records

TASKS = ("vessels", "drgrade", "redlesion")


def _task_record(task: str, stem: str, i: int, ok: bool = True) -> dict:
    outputs = {
        "vessels": {"vessel_fraction": 0.1 + 0.02 * i, "vessel_pixels": 900 + i, "threshold": 0.5},
        "drgrade": {"grade": i % 5, "grade_name": ["none", "mild", "moderate"][i % 3],
                    "referable": i % 2 == 0, "referable_probability": 0.2 * i},
        "redlesion": {"ma_present": i > 2, "ma_count": i, "ma_area_fraction": float("nan")},
    }[task]  # fmt: skip
    files = {
        "vessels": {"overlay": f"vessels/{stem}_overlay.png", "mask": f"vessels/{stem}_mask.png"},
        "drgrade": {"lesions": f"drgrade/{stem}_lesions.png"},
        "redlesion": {"overlay": f"redlesion/{stem}_overlay.png"},
    }[task]
    return {
        "task": task,
        "model": f"{task}-model",
        "weights_sha256": "cd" * 32,
        "ok": ok,
        "outputs": outputs if ok else {},
        "files": files if ok else {},
        "error": None if ok else {"code": "task_error", "message": f"{task} broke on {stem}"},
    }


def _screening(root: Path, n: int = 5) -> list[dict]:
    """``n`` photos × 3 tasks: p1 ungradable, redlesion fails on p2, the last photo unreadable."""
    for task in TASKS:
        (root / task).mkdir(exist_ok=True)
    records = []
    for i in range(n):
        stem = f"p{i}"
        _png(root / f"{stem}.png", 30 + 40 * i, 64)
        for task in TASKS:
            for name in ("overlay", "lesions", "mask"):
                _png(root / task / f"{stem}_{name}.png", 200 - 30 * i, 64)
        quality = {"gradable": i != 1, "reasons": [] if i != 1 else ["blurred", "dark"],
                   "measures": {"sharpness": 0.3 * i}}  # fmt: skip
        tasks = {t: _task_record(t, stem, i, ok=not (t == "redlesion" and i == 2)) for t in TASKS}
        record = {
            "schema": report_html.SCREENING_SCHEMA,
            "input": str(root / f"{stem}.png"),
            "id": stem,
            "input_sha256": "ef" * 32,
            "ok": all(t["ok"] for t in tasks.values()),
            "quality": quality,
            "tasks": tasks,
            "options": {},
            "timings_ms": {},
            "error": None,
        }
        records.append(record)
    last = records[-1]
    last.update(ok=False, tasks={}, quality=None, input=str(root / "gone.png"))
    last["error"] = {"code": "image_read_error", "message": "gone.png: no such file"}
    return records


def test_summary_counts_booleans_numbers_and_quality(tmp_path):
    records = _records(tmp_path)
    records[0]["quality"] = {"gradable": False, "reasons": ["blurred"], "measures": {}}
    records[1]["quality"] = {"gradable": True, "reasons": [], "measures": {}}
    summary = report_html.summarize(records)
    assert summary["booleans"]["referable"] == [1, 2]
    assert summary["numeric"]["p"] == [0.91, 0.12] and "px" in summary["numeric"]
    assert summary["quality"] == {
        "assessed": 2, "gradable": 1, "ungradable": 1, "not_assessed": 1,
        "reasons": {"blurred": 1},
    }  # fmt: skip
    page = report_html.prediction_html(records, tmp_path)
    assert "referable</td><td>1 / 2" in page
    assert set(summary["numeric"]) == {"grade", "p", "px", "probs.x"}
    assert page.count('<svg class="hist"') == 3  # grade is counted per value instead
    assert "min 0.12 · median 0.515 · max 0.91" in page
    assert 'class="card quality-card"' in page and "blurred" in page
    assert ">images<b>3</b>" in page and ">errors<b>1</b>" in page  # the old cards stay


def test_every_column_sorts_and_thumbnails_enlarge(tmp_path):
    page = report_html.prediction_html(_records(tmp_path), tmp_path)
    header = page[page.index("<thead>") : page.index("</thead>")]
    assert 'data-type="num" title="click to sort">p<' in header
    assert 'data-type="text" title="click to sort">image<' in header
    assert 'data-type="text" title="click to sort">status<' in header
    assert "<th>input</th>" in header and "<th>overlays</th>" in header  # pictures don't sort
    assert header.count('class="sortable"') == header.count("<th ") + header.count("<th>") - 2
    assert page.count("data-full=") == 4 and 'id="lightbox"' in page
    large = re.search(r'data-full="data:image/jpeg;base64,([^"]+)"', page).group(1)
    with Image.open(__import__("io").BytesIO(base64.b64decode(large))) as image:
        assert image.size == (32, 32)  # never enlarged beyond the original


def test_screening_report_rows_tasks_errors_and_quality(tmp_path):
    records = _screening(tmp_path)
    page = report_html.screening_html(records, tmp_path)
    assert "eyescan screening report" in page and page.count('<tr class="image-row') == 5
    for task in TASKS:
        assert f'data-task="{task}"' in page and 'colspan="' in page
    # short names under the task header, the full name as the tooltip
    assert 'title="vessels.vessel_fraction">vessel_frac<' in page
    assert 'title="drgrade.referable_probability">referable_prob<' in page
    assert "threshold<" not in page.split("<thead>")[1].split("</thead>")[0]  # constant
    # the failing task on p2 is in its cell; the other tasks' overlays are still there
    row = page.split('<tr class="image-row')[3]
    assert "task_error: redlesion broke on p2" in row and 'class="task-failed"' in row
    assert row.count("data-full=") == 3  # photo, vessels overlay, drgrade lesions
    assert "mask<" not in row  # masks are not overlays
    # quality: the ungradable photo is marked, the summary counts reasons
    assert 'class="image-row ungradable"' in page
    quality = page[page.index('class="card quality-card"') :]
    assert "ungradable</td><td>1" in quality and "blurred</td><td>1" in quality
    assert "not assessed</td><td>1" in quality
    # the unreadable photo: the whole-photo error, every task "not run"
    last = page.split('<tr class="image-row')[5]
    assert "gone.png: no such file" in last and last.count(">not run<") == 3
    assert "file not found (gone.png)" in last
    summary = report_html.screening_summary(records)
    assert summary["photos"] == 5 and summary["failed"] == 2
    assert summary["tasks"]["drgrade"]["booleans"]["referable"] == [2, 4]
    assert summary["tasks"]["redlesion"]["errors"] == 1
    assert "ma_area_fraction" not in summary["tasks"]["redlesion"]["numeric"]  # NaN only
    assert "http://" not in page and "https://" not in page


def test_report_command_detects_a_screening_folder(invoke, tmp_path):
    from eyescan.inference.predicting import write_jsonl

    write_jsonl(tmp_path / "predictions.jsonl", _screening(tmp_path))
    result = invoke("report", tmp_path)
    assert result.exit_code == 0, result.output
    assert "screening report:" in result.stderr
    page = (tmp_path / "report.html").read_text()
    assert "eyescan screening report" in page and page.count('<tr class="image-row') == 5
    path = report_html.write_screening_report(_screening(tmp_path), tmp_path, tmp_path / "s.html")
    assert path == tmp_path / "s.html" and path.read_text() == page


def test_bad_images_names_and_values_never_crash(tmp_path, monkeypatch):
    records = _screening(tmp_path, n=3)
    evil = '<script>alert("x")</script>'
    (tmp_path / "vessels" / "<script>x.png").write_bytes(b"not a png")
    records[0]["id"] = evil
    records[0]["tasks"]["vessels"]["files"]["overlay"] = "vessels/<script>x.png"
    records[0]["tasks"]["vessels"]["outputs"]["vessel_fraction"] = float("inf")
    records[0]["tasks"]["drgrade"]["outputs"]["grade_name"] = evil
    records[0]["tasks"]["drgrade"]["error"] = "odd error"
    records[0]["quality"] = {"gradable": False, "reasons": [evil], "measures": {evil: 1}}
    records[1]["tasks"]["drgrade"] = "not a dict"
    records[1]["tasks"][evil] = {"ok": True, "outputs": {evil: 1.0}, "files": []}
    page = report_html.screening_html(records, tmp_path)
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert "cannot decode image (UnidentifiedImageError" in page
    # over the core's pixel limit: refused from the header, the cell says so
    bomb = _png(tmp_path / "bomb.png", 10, 64)
    monkeypatch.setenv("EYESCAN_MAX_PIXELS", "3000")  # 64 × 64 > 3000 (PIL: > 6000)
    got = report_html.embed_image(bomb)
    assert got.thumb is None and "image too large (64x64 pixels" in got.problem
    page = report_html.screening_html(records, tmp_path)
    assert "image too large (64x64 pixels, limit 3,000;" in page and "(p0.png)" in page
    assert report_html.thumbnail_uri(bomb) is None


def test_report_size_for_five_photos_and_three_tasks(tmp_path):
    """Photo-like 1000 px PNGs: the page stays small enough to mail (thumbnail + 800 px each)."""
    rng = np.random.default_rng(0)
    records = _screening(tmp_path)
    base = np.linspace(0, 255, 1000, dtype=np.float32)
    for path in list(tmp_path.rglob("*.png")):
        noise = rng.normal(0, 12, (1000, 1000, 1)).astype(np.float32)
        array = np.clip(base[None, :, None] * [1, 0.5, 0.2] + noise, 0, 255).astype(np.uint8)
        Image.fromarray(array).save(path)
    size = len(report_html.screening_html(records, tmp_path).encode())
    assert size < 5_000_000, size


@pytest.mark.skipif(
    shutil.which("chromium") is None,
    reason="chromium not installed (apt-get install chromium; .ci/run installs it)",
)
def test_screening_report_renders_sorts_and_enlarges_in_a_browser(tmp_path):
    page = report_html.write_screening_report(
        _screening(tmp_path), tmp_path, tmp_path / "report.html"
    )
    # test only: click the "photo" header twice (desc), a numeric header, and a thumbnail
    probe = """<script>
    function ths(t){return [].filter.call(document.querySelectorAll("th.sortable"),
      function(h){return h.textContent===t;})[0];}
    ths("photo").click();ths("photo").click();
    function order(){return [].map.call(document.querySelectorAll("tr.image-row"),
      function(r){return r.cells[0].textContent;});}
    var ids=order();ths("vessel_frac").click();var fr=order();
    document.querySelector("img[data-full]").click();
    var out=document.createElement("pre");out.id="probe";
    out.textContent=ids.join(",")+"|"+fr.join(",")+"|"+document.getElementById("lightbox").className;
    document.body.appendChild(out);</script></body>"""
    text = page.read_text().replace("</body>", probe)
    page.write_text(text)
    dom = _chromium_dom(page, tmp_path)
    assert 'data-ready="1"' in dom  # the report's script ran to its end
    assert dom.count('<tr class="image-row') == 5
    probe_text = re.search(r'<pre id="probe">([^<]*)</pre>', dom).group(1)
    desc, by_fraction, lightbox = probe_text.split("|")
    assert desc == "p4,p3,p2,p1,p0"
    assert by_fraction == "p0,p1,p2,p3,p4"  # ascending; p4 has no value: last
    assert lightbox == "open"
