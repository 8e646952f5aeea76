"""``eyescan tasks``, ``eyescan plugins`` and ``eyescan models TASK``: what is installed."""

from __future__ import annotations

from eyescan.cli.common import JsonOpt, TaskArg, handle_errors, out, print_json, registry


@handle_errors
def tasks(json_out: JsonOpt = False) -> None:
    """List the installed tasks (one per task plugin)."""
    from rich.table import Table

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


@handle_errors
def plugins(json_out: JsonOpt = False) -> None:
    """List installed plugins with versions, tasks, models and load errors."""
    from rich.table import Table

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


@handle_errors
def models(task: TaskArg, json_out: JsonOpt = False) -> None:
    """List a task's models with their parameter counts."""
    from rich.table import Table

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
