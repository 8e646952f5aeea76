"""``eyescan train TASK DATA``: weights, model card and metrics.jsonl under ``--out``."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

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
    data_options,
    err,
    error,
    handle_errors,
    one_line,
    out,
    print_json,
    read_config,
    registry,
)
from eyescan.errors import EyescanError


@handle_errors
def train(
    task: TaskArg,
    data: Annotated[Path, typer.Argument(help="Data set folder or manifest.")],
    model: ModelOpt = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="Epochs (overrides config).")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", "-b", min=1)] = None,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Run folder.")] = Path("runs/train"),
    config: Annotated[Path | None, typer.Option(help="JSON recipe (optimizer, lr, …).")] = None,
    reader: ReaderOpt = None,
    columns: ColumnsOpt = None,
    holdout: HoldoutOpt = None,
    holdout_seed: HoldoutSeedOpt = None,
    annotator: AnnotatorOpt = None,
    resume: Annotated[
        bool, typer.Option(help="Continue from the run folder's last checkpoint.")
    ] = False,
    overwrite: Annotated[
        bool,
        typer.Option(help="Start again in a run folder that holds a previous run (removes it)."),
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
    """Train a model; writes weights, model card and metrics.jsonl under --out.

    A --out that holds a previous run is refused unless --resume (continue it)
    or --overwrite (start again) is given.
    """
    from rich.progress import Progress

    from eyescan.engine import distributed
    from eyescan.engine.training import prepare_out

    if amp not in (None, "bf16", "fp16"):
        raise error(f"--amp {amp!r}: choose bf16 or fp16")
    if resume and overwrite:
        raise error("--resume and --overwrite exclude each other")
    picked = data_options(columns, holdout, holdout_seed, annotator)
    prepare_out(out_dir, resume, overwrite)  # before torchrun: one message, not one a process
    if nproc > 1:
        _run_under_torchrun(nproc)
    main = distributed.is_main()  # under torchrun only rank 0 prints
    reg = registry()
    task_obj = reg.task(task)
    command = "eyescan " + " ".join(sys.argv[1:])
    recipe = read_config(config)
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
            elif event["event"] == "note":
                progress.console.print(
                    f"[yellow]note:[/] {one_line(event.get('message', ''))}",
                    highlight=False,
                    soft_wrap=True,
                )

        options = {
            "model": model,
            "epochs": epochs,
            "batch_size": batch_size,
            "out": out_dir,
            "config": recipe,
            "reader": reader,
            **picked,
            "resume": resume,
            "overwrite": overwrite,
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
