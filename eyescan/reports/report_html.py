"""Self-contained HTML reports: predictions (a row per image) and evaluations (figures).

Library code: builds HTML strings and writes files; never prints. Images are
embedded as downscaled JPEG data URIs, so one file can be mailed or archived
and opens without a network. Tables sort by clicking a column header (a few
lines of inline JavaScript).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

from eyescan.errors import DataError
from eyescan.imaging.imageio import write_text

#: A file in a record's ``files`` is shown as an overlay when its key or name holds one of these.
OVERLAY_WORDS = ("overlay", "cam", "annotated", "heat", "lesion", "box")
#: Output keys whose truthy value marks an image for attention.
FLAG_KEYS = ("flagged", "low_confidence")
#: Longest side of embedded thumbnails, in pixels.
THUMB_SIZE = 220
#: Integer outputs count as categories (grades, stages, labels) only within this range.
CATEGORY_INTS = range(0, 10)

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em;margin:0 0 .2em}
.meta{color:#666;font-size:.85em;margin-bottom:1em}
.cards{display:flex;flex-wrap:wrap;gap:.8em;margin-bottom:1.2em}
.card{border:1px solid #ddd;border-radius:6px;padding:.6em .9em;min-width:8em}
.card b{display:block;font-size:1.3em}
.card table td{padding:0 .5em 0 0;border:0}
table.data{border-collapse:collapse;font-size:.85em}
table.data th,table.data td{border:1px solid #ddd;padding:.3em .5em;vertical-align:top}
table.data th{background:#f4f4f4;position:sticky;top:0}
th.sortable{cursor:pointer}th.sortable:after{content:" \\2195";color:#999}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.failed{background:#fff0f0}tr.flagged{background:#fffbe6}
.err{color:#b00;max-width:28em}
img{display:block;margin-bottom:.2em;border-radius:3px}
figure{display:inline-block;margin:0 1em 1em 0}figcaption{font-size:.8em;color:#555}
"""

_SORT_JS = """
document.querySelectorAll("th.sortable").forEach(function(th){
 th.addEventListener("click",function(){
  var table=th.closest("table"),body=table.tBodies[0],col=th.cellIndex;
  var dir=th.dataset.dir==="desc"?1:-1;th.dataset.dir=dir===1?"asc":"desc";
  var rows=Array.prototype.slice.call(body.rows);
  rows.sort(function(a,b){
   var x=parseFloat(a.cells[col].dataset.value),y=parseFloat(b.cells[col].dataset.value);
   if(isNaN(x))return 1;if(isNaN(y))return -1;return dir*(x-y);});
  rows.forEach(function(r){body.appendChild(r);});});});
"""


def load_records(results_dir: Path) -> list[dict[str, Any]]:
    """The prediction records of an ``eyescan predict`` output folder (``predictions.jsonl``)."""
    path = Path(results_dir) / "predictions.jsonl"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DataError(f"{path}: cannot read the prediction records ({exc.strerror})") from None
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise DataError(f"{path}:{number}: not a JSON line") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}:{number}: not a JSON object")
        records.append(record)
    return records


def is_flagged(record: dict[str, Any]) -> bool:
    outputs = record.get("outputs") or {}
    return any(bool(outputs.get(key)) for key in FLAG_KEYS)


