"""What every command shares: consoles, option types, error handling and exit codes.

Data goes to stdout (``--json``: JSON Lines); progress, warnings and errors go
to stderr. Exit codes: 0 all ok; 1 some inputs failed (the others were written)
or the command failed; 2 usage error (unknown task/model/option, missing input).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from enum import Enum, IntEnum
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from eyescan.errors import EyescanError, UnknownNameError

err = Console(stderr=True)
out = Console()


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # some inputs failed, or the whole command failed
    USAGE = 2
    INTERRUPTED = 130  # Ctrl-C
    BROKEN_PIPE = 141  # stdout's reader closed early (128 + SIGPIPE, as git and cat)


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
ReaderOpt = Annotated[str | None, typer.Option(help="Data-set reader (default: detect).")]
ColumnsOpt = Annotated[
    str | None,
    typer.Option(
        help="Map the readers' column names to your CSV's: NAME=COL,... "
        "(image, label, split, patient, fov, …), e.g. image=path,label=treatment."
    ),
]
HoldoutOpt = Annotated[
    float | None,
    typer.Option(
        help="Fraction of unsplit data held out as test (default 0.2; 0: no hold-out, "
        "then unsplit data cannot be evaluated as test)."
    ),
]
HoldoutSeedOpt = Annotated[
    int | None,
    typer.Option(help="Seed of the hold-out (default 0; use the same for train and evaluate)."),
]


AnnotatorOpt = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="Which observer's labels, for data sets with several (default: the first).",
    ),
]


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


def is_debug(flag: bool) -> bool:
    return flag or bool(os.environ.get("EYESCAN_DEBUG"))


def one_line(text: Any) -> str:
    """A message as one line of literal text (file names may hold ``[``, newlines)."""
    from rich.markup import escape

    return escape(" ".join(str(text).splitlines()))


def error(message: Any, code: ExitCode = ExitCode.USAGE) -> typer.Exit:
    """Print ``error: MESSAGE`` (one line) on stderr; returns the Exit to raise."""
    err.print(f"[red]error:[/] {one_line(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def note(message: Any) -> None:
    err.print(f"[yellow]note:[/] {one_line(message)}", highlight=False, soft_wrap=True)


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn known errors into one-line messages and documented exit codes."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except UnknownNameError as exc:
            raise error(exc, ExitCode.USAGE) from None
        except EyescanError as exc:
            if is_debug(kwargs.get("debug", False)):
                raise
            raise error(exc, ExitCode.FAILED) from None
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/]; rerun with --resume to continue")
            raise typer.Exit(ExitCode.INTERRUPTED) from None
        except BrokenPipeError:  # stdout's reader left (``| head``): stop quietly
            _silence_stdout()
            raise typer.Exit(ExitCode.BROKEN_PIPE) from None
        except Exception as exc:
            if is_debug(kwargs.get("debug", False)):
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


def registry() -> Any:
    """The plugin registry; its load warnings go to stderr once."""
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


def read_config(config: Path | None) -> dict[str, Any]:
    if config is None:
        return {}
    try:
        return json.loads(Path(config).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EyescanError(f"{config}: cannot read config ({exc})") from None


def data_options(
    columns: str | None,
    holdout: float | None,
    holdout_seed: int | None,
    annotator: int | None = None,
) -> dict[str, Any]:
    """``options["columns"]``, ``["holdout"]`` and ``["annotator"]`` of train/evaluate.

    ``holdout``: None (neither flag: the core's default rule), False (``--holdout 0``)
    or a :class:`eyescan.data.splits.HoldOut`.
    """
    from eyescan.data.readers import parse_columns
    from eyescan.data.splits import HoldOut
    from eyescan.errors import DataError

    try:
        mapping = parse_columns(columns) or None
    except DataError as exc:
        raise error(exc, ExitCode.USAGE) from None
    rule: HoldOut | bool | None = None
    if holdout is not None and not 0.0 <= holdout < 1.0:
        raise error(f"--holdout {holdout:g}: give a fraction in [0, 1) (0: no hold-out)")
    if holdout == 0.0:
        rule = False
    elif holdout is not None or holdout_seed is not None:
        default = HoldOut()
        rule = HoldOut(
            default.fraction if holdout is None else holdout,
            default.seed if holdout_seed is None else holdout_seed,
        )
    return {"columns": mapping, "holdout": rule, "annotator": annotator}


def companion_notes(provenance: dict[str, Any], seen: set[str] | None = None) -> None:
    """The synthetic-data note for each synthetic companion not yet named (``seen``)."""
    seen = set() if seen is None else seen
    for companion in provenance.get("companions", []):
        key = f"{companion.get('role')}:{companion.get('sha256')}"
        if companion.get("synthetic_only") and key not in seen:
            seen.add(key)
            note(
                f"its {companion.get('role')} model {companion.get('model')} "
                f"({companion.get('weights')}) was trained on synthetic images only: "
                "results on real photographs mean nothing"
            )


def warn_terms(loaded: Any, seen: set[str] | None = None) -> None:
    """Say so on stderr when the model card marks the weights ``research_only`` (the
    terms of their training data, ``use_terms``, forbid other uses)."""
    card = getattr(loaded, "card", None) or {}
    if card.get("research_only") and (seen is None or "terms" not in seen):
        if seen is not None:
            seen.add("terms")
        terms = card.get("use_terms") or "see the model card's training.data_sources"
        note(
            f"{loaded.task}/{loaded.name} weights ({loaded.weights}) are for research use "
            f"only: {terms}"
        )


def warn_synthetic(loaded: Any, seen: set[str] | None = None) -> None:
    """Say so on stderr when the weights, or a companion's, were trained on synthetic images,
    and when their card restricts them to research use (:func:`warn_terms`)."""
    warn_terms(loaded, seen)
    if loaded.synthetic_only and (seen is None or "self" not in seen):
        if seen is not None:
            seen.add("self")
        note(
            f"{loaded.task}/{loaded.name} weights ({loaded.weights}) were "
            "trained on synthetic images only: their results on real photographs mean nothing; "
            "train on your own data (see the plugin's README)"
        )
    companion_notes(loaded.provenance(), seen)


def load_backend(
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


def load_providers(
    reg: Any, task: Any, running: list[str], backend: Backend, warned: set[str]
) -> list[Any]:
    """Providers of ``task``'s needs that no task of the run meets, loaded once each."""
    from eyescan.inference.providers import Provider, resolve

    found = []
    for need, name in resolve(reg.tasks, task, running).items():
        if name in running:
            continue
        provider_task = reg.task(name).configured({"explain": False})
        loaded = load_backend(reg, provider_task, None, None, backend, False)
        warn_synthetic(loaded, warned)
        found.append(Provider(need, provider_task, loaded, provider_task.provides[need]))
    return found


def progress_bar(count: int) -> Any:
    """The per-image progress bar of prediction runs (stderr; hidden for one image)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    return Progress(
        "{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=count < 2,
    )
