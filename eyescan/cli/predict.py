"""``eyescan predict TASK INPUTS``: one record per image, output files under ``--out``.

Besides the core options, a task declares its own flags
(``Task.predict_options``: ``--NAME`` / ``--no-NAME``); ``eyescan predict TASK
--help`` lists them. They reach the task on a per-run copy
(``task.configured(options)``, read as ``self.options.get(NAME)``); the
registered task is never changed.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from eyescan.cli.common import (
    Backend,
    BackendOpt,
    BatchOpt,
    DebugOpt,
    ExitCode,
    JsonOpt,
    ModelOpt,
    QuantizeOpt,
    TaskArg,
    WeightsOpt,
    companion_notes,
    err,
    error,
    handle_errors,
    is_debug,
    load_backend,
    one_line,
    print_json,
    registry,
    warn_synthetic,
)
from eyescan.cli.results import print_predictions

_TASK = "eyescan.task"
_FLAGS = "eyescan.task_flags"


def flag_name(name: str) -> str:
    """The command-line spelling of a task option: ``--save_skeleton`` -> ``--save-skeleton``."""
    return "--" + name.replace("_", "-")


class PredictCommand(TyperCommand):
    """``predict`` with the task's own flags: set aside before parsing, listed in ``--help``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        params = self.get_params(ctx)
        known = {o for p in params for o in (*p.opts, *p.secondary_opts)}
        valued = {
            o
            for p in params
            if p.param_type_name == "option" and not p.is_flag and not p.count
            for o in p.opts
        }
        rest: list[str] = []
        flags: list[str] = []
        task = None
        tokens = iter(args)
        for token in tokens:
            if token == "--":
                rest += [token, *tokens]
                break
            if token.startswith("--") and token.split("=", 1)[0] not in known:
                flags.append(token)
                continue
            rest.append(token)
            if token in valued:
                value = next(tokens, None)  # missing: click says so
                if value is not None:
                    rest.append(value)
            elif not token.startswith("-") and task is None:
                task = token
        ctx.meta[_TASK], ctx.meta[_FLAGS] = task, flags
        return super().parse_args(ctx, rest)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        super().format_help(ctx, formatter)
        name = ctx.meta.get(_TASK)
        if name is None:
            formatter.write_paragraph()
            formatter.write_text("Task options: see 'eyescan predict TASK --help'.")
            return
        task = registry().tasks.get(name)
        if task is None:
            formatter.write_paragraph()
            formatter.write_text(f"Unknown task {name!r} (see 'eyescan tasks').")
            return
        with formatter.section(f"{name} options"):
            rows = [
                (f"{flag_name(o.name)} / --no-{flag_name(o.name)[2:]}", _option_help(o))
                for o in task.predict_options
            ]
            if rows:
                formatter.write_dl(rows)
            else:
                formatter.write_text(f"task {name!r} has no options of its own")


def _option_help(option: Any) -> str:
    return f"{option.help} [default: {'on' if option.default else 'off'}]"


def task_options(task: Any, flags: list[str]) -> dict[str, bool]:
    """The values of the task's declared flags; an unknown flag is a usage error (exit 2)."""
    declared = {flag_name(o.name): o for o in task.predict_options}
    values = {o.name: o.default for o in task.predict_options}
    for flag in flags:
        spelled, value = flag, True
        if spelled not in declared and spelled.startswith("--no-"):
            spelled, value = "--" + spelled[5:], False
        option = declared.get(spelled)
        if option is None:
            known = ", ".join(declared) or "none"
            raise error(
                f"no such option: {flag} (options of task {task.name!r}: {known}; "
                f"see 'eyescan predict {task.name} --help')"
            )
        values[option.name] = value
    return values