def _is_category(value: Any) -> bool:
    if isinstance(value, (str, bool)):
        return True
    return isinstance(value, int) and value in CATEGORY_INTS


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts for the top of the report: images, failures, flagged, and per category key.

    A key is a category when every record that has it holds a string, a bool or
    a small integer (``CATEGORY_INTS``): ``grade``, ``label``, ``referable``…
    """
    values: dict[str, list[Any]] = {}
    rejected: set[str] = set()
    for record in records:
        for key, value in (record.get("outputs") or {}).items():
            if key in FLAG_KEYS or key in rejected:
                continue
            if not _is_category(value):
                rejected.add(key)
                values.pop(key, None)
                continue
            values.setdefault(key, []).append(value)
    counts = {
        key: dict(sorted(Counter(_text(v) for v in vals).items()))
        for key, vals in values.items()
        if len(set(map(_text, vals))) <= 20
    }
    return {
        "images": len(records),
        "ok": sum(bool(r.get("ok")) for r in records),
        "errors": sum(not r.get("ok") for r in records),
        "flagged": sum(is_flagged(r) for r in records),
        "counts": counts,
    }


def scalar_columns(records: list[dict[str, Any]]) -> list[str]:
    """Output columns in first-seen order: scalars, one level of dicts (``a.b``), list lengths."""
    columns: list[str] = []
    for record in records:
        for key in _cells(record.get("outputs") or {}):
            if key not in columns:
                columns.append(key)
    return columns


def _cells(outputs: dict[str, Any]) -> dict[str, Any]:
    cells: dict[str, Any] = {}
    for key, value in outputs.items():
        if isinstance(value, dict):
            for sub, v in value.items():
                if v is None or isinstance(v, (str, int, float, bool)):
                    cells[f"{key}.{sub}"] = v
        elif isinstance(value, (list, tuple)):
            cells[f"{key} (n)"] = len(value)
        elif value is None or isinstance(value, (str, int, float, bool)):
            cells[key] = value
    return cells


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "–" if not math.isfinite(value) else f"{value:.4g}"
    return "–" if value is None else str(value)


def thumbnail_uri(path: Path, size: int = THUMB_SIZE) -> str | None:
    """A downscaled JPEG of an image file as a ``data:`` URI (None when unreadable)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.draft("RGB", (size, size))  # fast JPEG decoding at reduced size
            image = image.convert("RGB")
            image.thumbnail((size, size))
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=80, optimize=True)
    except (OSError, ValueError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def overlay_files(record: dict[str, Any]) -> list[tuple[str, str]]:
    """``(name, relative path)`` of the record's PNG overlays (see ``OVERLAY_WORDS``)."""
    found = []
    for name, path in (record.get("files") or {}).items():
        text = f"{name} {Path(str(path)).name}".lower()
        if str(path).lower().endswith(".png") and any(w in text for w in OVERLAY_WORDS):
            found.append((name, str(path)))
    return found


def _img(uri: str | None, caption: str, width: int | None = None) -> str:
    if uri is None:
        return f'<span class="err">{html.escape(caption)}: unreadable</span>'
    alt = html.escape(caption, quote=True)
    size = f' width="{width}"' if width else ""
    return f'<figure><img src="{uri}"{size} alt="{alt}"><figcaption>{alt}</figcaption></figure>'


def _value_cell(value: Any) -> str:
    if isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value)):
        number = float(value) if math.isfinite(float(value)) else ""
        return f'<td class="num" data-value="{number}">{html.escape(_text(value))}</td>'
    return f'<td data-value="">{html.escape(_text(value))}</td>'


def _interval(interval: Any) -> str:
    """``[lo, hi]`` as text, empty when there is none."""
    if isinstance(interval, (list, tuple)) and len(interval) == 2 and None not in interval:
        return f"[{interval[0]:.3f}, {interval[1]:.3f}]"
    return ""


def _header(columns: list[str], numeric: set[str], fixed: list[str]) -> str:
    cells = [f"<th>{html.escape(c)}</th>" for c in fixed]
    for column in columns:
        kind = ' class="sortable" title="click to sort"' if column in numeric else ""
        cells.append(f"<th{kind}>{html.escape(column)}</th>")
    return "<thead><tr>" + "".join(cells) + "</tr></thead>"


def _numeric(rows: list[dict[str, Any]], columns: list[str]) -> set[str]:
    """Columns whose present values are all numbers (bools excluded)."""
    numeric = set()
    for column in columns:
        present = [r[column] for r in rows if r.get(column) is not None]
        if present and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in present
        ):
            numeric.add(column)
    return numeric


