"""``eyescan evaluate TASK DATA``: metrics with 95 % intervals, per image and pooled.

``--update-card`` is done here, after the task's evaluate hook returns: the
summary goes into the weights' model card (``metrics`` and ``evaluation``).
It needs ``--weights``: the card shipped inside a plugin is never rewritten
unless its file is named explicitly.

``--out FILE`` keeps the result: ``FILE`` as JSON Lines (the summary record
first, then one record per image, as ``--json`` prints them) and ``FILE`` with
suffix ``.csv`` beside it (one row per image), both written atomically.
"""

from __future__ import annotations

import sys
import time
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from eyescan.cli.common import (
    AnnotatorOpt,
    ColumnsOpt,
    DebugOpt,
    HoldoutOpt,
    HoldoutSeedOpt,
    JsonOpt,
    ModelOpt,
    ReaderOpt,
    TaskArg,
    WeightsOpt,
    data_options,
    err,
    error,
    handle_errors,
    one_line,
    out,
    print_json,
    registry,
    warn_synthetic,
)

if TYPE_CHECKING:
    from rich.table import Table

#: Summary entries shown apart from the metric table.
NOT_METRICS = ("ci95", "ci_method", "data_split")


class Split(str, Enum):
    train = "train"
    val = "val"
    test = "test"


