"""``eyescan verify [TASK]``: shipped weights match their cards; reference outputs reproduce.

The checks are :mod:`eyescan.models.verify`'s. A table on stdout (``--json``: one
``eyescan.verify/1`` record per check); each failure also as one ``error:`` line on
stderr; exit 1 when any check fails. ``--update`` (maintainers) rewrites the
reference files from the shipped weights.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from eyescan.cli.common import (
    DebugOpt,
    ExitCode,
    JsonOpt,
    err,
    handle_errors,
    one_line,
    out,
    print_json,
    registry,
)

if TYPE_CHECKING:
    from rich.table import Table


@handle_errors
def verify(
    task: Annotated[
        str | None, typer.Argument(help="Task to check (default: every installed task).")
    ] = None,
    update: Annotated[
        bool,
        typer.Option(
            "--update",
            help="Maintainers: write <weights_dir>/<model>.reference.json from the shipped "
            "weights instead of comparing with it.",
        ),
    ] = False,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Check the shipped weights against their cards and reproduce reference outputs."""
    from eyescan.models.verify import verify_task

    reg = registry()
    tasks = [reg.task(task)] if task is not None else [reg.tasks[n] for n in sorted(reg.tasks)]
    checks = []
    for task_obj in tasks:
        with err.status(f"verifying {task_obj.name}"):
            found = verify_task(reg, task_obj, update=update)
        checks += found
        if json_out:
            for check in found:
                print_json(check.record())
    if not json_out:
        out.print(check_table(checks, {t.name: t.weights_dir for t in tasks}))
    failed = [c for c in checks if not c.ok]
    for check in failed:
        err.print(
            f"[red]error:[/] {check.task} {check.check}: {one_line(check.reason)}",
            highlight=False,
            soft_wrap=True,
        )
    if failed:
        raise typer.Exit(ExitCode.FAILED)


def check_table(checks: list, roots: dict | None = None) -> Table:
    """One row per check: task, check, target (relative to the task's weights folder in
    ``roots`` when it is in it), result, reason."""
    from rich.table import Table

    table = Table("task", "check", "target", "result", "reason")
    for check in checks:
        if check.ok:
            result = "[green]updated[/]" if check.details.get("updated") else "[green]ok[/]"
        else:
            result = "[red]FAILED[/]"
        target = _short(check.target, (roots or {}).get(check.task))
        table.add_row(check.task, check.check, one_line(target), result,
                      one_line(check.reason or ""))  # fmt: skip
    if roots and len(roots) == 1:
        table.caption = f"weights folder: {next(iter(roots.values()))}"
    return table


def _short(target: str, root: object) -> str:
    """``target`` relative to ``root`` when it lies in it (``--json`` keeps it whole)."""
    from pathlib import Path

    try:
        return str(Path(target).relative_to(Path(str(root))))
    except (ValueError, TypeError):
        return target


__all__ = ["check_table", "verify"]