def _summary_html(summary: dict[str, Any]) -> str:
    cards = [
        f'<div class="card">images<b>{summary["images"]}</b></div>',
        f'<div class="card">errors<b>{summary["errors"]}</b></div>',
        f'<div class="card">flagged<b>{summary["flagged"]}</b></div>',
    ]
    for key, counts in summary["counts"].items():
        rows = "".join(f"<tr><td>{html.escape(v)}</td><td>{n}</td></tr>" for v, n in counts.items())
        cards.append(f'<div class="card">{html.escape(key)}<table>{rows}</table></div>')
    return '<div class="cards" id="summary">' + "".join(cards) + "</div>"


def _page(title: str, meta: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        f'<h1>{html.escape(title)}</h1><div class="meta">{html.escape(meta)}</div>'
        f"{body}<script>{_SORT_JS}</script></body></html>\n"
    )


def _input_path(record: dict[str, Any], results_dir: Path) -> Path:
    path = Path(str(record.get("input", "")))
    if path.is_absolute() or path.exists():
        return path
    return results_dir / path


def prediction_html(
    records: list[dict[str, Any]], results_dir: Path, thumb_size: int = THUMB_SIZE
) -> str:
    """The prediction report: summary at the top, then one ``<tr class="image-row">`` per record.

    ``results_dir`` is the ``--out`` folder the records' ``files`` are relative to.
    """
    results_dir = Path(results_dir)
    summary = summarize(records)
    columns = scalar_columns(records)
    cells = [_cells(r.get("outputs") or {}) for r in records]
    numeric = _numeric(cells, columns)
    body_rows = []
    for record, row in zip(records, cells):
        classes = ["image-row"]
        if not record.get("ok"):
            classes.append("failed")
        if is_flagged(record):
            classes.append("flagged")
        source = _input_path(record, results_dir)
        images = _img(thumbnail_uri(source, thumb_size), "input")
        overlays = "".join(
            _img(thumbnail_uri(results_dir / path, thumb_size), name)
            for name, path in overlay_files(record)
        )
        error = record.get("error") or {}
        status = (
            "ok"
            if record.get("ok")
            else f'<span class="err">{html.escape(str(error.get("code", "error")))}: '
            f"{html.escape(str(error.get('message', '')))}</span>"
        )
        body_rows.append(
            f'<tr class="{" ".join(classes)}"><td>{html.escape(str(record.get("id", "")))}</td>'
            f"<td>{images}</td><td>{overlays}</td>"
            + "".join(_value_cell(row.get(c)) for c in columns)
            + f"<td>{status}</td></tr>"
        )
    header = _header(columns, numeric, ["image", "input", "overlays"])
    header = header.replace("</tr></thead>", "<th>status</th></tr></thead>")
    first = records[0] if records else {}
    meta = (
        f"task {first.get('task', '?')} · model {first.get('model', '?')} · weights "
        f"{str(first.get('weights_sha256') or '-')[:12]} · {len(records)} images · "
        "click a numeric column header to sort"
    )
    table = f'<table class="data" id="images">{header}<tbody>{"".join(body_rows)}</tbody></table>'
    return _page("eyescan prediction report", meta, _summary_html(summary) + table)


def write_prediction_report(
    records: list[dict[str, Any]], results_dir: Path, out: Path, thumb_size: int = THUMB_SIZE
) -> Path:
    """Write :func:`prediction_html` to ``out`` atomically; returns ``out``."""
    write_text(Path(out), prediction_html(records, results_dir, thumb_size))
    return Path(out)