@handle_errors
def evaluate(
    task: TaskArg,
    data: Annotated[Path, typer.Argument(help="Data set folder or manifest with ground truth.")],
    weights: WeightsOpt = None,
    model: ModelOpt = None,
    split: Annotated[
        Split, typer.Option(help="Split to evaluate (data without splits: see --holdout).")
    ] = Split.test,
    reader: ReaderOpt = None,
    columns: ColumnsOpt = None,
    holdout: HoldoutOpt = None,
    holdout_seed: HoldoutSeedOpt = None,
    annotator: AnnotatorOpt = None,
    update_card: Annotated[
        bool,
        typer.Option(help="Record the metrics in the model card of --weights (needs --weights)."),
    ] = False,
    plots: Annotated[
        Path | None,
        typer.Option("--plots", help="Write figures (PNG) and DIR/index.html to this folder."),
    ] = None,
    out_file: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Also write the summary and per-image records to this JSON Lines file, "
            "and the per-image rows to FILE.csv beside it.",
        ),
    ] = None,
    cv: Annotated[
        str | None,
        typer.Option(
            "--cv",
            help="Cross-validate instead: 'leave-one-patient-out' or a number of folds K "
            "(grouped by patient); each fold trains with --config/--model into --cv-out.",
        ),
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="--cv: the JSON training recipe of every fold.")
    ] = None,
    cv_out: Annotated[
        Path, typer.Option("--cv-out", help="--cv: folder of the folds' models (replaced).")
    ] = Path("runs/cv"),
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Evaluate a model on held-out data (metrics per image and pooled, with 95 % CIs)."""
    from eyescan.models.loading import load
    from eyescan.reports.records import EVALUATION_SCHEMA

    if cv is not None:
        if update_card or plots is not None or weights is not None:
            raise error(
                "--cv trains its own models: --weights, --update-card and --plots do not apply"
            )
        picked = data_options(columns, holdout, holdout_seed, annotator)
        return _cross_validate(
            task, data, cv, config, cv_out, model, reader, picked, out_file, json_out
        )

    if update_card and weights is None:
        raise error(
            "--update-card needs --weights FILE: the card shipped with the task is not "
            "rewritten unless its weights file is named explicitly"
        )
    if update_card and Path(weights).suffix != ".safetensors":
        raise error(f"--update-card: {weights} has no model card (only .safetensors weights do)")
    if out_file is not None and Path(out_file).suffix.lower() == ".csv":
        raise error(f"--out {out_file}: name the JSON Lines file (the CSV goes beside it)")
    picked = data_options(columns, holdout, holdout_seed, annotator)
    reg = registry()
    task_obj = reg.task(task)
    loaded = load(reg, task, model, weights)
    with err.status(f"evaluating {task}/{loaded.name} on {data}"):
        result = reg.hook.evaluate(
            task=task_obj,
            model=loaded,
            data=data,
            options={"split": split.value, "reader": reader, **picked},
        )
    warn_synthetic(loaded)  # after the hook: it may have loaded companions
    summary = result["summary"]
    base = {
        "schema": EVALUATION_SCHEMA,
        "task": task,
        "model": loaded.name,
        "weights_sha256": loaded.sha256,
    }
    _describe_split(summary.get("data_split"))
    if update_card:
        _update_card(loaded.weights, summary, data, split.value)
    if plots is not None:
        _write_plots(plots, {**base, "data": str(data), "split": split.value}, result)
    summary_record = {**base, "kind": "summary", **summary, **loaded.provenance()}
    _emit(base, result["images"], summary_record, out_file, json_out, metric_table(summary))


def _emit(
    base: dict[str, Any],
    images: list[dict[str, Any]],
    summary_record: dict[str, Any],
    out_file: Path | None,
    json_out: bool,
    table: Any,
) -> None:
    """The records to ``--out`` (JSON Lines + CSV) and to stdout (``--json``), else ``table``."""
    images = [{**base, "kind": "image", **image} for image in images]
    if out_file is not None:
        csv_file = write_evaluation(out_file, summary_record, images)
        err.print(f"wrote {out_file} and {csv_file}", highlight=False, soft_wrap=True)
    if json_out:
        for image in images:
            print_json(image)
        print_json(summary_record)
        return
    out.print(table)


def _cross_validate(
    task: str,
    data: Path,
    cv: str,
    config: Path | None,
    cv_out: Path,
    model: str | None,
    reader: str | None,
    picked: dict[str, Any],
    out_file: Path | None,
    json_out: bool,
) -> None:
    """``evaluate --cv``: train and score every patient-grouped fold (``crossval``)."""
    from eyescan.cli.common import read_config
    from eyescan.data.splits import LEAVE_ONE_OUT
    from eyescan.evaluation import crossval
    from eyescan.reports.records import EVALUATION_SCHEMA

    scheme: str | int
    if cv in (LEAVE_ONE_OUT, "lopo", "loo"):
        scheme = LEAVE_ONE_OUT
    elif cv.isdigit() and int(cv) >= 2:
        scheme = int(cv)
    else:
        raise error(f"--cv {cv!r}: give {LEAVE_ONE_OUT} or a number of folds (2 or more)")
    if picked.get("holdout") not in (None, False):
        raise error("--cv makes its own folds: --holdout does not apply")
    options = {
        "reader": reader,
        **picked,
        "model": model,
        "config": read_config(config),
        "command": "eyescan " + " ".join(sys.argv[1:]),
    }

    def on_fold(row: dict[str, Any]) -> None:
        shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
        err.print(one_line(str(shown)), highlight=False, soft_wrap=True)

    result = crossval.cross_validate(registry(), task, data, options, scheme, cv_out, on_fold)
    summary = result["summary"]
    if summary.get("warning"):
        err.print(f"[yellow]warning:[/] {summary['warning']}", highlight=False, soft_wrap=True)
    base = {"schema": EVALUATION_SCHEMA, "task": task, "model": model, "data": str(data)}
    summary_record = {**base, "kind": "summary", **summary}
    _emit(base, result["images"], summary_record, out_file, json_out, fold_table(summary))


def fold_table(summary: dict[str, Any]) -> Table:
    """A row per metric: its value in each fold (up to 8 folds shown), then mean ± sd."""
    from rich.table import Table

    folds = summary["per_fold"]
    shown = folds if len(folds) <= 8 else []
    table = Table("metric", *(f"fold {f['fold']}" for f in shown), "mean ± sd")

    def cell(value: Any) -> str:
        if value is None or (isinstance(value, float) and value != value):  # null or NaN
            return "—"
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    table.add_row("patients", *(", ".join(f["test_patients"]) for f in shown), "")
    for metric, (mean, sd) in summary["mean_sd"].items():
        spread = "" if sd is None else f" ± {sd:.4f}"
        table.add_row(metric, *(cell(f.get(metric)) for f in shown), cell(mean) + spread)
    table.caption = f"{summary['cv']}, {summary['patients']} patients, {summary['images']} images"
    return table


def csv_path(path: Path) -> Path:
    """Where ``--out FILE`` puts its CSV: ``FILE`` with suffix ``.csv``."""
    return Path(path).with_suffix(".csv")


def _csv_cell(value: Any) -> str:
    """A CSV cell: text as is, null empty, numbers, booleans and nested values as JSON."""
    import json

    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def write_evaluation(path: Path, summary: dict[str, Any], images: list[dict[str, Any]]) -> Path:
    """Write ``path`` (JSON Lines: the summary, then the images) and its CSV; returns the CSV.

    The CSV has one row per image; its columns are the union of the image records'
    keys in order of first appearance. Both files are written atomically.
    """
    import csv
    import io
    import json

    from eyescan.imaging.imageio import write_text
    from eyescan.reports.records import dumps

    lines = [dumps(summary)] + [dumps(image) for image in images]
    rows = [json.loads(line) for line in lines[1:]]  # JSON-safe values (NaN -> null)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_csv_cell(row.get(key)) for key in columns])
    table = csv_path(path)
    write_text(Path(path), "".join(line + "\n" for line in lines))
    write_text(table, buffer.getvalue())
    return table


def with_interval(value: Any, interval: Any) -> str:
    """``0.9794 [0.975, 0.983]``: a metric and its 95 % interval (when there is one)."""
    text = f"{value:.4f}" if isinstance(value, float) else str(value)
    if isinstance(interval, (list, tuple)) and len(interval) == 2 and None not in interval:
        text += f" [{interval[0]:.3f}, {interval[1]:.3f}]"
    return text


def metric_table(summary: dict[str, Any]) -> Table:
    """The summary as a table, each metric with its interval from ``summary["ci95"]``."""
    from rich.table import Table

    intervals = summary.get("ci95") or {}
    table = Table("metric", "value [95 % CI]" if intervals else "value")
    for key, value in summary.items():
        if key not in NOT_METRICS:
            table.add_row(key, with_interval(value, intervals.get(key)))
    if summary.get("ci_method"):
        table.caption = f"95 % CI: {summary['ci_method']}"
    return table


def _describe_split(info: Any) -> None:
    """One stderr line: which images were scored, and by which rule (then the data's notes)."""
    if not isinstance(info, dict):
        return
    parts = [f"{info.get('split')} split: {info.get('count')} images"]
    if info.get("rule"):
        parts.append(str(info["rule"]))
    if info.get("ids_sha256"):
        parts.append(f"ids sha256 {str(info['ids_sha256'])[:12]}…")
    err.print("data: " + "; ".join(parts), highlight=False, soft_wrap=True)
    for note in info.get("notes") or ():  # e.g. byte-identical images with different labels
        err.print(f"[yellow]warning:[/] {one_line(note)}", highlight=False, soft_wrap=True)


def _update_card(weights: Path, summary: dict[str, Any], data: Path, split: str) -> None:
    """Write the evaluation into the card of ``weights`` (the weights file is not touched)."""
    from eyescan.models.weights import card_path, read_card, update_card

    evaluation = {
        "data": str(data),
        "split": split,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "eyescan " + " ".join(sys.argv[1:]),
        "summary": summary,
    }
    scalars = {k: v for k, v in summary.items() if isinstance(v, (int, float, str, bool))}
    # one entry per data set and split, so a card can carry every set it was measured on
    evaluations = dict(read_card(weights).get("evaluations") or {})
    evaluations[f"{Path(data).name}/{split}"] = {**scalars, "ci95": summary.get("ci95")}
    update_card(weights, metrics=scalars, evaluation=evaluation, evaluations=evaluations)
    err.print(f"updated the model card {card_path(weights)}", highlight=False, soft_wrap=True)


def _write_plots(folder: Path, header: dict[str, Any], result: dict[str, Any]) -> None:
    from eyescan.reports import plots as figures
    from eyescan.reports.report_html import write_evaluation_report

    files = figures.write_plots(result, folder)
    header = {k: v for k, v in header.items() if k != "schema"}
    page = write_evaluation_report(folder / "index.html", header, result, files)
    names = ", ".join(p.name for p in files.values()) or "no figures (no curves or scores)"
    err.print(f"plots: {names} in {folder}/; report: {page}", highlight=False, soft_wrap=True)


__all__ = ["csv_path", "evaluate", "metric_table", "with_interval", "write_evaluation"]
