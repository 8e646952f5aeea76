"""Self-contained HTML reports: predictions (a row per image), screening runs, evaluations.

Library code: builds HTML strings and writes files; never prints. Images are
embedded as downscaled JPEG data URIs (a thumbnail and a larger copy shown when
the thumbnail is clicked), so one file can be mailed or archived and opens
without a network. Every table column sorts by clicking its header (a few
lines of inline JavaScript). The core knows no task's output names: summaries
are computed from the types of the values the records hold.
"""

from __future__ import annotations

import base64
import html
import io
import math
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eyescan.errors import DataError
from eyescan.imaging.imageio import atomic_path
from eyescan.reports.records import SCREENING_SCHEMA, read_jsonl

#: A file in a record's ``files`` is shown as an overlay when its key or name holds one of these.
OVERLAY_WORDS = ("overlay", "cam", "annotated", "heat", "lesion", "box")
#: Output keys whose truthy value marks an image for attention.
FLAG_KEYS = ("flagged", "low_confidence")
#: Longest side of embedded thumbnails, in pixels.
THUMB_SIZE = 220
#: Longest side of the screening report's thumbnails (a row holds every task's overlays).
SCREENING_THUMB_SIZE = 150
#: Longest side of the enlarged view a click on a thumbnail opens, in pixels.
LARGE_SIZE = 800
#: Integer outputs count as categories (grades, stages, labels) only within this range.
CATEGORY_INTS = range(0, 10)
#: Numeric outputs drawn as histograms before the rest are folded away.
HISTOGRAMS_SHOWN = 6
#: Output columns per task in the screening table (all outputs stay in the cell's details).
KEY_OUTPUTS = 5
#: Words shortened in the screening table's column names (the full name is the tooltip).
SHORT_WORDS = {"probability": "prob", "fraction": "frac", "classifier": "clf"}

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:.8em 0 .4em}
.meta{color:#666;font-size:.85em;margin-bottom:1em}
.cards{display:flex;flex-wrap:wrap;gap:.8em;margin-bottom:1.2em}
.card{border:1px solid #ddd;border-radius:6px;padding:.6em .9em;min-width:8em}
.card b{display:block;font-size:1.3em}
.card table td{padding:0 .5em 0 0;border:0}
.card .stats{font-size:.75em;color:#555}
.hist-card{font-size:.85em;padding:.4em .6em;min-width:0}.hist-card svg{display:block;margin:.2em 0}
.task-block .cards{gap:.5em;margin-bottom:.4em}.task-block .card{padding:.4em .6em;min-width:0}
.task-block{border-left:3px solid #8ab;padding-left:.8em;margin-bottom:.6em}
.task-block h2{margin-top:0}
svg.hist rect{fill:#5a8fc0}svg.hist line{stroke:#999}
table.data{border-collapse:collapse;font-size:.85em}
table.data th,table.data td{border:1px solid #ddd;padding:.3em .5em;vertical-align:top}
table.data th{background:#f4f4f4;position:sticky;top:0}
table.data thead tr+tr th{top:1.9em}
th.task{background:#e6eef5;text-align:center}
th.sortable{cursor:pointer}th.sortable:after{content:" \\2195";color:#999}
th[data-dir=asc]:after{content:" \\2191";color:#333}
th[data-dir=desc]:after{content:" \\2193";color:#333}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.failed{background:#fff0f0}tr.flagged,tr.ungradable{background:#fffbe6}
td.task-failed{background:#fff0f0}
.err{color:#b00;max-width:28em;display:block}
.note{color:#777}
.figs{display:flex;gap:.3em}
img{display:block;margin-bottom:.2em;border-radius:3px}
img[data-full]{cursor:zoom-in}
figure{display:inline-block;margin:0 1em 1em 0}figcaption{font-size:.8em;color:#555}
.figs figure{margin:0}
details{font-size:.8em}details table td{border:0;padding:0 .4em 0 0}
#lightbox{position:fixed;inset:0;background:rgba(0,0,0,.85);display:none;
 align-items:center;justify-content:center;flex-direction:column;z-index:9;cursor:zoom-out}
#lightbox.open{display:flex}
#lightbox img{max-width:95vw;max-height:90vh}#lightbox div{color:#eee;margin-top:.4em}
"""

_SORT_JS = """
function sortKey(td){var v=td?td.getAttribute("data-value"):null;return v===null||v===""?null:v;}
document.querySelectorAll("th.sortable").forEach(function(th){
 th.addEventListener("click",function(){
  var table=th.closest("table"),body=table.tBodies[0];
  var col=th.hasAttribute("data-col")?+th.getAttribute("data-col"):th.cellIndex;
  var num=th.getAttribute("data-type")==="num",dir=th.dataset.dir==="asc"?-1:1;
  table.querySelectorAll("th.sortable").forEach(function(h){delete h.dataset.dir;});
  th.dataset.dir=dir===1?"asc":"desc";
  var rows=Array.prototype.map.call(body.rows,function(r,i){return [r,i];});
  rows.sort(function(a,b){
   var x=sortKey(a[0].cells[col]),y=sortKey(b[0].cells[col]);
   if(x===null||y===null)return x===y?a[1]-b[1]:(x===null?1:-1);
   var c=num?parseFloat(x)-parseFloat(y)
    :x.localeCompare(y,undefined,{numeric:true,sensitivity:"base"});
   return c?dir*c:a[1]-b[1];});
  rows.forEach(function(r){body.appendChild(r[0]);});});});
var box=document.getElementById("lightbox");
if(box){
 document.querySelectorAll("img[data-full]").forEach(function(im){
  im.addEventListener("click",function(){
   box.querySelector("img").src=im.getAttribute("data-full");
   box.querySelector("div").textContent=im.getAttribute("alt")||"";
   box.classList.add("open");});});
 box.addEventListener("click",function(){box.classList.remove("open");});
 document.addEventListener("keydown",function(e){if(e.key==="Escape")box.classList.remove("open");});
}
document.body.setAttribute("data-ready","1");
"""

_LIGHTBOX = '<div id="lightbox" title="click or Esc to close"><img alt=""><div></div></div>'


def load_records(results_dir: Path, notes: list[str] | None = None) -> list[dict[str, Any]]:
    """The prediction records of an ``eyescan predict`` output folder (``predictions.jsonl``).

    A run still going or killed has the records of the images it finished; a
    last line cut short by a kill is left out (and said in ``notes``).
    """
    path = Path(results_dir) / "predictions.jsonl"
    try:
        records, dropped = read_jsonl(path)
    except OSError as exc:
        raise DataError(f"{path}: cannot read the prediction records ({exc.strerror})") from None
    if dropped and notes is not None:
        notes.append(f"{path}: its last line was cut short (an interrupted run) and is left out")
    return records


def is_screening(records: list[dict[str, Any]]) -> bool:
    """Whether the records are one-per-photo multi-task records (``eyescan.screening/1``)."""
    return any(r.get("schema") == SCREENING_SCHEMA for r in records)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def is_flagged(record: dict[str, Any]) -> bool:
    outputs = _dict(record.get("outputs"))
    return any(bool(outputs.get(key)) for key in FLAG_KEYS)


def _is_category(value: Any) -> bool:
    if isinstance(value, (str, bool)):
        return True
    return isinstance(value, int) and value in CATEGORY_INTS


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def quality_summary(qualities: list[Any]) -> dict[str, Any]:
    """Counts of the quality gate's verdicts; a missing or null ``quality`` is not assessed."""
    gradable = ungradable = 0
    reasons: Counter[str] = Counter()
    for quality in qualities:
        if not isinstance(quality, dict) or not isinstance(quality.get("gradable"), bool):
            continue
        if quality["gradable"]:
            gradable += 1
        else:
            ungradable += 1
            found = quality.get("reasons")
            reasons.update(map(str, found) if isinstance(found, list) and found else ["?"])
    return {
        "assessed": gradable + ungradable,
        "gradable": gradable,
        "ungradable": ungradable,
        "not_assessed": len(qualities) - gradable - ungradable,
        "reasons": dict(reasons.most_common()),
    }


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts for the top of the report, from the types of the output values alone.

    ``images``, ``ok``, ``errors``, ``flagged``, ``abstained``; ``counts``: per
    category key (every record that has it holds a string, a bool or a small
    integer, ``CATEGORY_INTS``: ``grade``, ``label``, ``referable``…) the count
    per value; ``booleans``: per bool output ``[true, present]``; ``numeric``:
    per numeric output (one level of nested dicts as ``key.sub``, lists as their
    length) its finite values, constant columns left out; ``quality``: see
    :func:`quality_summary`.
    """
    values: dict[str, list[Any]] = {}
    rejected: set[str] = set()
    cells = []
    for record in records:
        outputs = _dict(record.get("outputs"))
        cells.append(_cells(outputs))
        for key, value in outputs.items():
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
    columns = scalar_columns(records)
    booleans: dict[str, list[int]] = {}
    numeric: dict[str, list[float]] = {}
    for column in columns:
        present = [c[column] for c in cells if c.get(column) is not None]
        if not present or column in FLAG_KEYS:
            continue
        if all(isinstance(v, bool) for v in present):
            booleans[column] = [sum(present), len(present)]
        elif all(_is_number(v) for v in present):
            finite = [float(v) for v in present if math.isfinite(float(v))]
            if finite and (len(finite) == 1 or len(set(finite)) > 1):
                numeric[column] = finite
    return {
        "images": len(records),
        "ok": sum(bool(r.get("ok")) for r in records),
        "errors": sum(not r.get("ok") for r in records),
        "flagged": sum(is_flagged(r) for r in records),
        "abstained": sum(bool(r.get("abstained")) for r in records),
        "counts": counts,
        "booleans": booleans,
        "numeric": numeric,
        "quality": quality_summary([r.get("quality") for r in records]),
    }


def task_records(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The per-task prediction records of screening records, tasks in first-seen order."""
    found: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        for task, entry in _dict(record.get("tasks")).items():
            found.setdefault(str(task), []).append(_dict(entry))
    return found


def screening_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Photos, ok/failed, the quality gate's counts and :func:`summarize` of every task."""
    return {
        "photos": len(records),
        "ok": sum(bool(r.get("ok")) for r in records),
        "failed": sum(not r.get("ok") for r in records),
        "quality": quality_summary([r.get("quality") for r in records]),
        "tasks": {task: summarize(entries) for task, entries in task_records(records).items()},
    }


def scalar_columns(records: list[dict[str, Any]]) -> list[str]:
    """Output columns in first-seen order: scalars, one level of dicts (``a.b``), list lengths."""
    columns: list[str] = []
    for record in records:
        for key in _cells(_dict(record.get("outputs"))):
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


@dataclass(frozen=True)
class Embedded:
    """An image as ``data:`` URIs: ``thumb`` and ``large`` (None when unreadable: ``problem``)."""

    thumb: str | None
    large: str | None = None
    problem: str | None = None


def _jpeg_uri(image: Any, quality: int) -> str:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def embed_image(
    path: Path, thumb_size: int = THUMB_SIZE, large_size: int | None = LARGE_SIZE
) -> Embedded:
    """A downscaled JPEG thumbnail (and, with ``large_size``, a larger copy) of an image file.

    Never raises: a missing, unreadable, over-the-limit or not-a-file path (a FIFO
    is never opened: :func:`eyescan.imaging.imageio.open_image`) gives an
    :class:`Embedded` without images and the problem in words.
    """
    from eyescan.errors import ImageReadError
    from eyescan.imaging.imageio import open_image

    path = Path(path)
    biggest = max(thumb_size, large_size or 0)
    try:
        with open_image(path) as opened:  # the core's file checks and pixel limit
            opened.draft("RGB", (biggest, biggest))  # fast JPEG decoding at reduced size
            image = opened.convert("RGB")
        image.thumbnail((biggest, biggest))
        large = _jpeg_uri(image, 80) if large_size else None
        image.thumbnail((thumb_size, thumb_size))
        return Embedded(_jpeg_uri(image, 80), large)
    except ImageReadError as exc:  # the message starts with the path, shown beside it
        return Embedded(None, problem=str(exc).removeprefix(f"{path}: "))
    except Exception as exc:  # noqa: BLE001 - a report shows any unreadable image, never crashes
        return Embedded(None, problem=f"unreadable image ({type(exc).__name__})")


def thumbnail_uri(path: Path, size: int = THUMB_SIZE) -> str | None:
    """A downscaled JPEG of an image file as a ``data:`` URI (None when unreadable)."""
    return embed_image(path, size, None).thumb


def overlay_files(record: dict[str, Any]) -> list[tuple[str, str]]:
    """``(name, relative path)`` of the record's PNG overlays (see ``OVERLAY_WORDS``)."""
    found = []
    for name, path in _dict(record.get("files")).items():
        text = f"{name} {Path(str(path)).name}".lower()
        if str(path).lower().endswith(".png") and any(w in text for w in OVERLAY_WORDS):
            found.append((str(name), str(path)))
    return found


def _img(uri: str | None, caption: str, width: int | None = None) -> str:
    if uri is None:
        return f'<span class="err">{html.escape(caption)}: unreadable</span>'
    alt = html.escape(caption, quote=True)
    size = f' width="{width}"' if width else ""
    return f'<figure><img src="{uri}"{size} alt="{alt}"><figcaption>{alt}</figcaption></figure>'


def _picture(path: Path, caption: str, thumb_size: int, large_size: int | None) -> str:
    """A figure of an image file that enlarges on click, or the problem in words."""
    embedded = embed_image(path, thumb_size, large_size)
    alt = html.escape(caption, quote=True)
    if embedded.thumb is None:
        where = html.escape(Path(path).name)
        return f'<span class="err">{alt}: {html.escape(str(embedded.problem))} ({where})</span>'
    full = f' data-full="{embedded.large}" title="click to enlarge"' if embedded.large else ""
    image = f'<img src="{embedded.thumb}"{full} alt="{alt}">'
    return f"<figure>{image}<figcaption>{alt}</figcaption></figure>"


def _sort_value(value: Any) -> str:
    """The ``data-value`` a cell sorts by: a number, a text, or empty (missing, sorted last)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if _is_number(value):
        return repr(float(value)) if math.isfinite(float(value)) else ""
    return "" if value is None else html.escape(str(value), quote=True)


def _value_cell(value: Any, extra: str = "") -> str:
    kind = "num " if _is_number(value) else ""
    cls = f' class="{(kind + extra).strip()}"' if kind or extra else ""
    return f'<td{cls} data-value="{_sort_value(value)}">{html.escape(_text(value))}</td>'


def _interval(interval: Any) -> str:
    """``[lo, hi]`` as text, empty when there is none."""
    if isinstance(interval, (list, tuple)) and len(interval) == 2 and None not in interval:
        return f"[{interval[0]:.3f}, {interval[1]:.3f}]"
    return ""


def _th(label: str, col: int | None, numeric: bool = False, title: str = "") -> str:
    """A header cell; with ``col`` it sorts the table by that body column."""
    tip = f' title="{html.escape(title, quote=True)}"' if title else ""
    if col is None:
        return f"<th{tip}>{html.escape(label)}</th>"
    kind = "num" if numeric else "text"
    return (
        f'<th class="sortable" data-col="{col}" data-type="{kind}"{tip}>{html.escape(label)}</th>'
    )


def _header(columns: list[str], numeric: set[str], fixed: list[str]) -> str:
    """One header row: ``fixed`` columns (sortable unless a picture column) then ``columns``."""
    cells = [
        _th(c, None) if c in ("input", "overlays") else _th(c, i, title="click to sort")
        for i, c in enumerate(fixed)
    ]
    for i, column in enumerate(columns, len(fixed)):
        cells.append(_th(column, i, column in numeric, "click to sort"))
    return "<thead><tr>" + "".join(cells) + "</tr></thead>"


def _numeric(rows: list[dict[str, Any]], columns: list[str]) -> set[str]:
    """Columns whose present values are all numbers (bools excluded)."""
    numeric = set()
    for column in columns:
        present = [r[column] for r in rows if r.get(column) is not None]
        if present and all(_is_number(v) for v in present):
            numeric.add(column)
    return numeric


def _histogram_svg(values: list[float], label: str, bins: int = 10) -> str:
    """A small inline SVG histogram of ``values`` (finite numbers)."""
    width, height = 120, 30
    lo, hi = min(values), max(values)
    counts = [0] * bins
    for v in values:
        counts[bins // 2 if hi == lo else min(int((v - lo) / (hi - lo) * bins), bins - 1)] += 1
    step = width / bins
    top = max(counts)
    bars = "".join(
        f'<rect x="{i * step + 0.5:.1f}" y="{height - n / top * height:.1f}" '
        f'width="{step - 1:.1f}" height="{n / top * height:.1f}"><title>{n}</title></rect>'
        for i, n in enumerate(counts)
        if n
    )
    return (
        f'<svg class="hist" width="{width}" height="{height + 1}" viewBox="0 0 {width} '
        f'{height + 1}" role="img" aria-label="histogram of {html.escape(label, quote=True)}">'
        f'{bars}<line x1="0" y1="{height + 0.5}" x2="{width}" y2="{height + 0.5}"/></svg>'
    )


def _histogram_card(key: str, values: list[float]) -> str:
    stats = (
        f"min {values and min(values):.4g} · median {statistics.median(values):.4g} · "
        f"max {max(values):.4g} (n {len(values)})"
    )
    return (
        f'<div class="card hist-card">{html.escape(key)}{_histogram_svg(values, key)}'
        f'<div class="stats">{stats}</div></div>'
    )


def _quality_card(quality: dict[str, Any]) -> str:
    rows = [
        f"<tr><td>gradable</td><td>{quality['gradable']}</td></tr>",
        f"<tr><td>ungradable</td><td>{quality['ungradable']}</td></tr>",
    ]
    rows += [
        f'<tr><td class="note">· {html.escape(reason)}</td><td>{n}</td></tr>'
        for reason, n in quality["reasons"].items()
    ]
    if quality["not_assessed"]:
        rows.append(f"<tr><td>not assessed</td><td>{quality['not_assessed']}</td></tr>")
    return f'<div class="card quality-card">quality<table>{"".join(rows)}</table></div>'


def _output_cards(summary: dict[str, Any]) -> list[str]:
    """Cards of one task's outputs: booleans ``true / present``, categories, histograms."""
    cards = []
    if summary["booleans"]:
        rows = "".join(
            f"<tr><td>{html.escape(k)}</td><td>{t} / {n}</td></tr>"
            for k, (t, n) in summary["booleans"].items()
        )
        cards.append(f'<div class="card bool-card">true<table>{rows}</table></div>')
    for key, counts in summary["counts"].items():
        if key in summary["booleans"]:
            continue  # shown as "true / present"
        rows = "".join(f"<tr><td>{html.escape(v)}</td><td>{n}</td></tr>" for v, n in counts.items())
        cards.append(f'<div class="card">{html.escape(key)}<table>{rows}</table></div>')
    histograms = [
        _histogram_card(k, v) for k, v in summary["numeric"].items() if k not in summary["counts"]
    ]  # a small integer output (a grade) is counted per value instead
    cards += histograms[:HISTOGRAMS_SHOWN]
    if len(histograms) > HISTOGRAMS_SHOWN:
        more = len(histograms) - HISTOGRAMS_SHOWN
        cards.append(
            f"<details><summary>{more} more distributions</summary>"
            f'<div class="cards">{"".join(histograms[HISTOGRAMS_SHOWN:])}</div></details>'
        )
    return cards


def _summary_html(summary: dict[str, Any]) -> str:
    cards = [
        f'<div class="card">images<b>{summary["images"]}</b></div>',
        f'<div class="card">ok<b>{summary["ok"]}</b></div>',
        f'<div class="card">errors<b>{summary["errors"]}</b></div>',
        f'<div class="card">flagged<b>{summary["flagged"]}</b></div>',
    ]
    if summary["abstained"]:
        cards.append(f'<div class="card">abstained<b>{summary["abstained"]}</b></div>')
    if summary["quality"]["assessed"]:
        cards.append(_quality_card(summary["quality"]))
    cards += _output_cards(summary)
    return '<div class="cards" id="summary">' + "".join(cards) + "</div>"


def _page(title: str, meta: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        f'<h1>{html.escape(title)}</h1><div class="meta">{html.escape(meta)}</div>'
        f"{body}{_LIGHTBOX}<script>{_SORT_JS}</script></body></html>\n"
    )


def _write_page(path: Path, page: str) -> None:
    """Write a page atomically as UTF-8. A file name that is not UTF-8 reaches the records
    as lone surrogates (``\\udcff``), which UTF-8 cannot encode: they are written escaped."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(page.encode("utf-8", "backslashreplace"))


def _input_path(record: dict[str, Any], results_dir: Path) -> Path:
    path = Path(str(record.get("input", "")))
    if path.is_absolute() or path.exists():
        return path
    return results_dir / path


def _quality_cell(quality: Any) -> str:
    if not isinstance(quality, dict) or not isinstance(quality.get("gradable"), bool):
        return '<td data-value=""><span class="note">not assessed</span></td>'
    measures = _dict(quality.get("measures"))
    tip = ", ".join(f"{k} {_text(v)}" for k, v in measures.items() if not isinstance(v, dict))
    title = f' title="{html.escape(tip, quote=True)}"' if tip else ""
    if quality["gradable"]:
        return f'<td data-value="gradable"{title}>gradable</td>'
    reasons = quality.get("reasons")
    why = ", ".join(map(str, reasons)) if isinstance(reasons, list) else ""
    return (
        f'<td data-value="ungradable {html.escape(why, quote=True)}"{title}>'
        f'<span class="err">ungradable</span>{html.escape(why)}</td>'
    )


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        return f"{error.get('code', 'error')}: {error.get('message', '')}"
    return "error" if error is None else str(error)


def _status(record: dict[str, Any]) -> tuple[str, str]:
    """``(sort value, html)`` of a record's outcome: ok, abstained or its error."""
    if not record.get("ok"):
        text = _error_text(record.get("error"))
        return f"failed {text}", f'<span class="err">{html.escape(text)}</span>'
    if record.get("abstained"):
        text = f"abstained: {record['abstained']}"
        return text, f'<span class="note">{html.escape(text)}</span>'
    return "ok", "ok"


def prediction_html(
    records: list[dict[str, Any]],
    results_dir: Path,
    thumb_size: int = THUMB_SIZE,
    large_size: int | None = LARGE_SIZE,
) -> str:
    """The prediction report: summary at the top, then one ``<tr class="image-row">`` per record.

    ``results_dir`` is the ``--out`` folder the records' ``files`` are relative to.
    Screening records (:func:`is_screening`) give :func:`screening_html`.
    """
    if is_screening(records):
        return screening_html(records, results_dir, large_size=large_size)
    results_dir = Path(results_dir)
    summary = summarize(records)
    columns = scalar_columns(records)
    cells = [_cells(_dict(r.get("outputs"))) for r in records]
    numeric = _numeric(cells, columns)
    with_quality = any("quality" in r for r in records)
    fixed = ["image", "input", "overlays"] + (["quality"] if with_quality else [])
    body_rows = []
    for record, row in zip(records, cells):
        classes = ["image-row"]
        if not record.get("ok"):
            classes.append("failed")
        if is_flagged(record):
            classes.append("flagged")
        identity = str(record.get("id", ""))
        images = _picture(_input_path(record, results_dir), "input", thumb_size, large_size)
        overlays = "".join(
            _picture(results_dir / path, name, thumb_size, large_size)
            for name, path in overlay_files(record)
        )
        quality = _quality_cell(record.get("quality")) if with_quality else ""
        value, status = _status(record)
        body_rows.append(
            f'<tr class="{" ".join(classes)}">{_value_cell(identity)}'
            f"<td>{images}</td><td>{overlays}</td>{quality}"
            + "".join(_value_cell(row.get(c)) for c in columns)
            + f'<td data-value="{html.escape(value, quote=True)}">{status}</td></tr>'
        )
    header = _header(columns, numeric, fixed)
    status_th = _th("status", len(fixed) + len(columns), title="click to sort")
    header = header.replace("</tr></thead>", f"{status_th}</tr></thead>")
    first = records[0] if records else {}
    meta = (
        f"task {first.get('task', '?')} · model {first.get('model', '?')} · weights "
        f"{str(first.get('weights_sha256') or '-')[:12]} · {len(records)} images · "
        "click a column header to sort, a picture to enlarge it"
    )
    table = f'<table class="data" id="images">{header}<tbody>{"".join(body_rows)}</tbody></table>'
    return _page("eyescan prediction report", meta, _summary_html(summary) + table)


def write_prediction_report(
    records: list[dict[str, Any]], results_dir: Path, out: Path, thumb_size: int = THUMB_SIZE
) -> Path:
    """Write :func:`prediction_html` to ``out`` atomically; returns ``out``."""
    _write_page(Path(out), prediction_html(records, results_dir, thumb_size))
    return Path(out)


def key_outputs(entries: list[dict[str, Any]], limit: int = KEY_OUTPUTS) -> list[str]:
    """The top-level outputs a screening table shows for a task, by the types of their values.

    Booleans first, then categories (strings, small integers), then fractional
    numbers, then other integers (pixel counts, sizes); outputs with the same
    value in every record (thresholds) are left out when there are two or more.
    """
    values: dict[str, list[Any]] = {}
    for entry in entries:
        for key, value in _dict(entry.get("outputs")).items():
            if key in FLAG_KEYS or not (value is None or isinstance(value, (str, int, float))):
                continue
            values.setdefault(key, []).append(value)

    def rank(key: str) -> int | None:
        present = [v for v in values[key] if v is not None]
        if not present or (len(present) > 1 and len({repr(v) for v in present}) == 1):
            return None
        if all(isinstance(v, bool) for v in present):
            return 0
        if all(_is_category(v) for v in present):
            return 1
        if all(_is_number(v) for v in present):
            return 2 if any(isinstance(v, float) for v in present) else 3
        return 1

    ranked = [(r, i, k) for i, k in enumerate(values) if (r := rank(k)) is not None]
    return [k for _, _, k in sorted(ranked)[:limit]]


def short_name(key: str, task: str) -> str:
    """A column name under its task's header: without the task's prefix, long words shortened."""
    prefix = f"{task}_"
    if key.startswith(prefix) and len(key) > len(prefix):
        key = key[len(prefix) :]
    for word, short in SHORT_WORDS.items():
        key = key.replace(word, short)
    return key


def _all_outputs(outputs: dict[str, Any]) -> str:
    cells = _cells(outputs)
    if not cells:
        return ""
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(_text(v))}</td></tr>"
        for k, v in cells.items()
    )
    return f"<details><summary>all outputs ({len(cells)})</summary><table>{rows}</table></details>"


def _task_cells(
    entry: dict[str, Any] | None,
    keys: list[str],
    results_dir: Path,
    thumb_size: int,
    large_size: int | None,
) -> str:
    """One task's cells of a screening row: its key outputs, then overlays, outcome, details."""
    if entry is None:
        blank = '<td data-value="">–</td>' * len(keys)
        return blank + '<td data-value="not run"><span class="note">not run</span></td>'
    outputs = _dict(entry.get("outputs"))
    failed = not entry.get("ok")
    extra = "task-failed" if failed else ""
    values = "".join(_value_cell(outputs.get(k), extra) for k in keys)
    value, status = _status(entry)
    pictures = "".join(
        _picture(results_dir / path, name, thumb_size, large_size)
        for name, path in overlay_files(entry)
    )
    shown = "" if status == "ok" else status
    cls = ' class="task-failed"' if failed else ""
    return (
        f'{values}<td{cls} data-value="{html.escape(value, quote=True)}">{shown}'
        f'<div class="figs">{pictures}</div>{_all_outputs(outputs)}</td>'
    )


def _photo_status(record: dict[str, Any]) -> str:
    """The status cell of a screening row: ok, the whole-photo error, or "a task failed"."""
    if record.get("ok") and record.get("error") is None:
        return '<td data-value="ok">ok</td>'
    error = record.get("error")
    text = "a task failed" if error is None else _error_text(error)
    value = html.escape(f"failed {text}", quote=True)
    return f'<td data-value="{value}"><span class="err">{html.escape(text)}</span></td>'


def _task_block(task: str, entries: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    first = next((e for e in entries if e.get("model")), {})
    weights = str(first.get("weights_sha256") or "-")[:12]
    counts = [("photos", summary["images"]), ("ok", summary["ok"]), ("failed", summary["errors"])]
    counts += [(k, summary[k]) for k in ("abstained", "flagged") if summary[k]]
    rows = "".join(f"<tr><td>{k}</td><td>{n}</td></tr>" for k, n in counts)
    cards = [f'<div class="card counts-card"><table>{rows}</table></div>', *_output_cards(summary)]
    about = f"model {first.get('model', '?')} · weights {weights}"
    return (
        f'<div class="task-block" data-task="{html.escape(task, quote=True)}">'
        f'<h2>{html.escape(task)} <span class="meta">{html.escape(about)}</span></h2>'
        f'<div class="cards">{"".join(cards)}</div></div>'
    )


def screening_html(
    records: list[dict[str, Any]],
    results_dir: Path,
    thumb_size: int = SCREENING_THUMB_SIZE,
    large_size: int | None = LARGE_SIZE,
) -> str:
    """The multi-task report of ``eyescan.screening/1`` records (one per photo).

    At the top the photos, ok/failed and the quality gate's counts, then one
    summary block per task (:func:`summarize` of its records); then one
    ``<tr class="image-row">`` per photo: its thumbnail, quality, and per task
    its key outputs (:func:`key_outputs`) and overlays, or that task's error.
    ``results_dir`` is the ``--out`` folder every task's ``files`` are relative to.
    """
    results_dir = Path(results_dir)
    summary = screening_summary(records)
    per_task = task_records(records)
    keys = {task: key_outputs(entries) for task, entries in per_task.items()}
    top = [
        f'<div class="card">photos<b>{summary["photos"]}</b></div>',
        f'<div class="card">ok<b>{summary["ok"]}</b></div>',
        f'<div class="card">failed<b>{summary["failed"]}</b></div>',
        _quality_card(summary["quality"]),
    ]
    blocks = "".join(_task_block(task, per_task[task], summary["tasks"][task]) for task in per_task)
    head1 = [_th("photo", 0, title="click to sort"), '<th rowspan="2">input</th>']
    head1[0] = head1[0].replace("<th ", '<th rowspan="2" ', 1)
    head1.append(_th("quality", 2, title="click to sort").replace("<th ", '<th rowspan="2" ', 1))
    head2 = []
    col = 3
    for task, columns in keys.items():
        head1.append(f'<th class="task" colspan="{len(columns) + 1}">{html.escape(task)}</th>')
        numeric = _numeric([_dict(e.get("outputs")) for e in per_task[task]], columns)
        for key in columns:
            head2.append(_th(short_name(key, task), col, key in numeric, f"{task}.{key}"))
            col += 1
        head2.append(_th("overlays", col, title=f"{task}: outcome (click to sort)"))
        col += 1
    status_th = _th("status", col, title="click to sort").replace("<th ", '<th rowspan="2" ', 1)
    head1.append(status_th)
    header = f"<thead><tr>{''.join(head1)}</tr><tr>{''.join(head2)}</tr></thead>"
    rows = []
    for record in records:
        tasks = _dict(record.get("tasks"))
        quality = record.get("quality")
        classes = ["image-row"]
        if not record.get("ok"):
            classes.append("failed")
        if isinstance(quality, dict) and quality.get("gradable") is False:
            classes.append("ungradable")
        identity = str(record.get("id", ""))
        photo = _picture(_input_path(record, results_dir), "input", thumb_size, large_size)
        cells = "".join(
            _task_cells(
                _dict(tasks[task]) if task in tasks else None,
                keys[task],
                results_dir,
                thumb_size,
                large_size,
            )
            for task in per_task
        )
        status = _photo_status(record)
        rows.append(
            f'<tr class="{" ".join(classes)}">{_value_cell(identity)}<td>{photo}</td>'
            f"{_quality_cell(quality)}{cells}{status}</tr>"
        )
    meta = (
        f"screening · tasks {', '.join(per_task) or '-'} · {len(records)} photos · "
        "click a column header to sort, a picture to enlarge it"
    )
    table = f'<table class="data" id="images">{header}<tbody>{"".join(rows)}</tbody></table>'
    body = f'<div id="summary"><div class="cards">{"".join(top)}</div>{blocks}</div>{table}'
    return _page("eyescan screening report", meta, body)


def write_screening_report(records: list[dict[str, Any]], results_dir: Path, path: Path) -> Path:
    """Write :func:`screening_html` to ``path`` atomically; returns ``path``."""
    _write_page(Path(path), screening_html(records, results_dir))
    return Path(path)


def write_report(records: list[dict[str, Any]], results_dir: Path, path: Path) -> Path:
    """The screening report of screening records, else the prediction report; returns ``path``."""
    if is_screening(records):
        return write_screening_report(records, results_dir, path)
    return write_prediction_report(records, results_dir, path)


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
    _write_page(Path(out), evaluation_html(header, result, figures))
    return Path(out)