def evaluation_html(
    header: dict[str, Any], result: dict[str, Any], figures: dict[str, Path]
) -> str:
    """The evaluation report: summary metrics, the figures (embedded PNG), per-image metrics."""
    summary = result.get("summary") or {}
    intervals = summary.get("ci95") or {}
    metric_rows = "".join(
        f"<tr><td>{html.escape(str(k))}</td>{_value_cell(v)}"
        f"<td>{html.escape(_interval(intervals.get(k)))}</td></tr>"
        for k, v in summary.items()
        if v is None or isinstance(v, (str, int, float, bool))
    )
    head = "<thead><tr><th>metric</th><th>value</th><th>95 % CI</th></tr></thead>"
    parts = [f'<table class="data" id="summary">{head}<tbody>{metric_rows}</tbody></table>']
    if summary.get("ci_method"):
        parts.append(f"<p>95 % CI: {html.escape(str(summary['ci_method']))}</p>")
    split = summary.get("data_split")
    if isinstance(split, dict):
        described = f"{split.get('split')} split: {split.get('count')} images; {split.get('rule')}"
        parts.append(f"<p>data: {html.escape(described)}</p>")
    parts.append("<h2>Figures</h2>" if figures else "")
    for name, path in figures.items():
        data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        parts.append(_img(f"data:image/png;base64,{data}", name, width=480))
    images = result.get("images") or []
    if images:
        columns = [c for c in scalar_columns([{"outputs": i} for i in images]) if c != "id"]
        cells = [_cells(i) for i in images]
        rows = "".join(
            f'<tr class="image-row"><td>{html.escape(str(i.get("id", "")))}</td>'
            + "".join(_value_cell(row.get(c)) for c in columns)
            + "</tr>"
            for i, row in zip(images, cells)
        )
        head = _header(columns, _numeric(cells, columns), ["image"])
        parts.append(
            f'<h2>Per image</h2><table class="data" id="images">{head}<tbody>{rows}</tbody></table>'
        )
    meta = " · ".join(f"{k} {v}" for k, v in header.items() if v is not None)
    return _page("eyescan evaluation report", meta, "".join(parts))


def write_evaluation_report(
    out: Path, header: dict[str, Any], result: dict[str, Any], figures: dict[str, Path]
) -> Path:
    """Write :func:`evaluation_html` to ``out`` atomically; returns ``out``."""
    write_text(Path(out), evaluation_html(header, result, figures))
    return Path(out)


def flatten_screening(record: dict[str, Any]) -> dict[str, Any]:
    """A screening record as one prediction-report row: ``TASK.output`` columns, every task's
    files (already relative to ``--out``), the quality verdict, each task's error."""
    outputs: dict[str, Any] = {}
    quality = record.get("quality")
    if quality:
        outputs["gradable"] = bool(quality.get("gradable"))
        outputs["quality"] = ", ".join(quality.get("reasons") or []) or "ok"
        outputs["flagged"] = not quality.get("gradable", True)
    files: dict[str, str] = {}
    errors = []
    for name, part in (record.get("tasks") or {}).items():
        if part.get("abstained"):
            outputs[f"{name}.abstained"] = part["abstained"]
        for key, value in (part.get("outputs") or {}).items():
            outputs[f"{name}.{key}"] = value
        files.update({f"{name}.{k}": v for k, v in (part.get("files") or {}).items()})
        if not part.get("ok"):
            error = part.get("error") or {}
            errors.append(f"{name}: {error.get('message', '')}")
    error = record.get("error")
    if error is None and errors:
        error = {"code": "task_failed", "message": " | ".join(errors)}
    return {
        "task": ",".join(record.get("tasks") or {}),
        "input": record.get("input", ""),
        "id": record.get("id", ""),
        "ok": bool(record.get("ok")),
        "outputs": outputs,
        "files": files,
        "error": error,
    }


def screening_html(records: list[dict[str, Any]], results_dir: Path) -> str:
    """The multi-task report: one row per photo, every task's outputs and overlays."""
    rows = [flatten_screening(r) for r in records]
    page = prediction_html(rows, results_dir)
    return page.replace("eyescan prediction report", "eyescan screening report")


def write_screening_report(records: list[dict[str, Any]], results_dir: Path, out: Path) -> Path:
    """Write :func:`screening_html` to ``out`` atomically; returns ``out``."""
    write_text(Path(out), screening_html(records, results_dir))
    return Path(out)