@handle_errors
def predict(
    ctx: typer.Context,
    task: TaskArg,
    inputs: Annotated[list[Path], typer.Argument(help="Image files or folders (recursive).")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path(
        "eyescan-out"
    ),
    weights: WeightsOpt = None,
    model: ModelOpt = None,
    json_out: JsonOpt = False,
    batch_size: BatchOpt = 1,
    workers: Annotated[int, typer.Option(min=1, help="Threads decoding images.")] = 2,
    resume: Annotated[bool, typer.Option(help="Skip inputs whose outputs are complete.")] = False,
    shard: Annotated[
        str | None,
        typer.Option(help="Only shard K of N of the inputs (e.g. 2/4); join with 'eyescan merge'."),
    ] = None,
    backend: BackendOpt = Backend.torch,
    quantize: QuantizeOpt = False,
    report: Annotated[
        Path | None,
        typer.Option("--report", help="Also write a self-contained HTML report to this file."),
    ] = None,
    explain: Annotated[
        bool,
        typer.Option(help="Explanation maps (Grad-CAM) from tasks that offer them."),
    ] = False,
    debug: DebugOpt = False,
) -> None:
    """Analyse images: one record per image, output files under --out.

    A task's own flags are listed by 'eyescan predict TASK --help'.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from eyescan.imaging.imageio import iter_images
    from eyescan.inference import predicting, sharding

    reg = registry()
    registered = reg.task(task)
    flags = task_options(registered, ctx.meta.get(_FLAGS, []))
    task_obj = registered.configured({"explain": explain, **flags})
    missing = [str(p) for p in inputs if not os.path.lexists(p)]
    if missing:
        raise error(f"input not found: {', '.join(missing)}")
    items = predicting.safe_stems(list(iter_images(inputs, exclude=out_dir)))
    if not items:
        raise error(
            "no images found in the inputs (extensions: jpg, jpeg, png, tif, tiff, gif, bmp, ppm)"
        )
    part, stems = _shard_option(shard), [item.stem for item in items]
    if part is not None:  # stems were assigned on the full list: names match unsharded runs
        items = [items[i] for i in sharding.positions(len(items), part)]
    loaded = load_backend(reg, task_obj, model, weights, backend, quantize, items)
    predicting.prepare(task_obj, loaded)  # companions loaded: the note names them
    warned: set[str] = set()
    warn_synthetic(loaded, warned)
    records = []
    started = time.perf_counter()
    with Progress(
        "{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=len(items) < 2,
    ) as progress:
        bar = progress.add_task(f"{task} ({loaded.name})", total=len(items))
        for record in predicting.run(
            reg, task_obj, loaded, items, out_dir, batch_size, workers, resume, is_debug(debug)
        ):
            records.append(record)
            companion_notes(record, warned)  # a companion the task loaded during the run
            if json_out:
                print_json(record)
            elif not record["ok"]:
                message = one_line(record["error"]["message"])
                err.print(f"[red]error:[/] {message}", highlight=False, soft_wrap=True)
            if not record["ok"] and "traceback" in record["error"]:  # --debug
                err.print(record["error"]["traceback"], markup=False, highlight=False)
            progress.advance(bar)
    records_file = out_dir / "predictions.jsonl"
    if part is not None:
        records_file = sharding.records_path(out_dir, part)
    predicting.write_jsonl(records_file, records)
    if part is not None:
        sharding.write_manifest(out_dir, part, stems)
    failed = sum(not r["ok"] for r in records)
    if not json_out:
        print_predictions(records, out_dir, time.perf_counter() - started, records_file)
    if report is not None:
        from eyescan.reports.report_html import write_prediction_report

        written = write_prediction_report(records, out_dir, report)
        err.print(f"report: {written}", highlight=False, soft_wrap=True)
    if failed:
        err.print(f"[yellow]{failed} of {len(records)} inputs failed[/]")
        raise typer.Exit(ExitCode.FAILED)


def _shard_option(text: str | None) -> Any:
    if text is None:
        return None
    from eyescan.inference.sharding import parse_shard

    try:
        return parse_shard(text)
    except ValueError as exc:
        raise error(f"--shard: {exc}") from None
