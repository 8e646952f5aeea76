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
    QuantizeOpt,
    companion_notes,
    err,
    error,
    handle_errors,
    is_debug,
    load_backend,
    load_providers,
    note,
    one_line,
    print_json,
    progress_bar,
    registry,
    warn_synthetic,
)
from eyescan.cli.outputs import hold_out, kept_on_failure, open_log, write_report_file
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
        for one in (n.strip() for n in name.split(",") if n.strip()):
            self._task_help(formatter, one)

    def _task_help(self, formatter: Any, name: str) -> None:
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


def per_task(text: str | None, names: list[str], option: str) -> dict[str, str]:
    """``--option VALUE`` (one task) or ``--option TASK=VALUE,...`` -> ``{task: value}``."""
    if text is None:
        return {}
    if "=" not in text:
        if len(names) > 1:
            raise error(f"{option} {text}: with several tasks give {option} TASK=VALUE,...")
        return {names[0]: text}
    found: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        if name not in names or not value:
            raise error(
                f"{option} {part}: give TASK=VALUE for a task of this run ({', '.join(names)})"
            )
        found[name] = value
    return found


def thresholds(text: str | None, names: list[str]) -> dict[str, float]:
    """``--threshold`` per task, each in (0, 1)."""
    values = {}
    for name, value in per_task(text, names, "--threshold").items():
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if not 0.0 < number < 1.0:
            raise error(f"--threshold {value}: give a number between 0 and 1 (exclusive)")
        values[name] = number
    return values


