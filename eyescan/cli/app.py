"""The ``eyescan`` command line (typer + rich). Commands are thin: they parse
options, call library functions and print. Data goes to stdout (``--json``:
JSON Lines); progress, warnings and errors go to stderr.

Exit codes: 0 all ok; 1 some inputs failed (the others were written) or the
command failed; 2 usage error (unknown task/model/option, missing input).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from enum import Enum, IntEnum
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from eyescan import __version__
from eyescan.errors import EyescanError, UnknownNameError

err = Console(stderr=True)
out = Console()


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # some inputs failed, or the whole command failed
    USAGE = 2
    INTERRUPTED = 130  # Ctrl-C
    BROKEN_PIPE = 141  # stdout's reader closed early (128 + SIGPIPE, as git and cat)


app = typer.Typer(
    help="eyescan: ophthalmic image analysis from the command line.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

TaskArg = Annotated[str, typer.Argument(help="Task name (see 'eyescan tasks').")]
ModelOpt = Annotated[
    str | None, typer.Option("--model", "-m", help="Model name (default: the task's).")
]
WeightsOpt = Annotated[
    Path | None,
    typer.Option(
        "--weights",
        "-w",
        help="Weights file (.safetensors with its .json card); default: the shipped ones.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine output: JSON Lines on stdout.")]
BatchOpt = Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Images per model call.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks (also EYESCAN_DEBUG=1).")]


class Backend(str, Enum):
    torch = "torch"
    onnx = "onnx"


BackendOpt = Annotated[
    Backend,
    typer.Option(
        help="Inference engine; onnx uses NAME.onnx beside the weights when it fits them, "
        "else exports in memory ('eyescan export' writes one)."
    ),
]
QuantizeOpt = Annotated[
    bool,
    typer.Option(help="Dynamic int8 quantisation (implies --backend onnx); prints its cost."),
]


def _debug(flag: bool) -> bool:
    return flag or bool(os.environ.get("EYESCAN_DEBUG"))


def one_line(text: Any) -> str:
    """A message as one line of literal text (file names may hold ``[``, newlines)."""
    from rich.markup import escape

    return escape(" ".join(str(text).splitlines()))


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn known errors into one-line messages and documented exit codes."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except UnknownNameError as exc:
            err.print(f"[red]error:[/] {one_line(exc)}", highlight=False, soft_wrap=True)
            raise typer.Exit(ExitCode.USAGE) from None
        except EyescanError as exc:
            if _debug(kwargs.get("debug", False)):
                raise
            err.print(f"[red]error:[/] {one_line(exc)}", highlight=False, soft_wrap=True)
            raise typer.Exit(ExitCode.FAILED) from None
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/]; rerun with --resume to continue")
            raise typer.Exit(ExitCode.INTERRUPTED) from None
        except BrokenPipeError:  # stdout's reader left (``| head``): stop quietly
            _silence_stdout()
            raise typer.Exit(ExitCode.BROKEN_PIPE) from None
        except Exception as exc:
            if _debug(kwargs.get("debug", False)):
                raise
            err.print(
                f"[red]error:[/] {type(exc).__name__}: {one_line(exc)} "
                "(rerun with --debug for the traceback)",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(ExitCode.FAILED) from None

    return wrapper


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)  # the dup on stdout's descriptor stays open


def registry():
    from eyescan.plugins.registry import get_registry

    reg = get_registry()
    for message in reg.warnings:
        err.print(f"[yellow]warning:[/] {one_line(message)}", highlight=False, soft_wrap=True)
    reg.warnings.clear()
    return reg


def print_json(record: dict[str, Any]) -> None:
    from eyescan.reports.records import dumps

    sys.stdout.write(dumps(record) + "\n")
    sys.stdout.flush()


def version_callback(value: bool) -> None:
    if value:
        print(f"eyescan {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=version_callback, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """eyescan: ophthalmic image analysis from the command line."""


@app.command()
@handle_errors
def tasks(json_out: JsonOpt = False) -> None:
    """List the installed tasks (one per task plugin)."""
    reg = registry()
    rows = []
    for name, task in sorted(reg.tasks.items()):
        plugin = next((p for p in reg.plugins.values() if name in p.tasks), None)
        rows.append(
            {
                "task": name,
                "kind": task.kind,
                "description": task.description,
                "default_model": task.default_model,
                "plugin": plugin.name if plugin else "",
                "version": plugin.version if plugin else "",
            }
        )
    if json_out:
        for row in rows:
            print_json(row)
        return
    table = Table("task", "kind", "default model", "description", "plugin")
    for r in rows:
        table.add_row(
            r["task"],
            r["kind"],
            r["default_model"],
            r["description"],
            f"{r['plugin']} {r['version']}",
        )
    out.print(table if rows else "no task plugins installed (pip install eyescan-vessels …)")


@app.command()
@handle_errors
def plugins(json_out: JsonOpt = False) -> None:
    """List installed plugins with versions, tasks, models and load errors."""
    reg = registry()
    rows = [
        {
            "plugin": p.name,
            "version": p.version,
            "tasks": p.tasks,
            "models": p.models,
            "losses": sorted(e.name for e in reg.losses.values() if e.plugin == p.name),
            "readers": sorted(
                f"{e.task}/{e.name}" for e in reg.readers.values() if e.plugin == p.name
            ),
            "error": p.error,
        }
        for p in reg.plugins.values()
    ]
    if json_out:
        for row in rows:
            print_json(row)
        return
    table = Table("plugin", "version", "tasks", "models", "status")
    for r in rows:
        table.add_row(
            r["plugin"],
            r["version"],
            ", ".join(r["tasks"]),
            ", ".join(r["models"]),
            f"[red]{r['error']}[/]" if r["error"] else "ok",
        )
    out.print(table)


plugin_app = typer.Typer(
    help="Tools for plugin authors (see docs/plugins.md).",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(plugin_app, name="plugin")


class PluginKind(str, Enum):
    classify = "classify"
    segment = "segment"
    detect = "detect"


@plugin_app.command("new")
@handle_errors
def plugin_new(
    name: Annotated[str, typer.Argument(help="Task name, e.g. optic_disc (also the folder).")],
    kind: Annotated[PluginKind, typer.Option(help="Kind of task.")] = PluginKind.classify,
    parent: Annotated[
        Path, typer.Option("--dir", help="Parent folder; the plugin goes to DIR/NAME.")
    ] = Path("."),
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Write a ready, installable task plugin (model, loss, reader, tests) to DIR/NAME."""
    from eyescan.plugins import scaffold

    problem = scaffold.name_problem(name)
    if problem:
        err.print(f"[red]error:[/] {problem}", highlight=False)
        raise typer.Exit(ExitCode.USAGE)
    made = scaffold.new_plugin(name, kind.value, parent)
    if json_out:
        print_json(
            {"plugin": name, "kind": kind.value, "path": str(made.root), "files": made.files}
        )
        return
    out.print(f"wrote the {kind.value} plugin {name!r} to {made.root}/:", highlight=False)
    for file in made.files:
        out.print(f"  {file}", highlight=False)
    err.print(
        f"next: pip install -e {made.root} && python -m pytest {made.root / 'tests'}; "
        "then read docs/plugins.md",
        highlight=False,
    )


@app.command()
@handle_errors
def models(task: TaskArg, json_out: JsonOpt = False) -> None:
    """List a task's models with their parameter counts."""
    from eyescan.models.cost import count_parameters

    reg = registry()
    default = reg.task(task).default_model
    rows = []
    for entry in reg.models_for(task):
        module = entry.factory()
        shipped = reg.tasks[task].default_weights(entry.name)
        macs = getattr(module, "macs", None)  # optional: model.macs() at its native input size
        rows.append(
            {
                "task": task,
                "model": entry.name,
                "parameters": count_parameters(module),
                "macs": int(macs()) if callable(macs) else None,
                "description": entry.description,
                "shipped_weights": bool(shipped),
                "default": entry.name == default,
            }
        )
    if json_out:
        for row in rows:
            print_json(row)
        return
    with_macs = any(r["macs"] is not None for r in rows)
    table = Table("model", "parameters", *(["MACs"] * with_macs), "shipped weights", "description")
    for r in rows:
        table.add_row(
            r["model"] + (" (default)" if r["default"] else ""),
            f"{r['parameters']:,}",
            *([f"{r['macs'] / 1e9:.2f} G" if r["macs"] is not None else "-"] * with_macs),
            "yes" if r["shipped_weights"] else "no",
            r["description"],
        )
    out.print(table)


@app.command()
@handle_errors
def predict(
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
    morphometry: Annotated[
        bool,
        typer.Option(help="Shape measurements from tasks that offer them (vessels: length)."),
    ] = False,
    debug: DebugOpt = False,
) -> None:
    """Analyse images: one record per image, output files under --out."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from eyescan.imaging.imageio import iter_images
    from eyescan.inference import predicting, sharding

    reg = registry()
    task_obj = reg.task(task)
    if explain:  # tasks read getattr(self, "explain", False) (docs/reports.md)
        task_obj.explain = True
    if morphometry:  # likewise getattr(self, "morphometry", False)
        task_obj.morphometry = True
    missing = [str(p) for p in inputs if not os.path.lexists(p)]
    if missing:
        err.print(f"[red]error:[/] input not found: {', '.join(missing)}", highlight=False)
        raise typer.Exit(ExitCode.USAGE)
    items = predicting.safe_stems(list(iter_images(inputs, exclude=out_dir)))
    if not items:
        err.print(
            "[red]error:[/] no images found in the inputs "
            "(extensions: jpg, jpeg, png, tif, tiff, gif, bmp, ppm)"
        )
        raise typer.Exit(ExitCode.USAGE)
    part, stems = _shard_option(shard), [item.stem for item in items]
    if part is not None:  # stems were assigned on the full list: names match unsharded runs
        items = [items[i] for i in sharding.positions(len(items), part)]
    loaded = _load_backend(reg, task_obj, model, weights, backend, quantize, items)
    _warn_synthetic(loaded)
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
            reg, task_obj, loaded, items, out_dir, batch_size, workers, resume, _debug(debug)
        ):
            records.append(record)
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
        _print_predictions(records, out_dir, time.perf_counter() - started, records_file)
    if report is not None:
        from eyescan.reports.report_html import write_prediction_report

        written = write_prediction_report(records, out_dir, report)
        err.print(f"report: {written}", highlight=False, soft_wrap=True)
    if failed:
        err.print(f"[yellow]{failed} of {len(records)} inputs failed[/]")
        raise typer.Exit(ExitCode.FAILED)


def _warn_synthetic(loaded: Any) -> None:
    """Say so on stderr when the weights' card marks them as trained on synthetic images."""
    if loaded.card.get("synthetic_only"):
        err.print(
            f"[yellow]note:[/] {loaded.task}/{loaded.name} weights ({loaded.weights}) were "
            "trained on synthetic images only: their results on real photographs mean nothing; "
            "train on your own data (see the plugin's README)",
            highlight=False,
            soft_wrap=True,
        )


def _shard_option(text: str | None) -> Any:
    if text is None:
        return None
    from eyescan.inference.sharding import parse_shard

    try:
        return parse_shard(text)
    except ValueError as exc:
        err.print(f"[red]error:[/] --shard: {exc}", highlight=False)
        raise typer.Exit(ExitCode.USAGE) from None


def _print_predictions(
    records: list[dict[str, Any]], out_dir: Path, seconds: float, records_file: Path | None = None
) -> None:
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


def _read_config(config: Path | None) -> dict[str, Any]:
    if config is None:
        return {}
    try:
        return json.loads(Path(config).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EyescanError(f"{config}: cannot read config ({exc})") from None


@app.command()
@handle_errors
def train(
    task: TaskArg,
    data: Annotated[Path, typer.Argument(help="Data set folder or manifest.")],
    model: ModelOpt = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="Epochs (overrides config).")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", "-b", min=1)] = None,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Run folder.")] = Path("runs/train"),
    config: Annotated[Path | None, typer.Option(help="JSON recipe (optimizer, lr, …).")] = None,
    reader: Annotated[str | None, typer.Option(help="Data-set reader (default: detect).")] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue from the run folder's last checkpoint.")
    ] = False,
    nproc: Annotated[
        int, typer.Option(min=1, help="Processes on this machine, one per GPU (runs torchrun).")
    ] = 1,
    device: Annotated[
        str | None, typer.Option(help="cpu, cuda, cuda:N or auto (overrides config).")
    ] = None,
    amp: Annotated[
        str | None, typer.Option(help="Mixed precision: bf16 or fp16 (overrides config).")
    ] = None,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Train a model; writes weights, model card and metrics.jsonl under --out."""
    from rich.progress import Progress

    from eyescan.engine import distributed

    if amp not in (None, "bf16", "fp16"):
        err.print(f"[red]error:[/] --amp {amp!r}: choose bf16 or fp16", highlight=False)
        raise typer.Exit(ExitCode.USAGE)
    if nproc > 1:
        _run_under_torchrun(nproc)
    main = distributed.is_main()  # under torchrun only rank 0 prints
    reg = registry()
    task_obj = reg.task(task)
    command = "eyescan " + " ".join(sys.argv[1:])
    recipe = _read_config(config)
    recipe.update({k: v for k, v in (("device", device), ("amp", amp)) if v is not None})
    with Progress(console=err, transient=True, disable=not main) as progress:
        bar = progress.add_task("epoch 1", total=None)

        def on_event(event: dict[str, Any]) -> None:
            if event["event"] == "step":
                progress.update(
                    bar, description=f"epoch {event['epoch']} loss {event['loss']:.4f}", advance=1
                )
            elif event["event"] == "epoch":
                shown = {
                    k: round(v, 4) if isinstance(v, float) else v
                    for k, v in event.items()
                    if k != "event"
                }
                progress.console.print(json.dumps(shown), highlight=False)

        options = {
            "model": model,
            "epochs": epochs,
            "batch_size": batch_size,
            "out": out_dir,
            "config": recipe,
            "reader": reader,
            "resume": resume,
            "command": command,
            "on_event": on_event,
        }
        summary = reg.hook.train(task=task_obj, data=data, options=options)
    if not main:
        return
    if json_out:
        from eyescan.reports.records import TRAINING_SCHEMA

        print_json({"schema": TRAINING_SCHEMA, "task": task, **summary})
    else:
        for k, v in summary.items():
            out.print(f"{k}: {v}", highlight=False)


def _run_under_torchrun(nproc: int) -> None:
    """Run this ``eyescan train`` command again in ``nproc`` processes; exit with its code."""
    import subprocess

    from eyescan.engine import distributed

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise EyescanError("--nproc under torchrun: torchrun already started the processes")
    args = distributed.without_option(sys.argv[1:], "--nproc")
    if "train" not in args:
        raise EyescanError("--nproc needs the 'eyescan train …' command line of a shell")
    err.print(f"running {nproc} processes with torch.distributed.run", highlight=False)
    raise typer.Exit(subprocess.call(distributed.torchrun_command(nproc, args)))


@app.command()
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

    missing = [str(d) for d in dirs if not d.is_dir()]
    if missing:
        err.print(f"[red]error:[/] folder not found: {', '.join(missing)}", highlight=False)
        raise typer.Exit(ExitCode.USAGE)
    target = out_dir or dirs[0]
    started = time.perf_counter()
    merged = sharding.merge(dirs, target)
    predicting.write_jsonl(target / "predictions.jsonl", merged.records)
    if json_out:
        for record in merged.records:
            print_json(record)
    else:
        _print_predictions(merged.records, target, time.perf_counter() - started)
        err.print(f"merged {merged.shards} shards", highlight=False)
    failed = sum(not r["ok"] for r in merged.records)
    if failed:
        err.print(f"[yellow]{failed} of {len(merged.records)} inputs failed[/]")
        raise typer.Exit(ExitCode.FAILED)


@app.command()
@handle_errors
def evaluate(
    task: TaskArg,
    data: Annotated[Path, typer.Argument(help="Data set folder or manifest with ground truth.")],
    weights: WeightsOpt = None,
    model: ModelOpt = None,
    split: Annotated[str, typer.Option(help="Split to evaluate.")] = "test",
    reader: Annotated[str | None, typer.Option(help="Data-set reader (default: detect).")] = None,
    update_card: Annotated[
        bool, typer.Option(help="Record the metrics in the weights' model card.")
    ] = False,
    plots: Annotated[
        Path | None,
        typer.Option("--plots", help="Write figures (PNG) and DIR/index.html to this folder."),
    ] = None,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Evaluate a model on held-out data (metrics per image and pooled)."""
    from eyescan.models.loading import load
    from eyescan.reports.records import EVALUATION_SCHEMA

    reg = registry()
    task_obj = reg.task(task)
    loaded = load(reg, task, model, weights)
    with err.status(f"evaluating {task}/{loaded.name} on {data}"):
        result = reg.hook.evaluate(
            task=task_obj,
            model=loaded,
            data=data,
            options={"split": split, "reader": reader, "update_card": update_card},
        )
    base = {
        "schema": EVALUATION_SCHEMA,
        "task": task,
        "model": loaded.name,
        "weights_sha256": loaded.sha256,
    }
    if plots is not None:
        _write_evaluation_plots(plots, {**base, "data": str(data), "split": split}, result)
    if json_out:
        for image in result["images"]:
            print_json({**base, "kind": "image", **image})
        print_json({**base, "kind": "summary", **result["summary"]})
        return
    table = Table("metric", "value")
    for k, v in result["summary"].items():
        table.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
    out.print(table)


