"""``eyescan merge`` (join sharded predictions) and ``eyescan report`` (HTML from records)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from eyescan.cli.common import (
    DebugOpt,
    ExitCode,
    JsonOpt,
    err,
    handle_errors,
    note,
    out,
    print_json,
)
from eyescan.cli.outputs import hold_out


def print_predictions(
    records: list[dict[str, Any]], out_dir: Path, seconds: float, records_file: Path | None = None
) -> None:
    """A table of the first records' scalar outputs on stdout; the totals on stderr."""
    from rich.table import Table

    keys: list[str] = []
    for r in records:
        for k, v in r["outputs"].items():
            if k not in keys and isinstance(v, (int, float, str, bool)):
                keys.append(k)
    keys = keys[:6]
    table = Table("input", *keys, "status")
    shown = 50
    if len(records) > shown:
        table.caption = f"first {shown} of {len(records)} inputs; all in predictions.jsonl"
    for r in records[:shown]:
        cells = []
        for k in keys:
            v = r["outputs"].get(k, "")
            cells.append(f"{v:.4f}" if isinstance(v, float) else str(v))
        table.add_row(r["id"], *cells, "ok" if r["ok"] else f"[red]{r['error']['code']}[/]")
    out.print(table)
    ok = sum(r["ok"] for r in records)
    err.print(
        f"{ok}/{len(records)} images in {seconds:.1f} s; outputs in {out_dir}/ "
        f"(records: {records_file or out_dir / 'predictions.jsonl'})",
        highlight=False,
    )


@handle_errors
def merge(
    dirs: Annotated[
        list[Path], typer.Argument(help="Output folders of 'eyescan predict --shard K/N' runs.")
    ],
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Merged output folder (default: the first folder)."),
    ] = None,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Join sharded predictions into one predictions.jsonl, in unsharded input order."""
    from eyescan.inference import predicting, sharding
    from eyescan.inference.journal import output_error

    missing = [str(d) for d in dirs if not d.is_dir()]
    if missing:
        err.print(f"[red]error:[/] folder not found: {', '.join(missing)}", highlight=False)
        raise typer.Exit(ExitCode.USAGE)
    target = out_dir or dirs[0]
    started = time.perf_counter()
    with hold_out(target):  # no predict or merge writes there meanwhile
        try:
            merged = sharding.merge(dirs, target)
            predicting.write_jsonl(target / "predictions.jsonl", merged.records)
        except OSError as exc:
            raise output_error(exc) from None
    if json_out:
        for record in merged.records:
            print_json(record)
    else:
        print_predictions(merged.records, target, time.perf_counter() - started)
        err.print(f"merged {merged.shards} shards", highlight=False)
    failed = sum(not r["ok"] for r in merged.records)
    if failed:
        err.print(f"[yellow]{failed} of {len(merged.records)} inputs failed[/]")
        raise typer.Exit(ExitCode.FAILED)


@handle_errors
def report_command(
    results: Annotated[Path, typer.Argument(help="An 'eyescan predict' output folder.")],
    out_file: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="HTML file to write (default: RESULTS/report.html)."),
    ] = None,
    debug: DebugOpt = False,
) -> None:
    """Write a self-contained HTML report from a folder's predictions.jsonl."""
    from eyescan.reports.report_html import is_screening, load_records, write_report

    notes: list[str] = []
    records = load_records(results, notes)
    for message in notes:
        note(message)
    written = write_report(records, results, out_file or results / "report.html")
    kind = "screening report" if is_screening(records) else "report"
    err.print(f"{kind}: {written} ({len(records)} images)", highlight=False, soft_wrap=True)