def split_tasks(text: str) -> list[str]:
    """``vessels,drgrade`` -> ``["vessels", "drgrade"]`` (each once, in order)."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise error(f"no task named in {text!r} (see 'eyescan tasks')")
    return list(dict.fromkeys(names))


def run_options(
    tasks: list[Any], flags: list[str], core: dict[str, Any], cut: dict[str, float]
) -> dict[str, dict[str, Any]]:
    """Each task's options for this run: the core's, its threshold and its own flags.

    With several tasks a flag goes to every task that declares it; a flag no
    task declares is a usage error.
    """
    if len(tasks) == 1:
        own = {tasks[0].name: task_options(tasks[0], flags)}
    else:
        own = {}
        for task in tasks:
            mine = [f for f in flags if _declares(task, f)]
            own[task.name] = task_options(task, mine)
        for flag in flags:
            if not any(_declares(t, flag) for t in tasks):
                raise error(f"no such option: {flag} (no task of this run declares it)")
    return {t.name: {**core, "threshold": cut.get(t.name), **own[t.name]} for t in tasks}


def _declares(task: Any, flag: str) -> bool:
    names = {flag_name(o.name) for o in task.predict_options}
    return flag in names or (flag.startswith("--no-") and "--" + flag[5:] in names)


def photo_reader(fov: Path | None, tasks: list[Any]) -> Any:
    """Decoding for the run: ``--fov`` masks, the quality gate when a fundus task runs."""
    from eyescan.inference.photos import FovMasks, PhotoReader

    if fov is not None:
        ignoring = [t.name for t in tasks if not any(n.name == "fov" for n in t.needs)]
        if ignoring:
            note(f"--fov: task(s) {', '.join(ignoring)} do not use a field-of-view mask")
    return PhotoReader(
        fov=None if fov is None else FovMasks(fov), assess=any(t.fundus for t in tasks)
    )


@handle_errors
def predict(
    ctx: typer.Context,
    task: Annotated[
        str,
        typer.Argument(
            help="Task name, or several separated by commas (vessels,drgrade,redlesion): "
            "one run, one record per photo (see 'eyescan tasks')."
        ),
    ],
    inputs: Annotated[list[Path], typer.Argument(help="Image files or folders (recursive).")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path(
        "eyescan-out"
    ),
    weights: Annotated[
        str | None,
        typer.Option(
            "--weights",
            "-w",
            help="Weights file (.safetensors with its .json card; default: the shipped ones); "
            "several tasks: TASK=FILE,...",
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model", "-m", help="Model name (default: the task's); several tasks: TASK=NAME,..."
        ),
    ] = None,
    json_out: JsonOpt = False,
    batch_size: BatchOpt = 1,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Threads decoding and preprocessing images (default: one per core, at most 4).",
        ),
    ] = None,
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
    threshold: Annotated[
        str | None,
        typer.Option(
            help="Operating threshold in (0, 1) for segmentation and binary outputs "
            "(default: the model card's); several tasks: TASK=VALUE,...",
        ),
    ] = None,
    fov: Annotated[
        Path | None,
        typer.Option(
            help="Field-of-view masks: one mask file for every photo, or a folder of masks "
            "named like the photos (NAME.png, NAME_mask.gif, ...).",
        ),
    ] = None,
    prob16: Annotated[
        bool, typer.Option("--prob16", help="Write probability maps as 16-bit PNG.")
    ] = False,
    skip_ungradable: Annotated[
        bool,
        typer.Option(
            "--skip-ungradable",
            help="Fundus tasks abstain on photos the quality gate marks ungradable "
            "(default: run and flag them).",
        ),
    ] = False,
    debug: DebugOpt = False,
) -> None:
    """Analyse images: one record per image, output files under --out.

    A task's own flags are listed by 'eyescan predict TASK --help'.
    """
    from eyescan.imaging.imageio import max_pixels
    from eyescan.inference import inputs as walking
    from eyescan.inference import predicting

    max_pixels()  # a bad EYESCAN_MAX_PIXELS fails the command once, not every image
    reg = registry()
    names = split_tasks(task)
    registered = [reg.task(name) for name in names]
    cut = thresholds(threshold, names)
    core = {"explain": explain, "prob16": prob16}
    options = run_options(registered, ctx.meta.get(_FLAGS, []), core, cut)
    audit = {"fov": None if fov is None else str(fov), "skip_ungradable": skip_ungradable}
    missing = [str(p) for p in inputs if not os.path.lexists(p)]
    if missing:
        raise error(f"input not found: {', '.join(missing)}")
    found = walking.find_images(inputs, out_dir)
    skipped = walking.skipped_note(found)
    if skipped:
        note(skipped)
    items = predicting.safe_stems(found.images)
    if not items:
        raise error(
            "no images found in the inputs (extensions: jpg, jpeg, png, tif, tiff, gif, bmp, ppm)"
        )
    reader = photo_reader(fov, registered)
    if len(names) > 1 and shard is not None:
        raise error("--shard takes one task (run each task's shards separately)")
    # released when the command ends
    ctx.with_resource(hold_out(out_dir, _shard_option(shard), names if len(names) > 1 else []))
    if len(names) > 1:
        from eyescan.cli.screen import predict_many

        predict_many(
            reg,
            registered,
            {n: {**o, **audit} for n, o in options.items()},
            items,
            out_dir,
            per_task(model, names, "--model"),
            per_task(weights, names, "--weights"),
            backend,
            quantize,
            reader,
            json_out,
            workers,
            resume,
            is_debug(debug),
            skip_ungradable,
            report,
        )
        return
    _predict_one(
        reg,
        registered[0].configured(options[names[0]]),
        {**options[names[0]], **audit},
        items,
        out_dir,
        model,
        None if weights is None else Path(weights),
        backend,
        quantize,
        reader,
        json_out,
        batch_size,
        workers,
        resume,
        shard,
        debug,
        skip_ungradable,
        report,
    )


def _predict_one(
    reg: Any,
    task_obj: Any,
    options: dict[str, Any],
    items: list[Any],
    out_dir: Path,
    model: str | None,
    weights: Path | None,
    backend: Backend,
    quantize: bool,
    reader: Any,
    json_out: bool,
    batch_size: int,
    workers: int | None,
    resume: bool,
    shard: str | None,
    debug: bool,
    skip_ungradable: bool,
    report: Path | None,
) -> None:
    from eyescan.inference import predicting, sharding

    part, stems = _shard_option(shard), [item.stem for item in items]
    if part is not None:  # stems were assigned on the full list: names match unsharded runs
        items = [items[i] for i in sharding.positions(len(items), part)]
    loaded = load_backend(reg, task_obj, model, weights, backend, quantize, items)
    predicting.prepare(task_obj, loaded)  # companions loaded: the note names them
    warned: set[str] = set()
    warn_synthetic(loaded, warned)
    providers = load_providers(reg, task_obj, [task_obj.name], backend, warned)
    records_file = out_dir / "predictions.jsonl"
    if part is not None:
        records_file = sharding.records_path(out_dir, part)
    log = open_log(records_file, resume)
    records = []
    started = time.perf_counter()
    with log, kept_on_failure(log, records), progress_bar(len(items)) as progress:
        bar = progress.add_task(f"{task_obj.name} ({loaded.name})", total=len(items))
        for record in predicting.run(
            reg,
            task_obj,
            loaded,
            items,
            out_dir,
            batch_size,
            workers,
            resume,
            is_debug(debug),
            reader=reader,
            providers=providers,
            skip_ungradable=skip_ungradable,
            options=options,
        ):
            log.add(record)  # first: a full disk here is not counted as kept
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
        log.finish(records)
    if part is not None:
        sharding.write_manifest(out_dir, part, stems)
    failed = sum(not r["ok"] for r in records)
    if not json_out:
        print_predictions(records, out_dir, time.perf_counter() - started, records_file)
    if report is not None:
        from eyescan.reports.report_html import write_prediction_report

        written = write_report_file(write_prediction_report, records, out_dir, report)
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
