"""The ``eyescan`` command line: the typer app and its commands, one module a group.

Commands are thin: they parse options, call library functions and print.
:mod:`eyescan.cli.common` holds what they share (consoles, option types, error
handling, exit codes: 0 ok; 1 some inputs failed or the command failed; 2 usage
error). Command modules import torch only inside the commands that need it, so
``eyescan --help`` and ``eyescan tasks`` stay fast.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from eyescan import __version__
from eyescan.cli import deploy, evaluate, info, predict, results, train, verify
from eyescan.cli.common import ExitCode, err, handle_errors, out
from eyescan.cli.plugin_cmd import plugin_app

app = typer.Typer(
    help="eyescan: ophthalmic image analysis from the command line.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain (click) help: typer's rich help imports rich's Markdown and markdown-it, about
    # half of `eyescan --help`'s 0.3 s (python -X importtime); commands still print with rich.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


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


app.command()(info.tasks)
app.command()(info.plugins)
app.add_typer(plugin_app, name="plugin")
app.command()(info.models)
app.command(cls=predict.PredictCommand)(predict.predict)
app.command()(train.train)
app.command()(results.merge)
app.command()(evaluate.evaluate)
app.command("report")(results.report_command)
app.command()(deploy.benchmark)
app.command()(deploy.export)
app.command()(verify.verify)


def main() -> None:
    # OpenMP threads (torch's intra-op pool, MKL) that sleep at once when idle instead of
    # spinning: with decoding, preprocessing and writing threads beside the model on a
    # few cores, spinning threads steal their CPU and stall the model's barriers. predict
    # vessels (torch, 12 DRIVE-size photos, loaded 2-core machine): 0.40 -> 0.78-1.05
    # img/s. Read when torch loads, which no command does before this; a user's value wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    app()


__all__ = ["ExitCode", "app", "err", "handle_errors", "main", "out"]
