"""``eyescan predict TASK1,TASK2,... PHOTOS``: several tasks in one run (screening).

Each task writes under ``--out/<task>/`` (its files, a record per photo and
its own ``predictions.jsonl``); ``--out/predictions.jsonl`` holds one
``eyescan.screening/1`` record per photo with every task's record. The table
on stdout shows one row per photo with each task's headline outputs
(``Task.summary_outputs``), short enough for an 80-column terminal.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from eyescan.cli.common import (
    Backend,
    ExitCode,
    companion_notes,
    err,
    load_backend,
    load_providers,
    one_line,
    out,
    print_json,
    progress_bar,
    warn_synthetic,
)
from eyescan.cli.outputs import kept_on_failure, open_log, write_report_file

if TYPE_CHECKING:
    from rich.table import Table

#: Short names of the quality gate's reasons, for the table.
REASON_WORDS = {
    "no_field_of_view": "no FOV",
    "small_field_of_view": "small FOV",
    "blurred": "blur",
    "underexposed": "dark",
    "overexposed": "bright",
    "uneven_illumination": "uneven",
}


def predict_many(
    reg: Any,
    tasks: list[Any],
    options: dict[str, dict[str, Any]],
    items: list[Any],
    out_dir: Path,
    models: dict[str, str],
    weights: dict[str, str],
    backend: Backend,
    quantize: bool,
    reader: Any,
    json_out: bool,
    workers: int | None,
    resume: bool,
    debug: bool,
    skip_ungradable: bool,
    report: Path | None,
) -> None:
    """Run every task on every photo; print the table (or JSON Lines) and write the records."""
    from eyescan.inference import predicting, providers, screening

    by_name = {t.name: t for t in tasks}
    order = providers.run_order(reg.tasks, list(by_name))
    warned: set[str] = set()
    runs = []
    for name in order:
        task = by_name[name].configured(
            {k: v for k, v in options[name].items() if k not in ("fov", "skip_ungradable")}
        )
        path = weights.get(name)
        loaded = load_backend(
            reg, task, models.get(name), None if path is None else Path(path), backend, quantize
        )
        predicting.prepare(task, loaded)
        warn_synthetic(loaded, warned)
        uses = {
            need: provider
            for need, provider in providers.resolve(reg.tasks, task, order).items()
            if provider in by_name
        }
        runs.append(
            screening.TaskRun(
                task,
                loaded,
                out_dir / name,
                uses=uses,
                providers=load_providers(reg, task, order, backend, warned),
            )
        )
    records = []
    started = time.perf_counter()
    records_file = out_dir / "predictions.jsonl"
    logs = {step.name: open_log(out_dir / step.name / "predictions.jsonl", resume) for step in runs}
    log = open_log(records_file, resume)
    with ExitStack() as stack:
        for one in (*logs.values(), log):
            stack.enter_context(one)
        stack.enter_context(kept_on_failure(log, records))
        progress = stack.enter_context(progress_bar(len(items)))
        bar = progress.add_task(", ".join(order), total=len(items))
        for record in screening.run(
            reg, runs, items, workers, resume, debug, reader, skip_ungradable, options
        ):
            for name, part in record["tasks"].items():
                logs[name].add(_unprefixed(part, name))
            log.add(record)  # first: a full disk here is not counted as kept
            records.append(record)
            for part in record["tasks"].values():
                companion_notes(part, warned)
            if json_out:
                print_json(record)
            else:
                _print_errors(record)
            progress.advance(bar)
        for step in runs:
            per_task = [r["tasks"][step.name] for r in records if step.name in r["tasks"]]
            logs[step.name].finish([_unprefixed(r, step.name) for r in per_task])
        log.finish(records)
    if not json_out:
        out.print(screening_table(records, order, {t.name: t for t in tasks}))
        ok = sum(r["ok"] for r in records)
        err.print(
            f"{ok}/{len(records)} photos, every task ok, in {time.perf_counter() - started:.1f} s;"
            f" outputs in {out_dir}/<task>/ (records: {records_file})",
            highlight=False,
            soft_wrap=True,
        )
    if report is not None:
        from eyescan.reports.report_html import write_screening_report

        written = write_report_file(write_screening_report, records, out_dir, report)
        err.print(f"report: {written}", highlight=False, soft_wrap=True)
    failed = sum(not r["ok"] for r in records)
    if failed:
        err.print(f"[yellow]{failed} of {len(records)} photos had a failing task[/]")
        raise typer.Exit(ExitCode.FAILED)


def _unprefixed(record: dict[str, Any], name: str) -> dict[str, Any]:
    """A task record as its own folder sees it (file paths relative to ``--out/<task>``)."""
    prefix = f"{name}/"
    files = {k: v[len(prefix) :] if v.startswith(prefix) else v for k, v in record["files"].items()}
    return {**record, "files": files}


def _print_errors(record: dict[str, Any]) -> None:
    messages = [record["error"]["message"]] if record.get("error") else []
    if not messages:
        messages = [
            f"{name}: {r['error']['message']}" for name, r in record["tasks"].items() if not r["ok"]
        ]
    for message in messages:
        err.print(f"[red]error:[/] {one_line(message)}", highlight=False, soft_wrap=True)


def headline(task: Any, outputs: dict[str, Any]) -> dict[str, str]:
    """A task's headline outputs for the table: ``{short name: text}``."""
    chosen = dict(getattr(task, "summary_outputs", {}) or {})
    if not chosen:  # a task that names none: its first two scalar outputs
        keys = [k for k, v in outputs.items() if isinstance(v, (bool, int, float, str))][:2]
        chosen = {k: k[:10] for k in keys}
    return {label: _text(outputs.get(key)) for key, label in chosen.items()}


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1 else f"{value:.1f}"
    return str(value)


def quality_text(quality: dict[str, Any] | None) -> str:
    if not quality:
        return ""
    if quality.get("gradable"):
        return "ok"
    return ",".join(REASON_WORDS.get(r, r) for r in quality.get("reasons", [])) or "ungradable"


def screening_table(
    records: list[dict[str, Any]], order: list[str], tasks: dict[str, Any]
) -> Table:
    """One row per photo: its quality, then each task's headline outputs (or its error code)."""
    from rich.table import Table

    shown = 50
    columns: list[tuple[str, str]] = []  # (task, short name)
    for record in records:
        for name in order:
            part = record["tasks"].get(name)
            if part and part["ok"]:
                for label in headline(tasks[name], part["outputs"]):
                    if (name, label) not in columns:
                        columns.append((name, label))
    table = Table(pad_edge=False, box=None, header_style="bold")
    table.add_column("photo", overflow="fold", min_width=12)
    table.add_column("quality", overflow="fold")
    for _, label in columns:
        table.add_column(label, justify="right", no_wrap=True)
    if len(records) > shown:
        table.caption = f"first {shown} of {len(records)} photos; all in predictions.jsonl"
    for record in records[:shown]:
        cells = []
        for name, label in columns:
            part = record["tasks"].get(name)
            if part is None:
                cells.append("")
            elif not part["ok"]:
                cells.append(f"[red]{part['error']['code']}[/]")
            elif part.get("abstained"):
                cells.append("[dim]skip[/]")
            else:
                cells.append(headline(tasks[name], part["outputs"]).get(label, ""))
        status = quality_text(record.get("quality"))
        if record.get("error"):
            status = f"[red]{record['error']['code']}[/]"
        table.add_row(one_line(record["id"]), status, *cells)
    return table