def _write_evaluation_plots(folder: Path, header: dict[str, Any], result: dict[str, Any]) -> None:
    from eyescan.reports import plots as figures
    from eyescan.reports.report_html import write_evaluation_report

    files = figures.write_plots(result, folder)
    header = {k: v for k, v in header.items() if k != "schema"}
    page = write_evaluation_report(folder / "index.html", header, result, files)
    names = ", ".join(p.name for p in files.values()) or "no figures (no curves or scores)"
    err.print(f"plots: {names} in {folder}/; report: {page}", highlight=False, soft_wrap=True)


@app.command("report")
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
    from eyescan.reports.report_html import load_records, write_prediction_report

    records = load_records(results)
    written = write_prediction_report(records, results, out_file or results / "report.html")
    err.print(f"report: {written} ({len(records)} images)", highlight=False, soft_wrap=True)


@app.command()
@handle_errors
def benchmark(
    task: TaskArg,
    model: ModelOpt = None,
    weights: WeightsOpt = None,
    batch_size: BatchOpt = 1,
    size: Annotated[int, typer.Option(help="Square input size in pixels.")] = 512,
    iterations: Annotated[int, typer.Option(min=1, help="Timed runs.")] = 10,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed runs first.")] = 2,
    backend: BackendOpt = Backend.torch,
    quantize: QuantizeOpt = False,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Measure latency (median, p95), images/s, memory, GFLOPs and fraction of matmul peak."""
    from eyescan.deploy.benchmarking import run_benchmark
    from eyescan.deploy.onnx_backend import torch_twin

    reg = registry()
    task_obj = reg.task(task)
    loaded = _load_backend(reg, task_obj, model, weights, backend, quantize, random_init=True)
    result = run_benchmark(
        reg, task_obj, loaded, batch_size, size, iterations, warmup, torch_twin(reg, loaded)
    )
    if json_out:
        print_json(result)
        return
    table = Table("measure", "value")
    for k, v in result.items():
        table.add_row(k, f"{v:.3f}" if isinstance(v, float) else str(v))
    out.print(table)


def _load_backend(
    reg: Any,
    task_obj: Any,
    model: str | None,
    weights: Path | None,
    backend: Backend,
    quantize: bool,
    items: list[Any] | None = None,
    random_init: bool = False,
) -> Any:
    """Load for --backend/--quantize; says on stderr which ONNX model runs."""
    from eyescan.deploy import onnx_backend

    calibration = None
    if quantize and items:
        paths = [item.path for item in items[:16]]
        calibration = onnx_backend.calibration_items(reg, task_obj, paths)
    loaded = onnx_backend.load_for_backend(
        reg, task_obj, model, weights, backend.value, quantize, calibration, random_init
    )
    if loaded.backend == "onnx":
        err.print(onnx_backend.describe(loaded), highlight=False)
    return loaded


@app.command()
@handle_errors
def export(
    task: TaskArg,
    onnx: Annotated[Path, typer.Option("--onnx", help="ONNX file to write (+ OUT.json card).")],
    model: ModelOpt = None,
    weights: WeightsOpt = None,
    size: Annotated[int, typer.Option(min=16, help="Example image size for the check.")] = 64,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Export a model to ONNX (dynamic batch; dynamic H/W for segmentation), checked vs torch."""
    from eyescan.deploy import onnx_backend, onnx_export

    reg = registry()
    task_obj = reg.task(task)
    loaded = onnx_backend.load_torch(reg, task_obj, model, weights)
    card = onnx_export.export(reg, task_obj, loaded, onnx, size)
    if json_out:
        print_json(card)
        return
    parity = card["onnx"]["parity"]
    table = Table("check", "value")
    table.add_row("max |torch - onnx| output", f"{parity['output_max_abs_diff']:.3g}")
    table.add_row("tolerance", f"{parity['output_tolerance']:.3g}")
    for key, diff in parity["values"].items():
        what = "max |diff|" if "max_abs_diff" in diff else "agreement"
        table.add_row(f"{key} ({what})", str(diff.get("max_abs_diff", diff.get("agreement"))))
    out.print(table)
    err.print(
        f"wrote {onnx} ({card['sha256'][:12]}…) and {onnx_backend.card_path(onnx).name}; "
        f"parity ok at sizes {parity['sizes']}",
        highlight=False,
    )


def main() -> None:
    app()
