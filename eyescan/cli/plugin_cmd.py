"""``eyescan plugin new``: write a ready task plugin (see docs/plugins.md)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from eyescan.cli.common import (
    DebugOpt,
    ExitCode,
    JsonOpt,
    err,
    handle_errors,
    out,
    print_json,
)

plugin_app = typer.Typer(
    help="Tools for plugin authors (see docs/plugins.md).",
    no_args_is_help=True,
    rich_markup_mode=None,  # plain help, as the main app's
    context_settings={"help_option_names": ["-h", "--help"]},
)


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
