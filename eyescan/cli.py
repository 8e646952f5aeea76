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
from enum import IntEnum
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


def _debug(flag: bool) -> bool:
    return flag or bool(os.environ.get("EYESCAN_DEBUG"))


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn known errors into one-line messages and documented exit codes."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except UnknownNameError as exc:
            err.print(f"[red]error:[/] {exc}", highlight=False)
            raise typer.Exit(ExitCode.USAGE) from None
        except EyescanError as exc:
            if _debug(kwargs.get("debug", False)):
                raise
            err.print(f"[red]error:[/] {exc}", highlight=False)
            raise typer.Exit(ExitCode.FAILED) from None
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/]; rerun with --resume to continue")
            raise typer.Exit(130) from None
        except Exception as exc:
            if _debug(kwargs.get("debug", False)):
                raise
            err.print(
                f"[red]error:[/] {type(exc).__name__}: {exc} "
                "(rerun with --debug for the traceback)",
                highlight=False,
            )
            raise typer.Exit(ExitCode.FAILED) from None

    return wrapper


def registry():
    from eyescan.plugins import get_registry

    reg = get_registry()
    for message in reg.warnings:
        err.print(f"[yellow]warning:[/] {message}", highlight=False)
    reg.warnings.clear()
    return reg


def print_json(record: dict[str, Any]) -> None:
    from eyescan.records import dumps

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


@app.command()
@handle_errors
def models(task: TaskArg, json_out: JsonOpt = False) -> None:
    """List a task's models with their parameter counts."""
    from eyescan.models import count_parameters

    reg = registry()
    reg.task(task)
    rows = []
    for entry in reg.models_for(task):
        module = entry.factory()
        shipped = reg.tasks[task].default_weights(entry.name)
        rows.append(
            {
                "task": task,
                "model": entry.name,
                "parameters": count_parameters(module),
                "description": entry.description,
                "shipped_weights": bool(shipped),
            }
        )
    if json_out:
        for row in rows:
            print_json(row)
        return
    table = Table("model", "parameters", "shipped weights", "description")
    for r in rows:
        table.add_row(
            r["model"],
            f"{r['parameters']:,}",
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
    debug: DebugOpt = False,
) -> None:
    """Analyse images: one record per image, output files under --out."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from eyescan import predicting
    from eyescan.imageio import iter_images
    from eyescan.models import load

    reg = registry()
    task_obj = reg.task(task)
    missing = [str(p) for p in inputs if not os.path.lexists(p)]
    if missing:
        err.print(f"[red]error:[/] input not found: {', '.join(missing)}", highlight=False)
        raise typer.Exit(ExitCode.USAGE)
    items = predicting.safe_stems(list(iter_images(inputs)))
    if not items:
        err.print(
            "[red]error:[/] no images found in the inputs "
            "(extensions: jpg, jpeg, png, tif, tiff, gif, bmp, ppm)"
        )
        raise typer.Exit(ExitCode.USAGE)
    loaded = load(reg, task, model, weights)
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
                err.print(f"[red]error:[/] {record['error']['message']}", highlight=False)
            progress.advance(bar)
    predicting.write_jsonl(out_dir / "predictions.jsonl", records)
    failed = sum(not r["ok"] for r in records)
    if not json_out:
        _print_predictions(records, out_dir, time.perf_counter() - started)
    if failed:
        err.print(f"[yellow]{failed} of {len(records)} inputs failed[/]")
        raise typer.Exit(ExitCode.FAILED)


def _print_predictions(records: list[dict[str, Any]], out_dir: Path, seconds: float) -> None:
    keys: list[str] = []
    for r in records:
        for k, v in r["outputs"].items():
            if k not in keys and isinstance(v, (int, float, str, bool)):
                keys.append(k)
    keys = keys[:6]
    table = Table("input", *keys, "status")
    for r in records:
        cells = []
        for k in keys:
            v = r["outputs"].get(k, "")
            cells.append(f"{v:.4f}" if isinstance(v, float) else str(v))
        table.add_row(r["id"], *cells, "ok" if r["ok"] else f"[red]{r['error']['code']}[/]")
    out.print(table)
    ok = sum(r["ok"] for r in records)
    err.print(
        f"{ok}/{len(records)} images in {seconds:.1f} s; outputs in {out_dir}/ "
        f"(records: {out_dir / 'predictions.jsonl'})",
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
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Train a model; writes weights, model card and metrics.jsonl under --out."""
    from rich.progress import Progress

    reg = registry()
    task_obj = reg.task(task)
    command = "eyescan " + " ".join(sys.argv[1:])
    with Progress(console=err, transient=True) as progress:
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
            "config": _read_config(config),
            "reader": reader,
            "resume": resume,
            "command": command,
            "on_event": on_event,
        }
        summary = reg.hook.train(task=task_obj, data=data, options=options)
    if json_out:
        from eyescan.records import TRAINING_SCHEMA

        print_json({"schema": TRAINING_SCHEMA, "task": task, **summary})
    else:
        for k, v in summary.items():
            out.print(f"{k}: {v}", highlight=False)


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
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Evaluate a model on held-out data (metrics per image and pooled)."""
    from eyescan.models import load
    from eyescan.records import EVALUATION_SCHEMA

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
    if json_out:
        for image in result["images"]:
            print_json({**base, "kind": "image", **image})
        print_json({**base, "kind": "summary", **result["summary"]})
        return
    table = Table("metric", "value")
    for k, v in result["summary"].items():
        table.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
    out.print(table)


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
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Measure model latency and throughput on this machine."""
    from eyescan.benchmarking import run_benchmark
    from eyescan.models import load

    reg = registry()
    task_obj = reg.task(task)
    try:
        loaded = load(reg, task, model, weights)
    except EyescanError:
        if weights is not None:
            raise
        from eyescan.models import LoadedModel, create

        name = model or task_obj.default_model
        loaded = LoadedModel(task, name, create(reg, task, name).eval())
    result = run_benchmark(reg, task_obj, loaded, batch_size, size, iterations, warmup)
    if json_out:
        print_json(result)
        return
    table = Table("measure", "value")
    for k, v in result.items():
        table.add_row(k, f"{v:.3f}" if isinstance(v, float) else str(v))
    out.print(table)


def main() -> None:
    app()
