"""Helpers for testing eyescan plugins (import in your plugin's tests).

``invoke_cli(*args)`` runs the CLI in-process with separate stdout/stderr;
``json_lines(text)`` parses ``--json`` output; ``registry_with(name, plugin)``
builds a registry with an in-process plugin, the way the CLI would;
``load_script(path)`` imports a plugin's ``scripts/*.py`` (not a package) to test it.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

from eyescan.plugins import registry as plugins


def json_lines(text: str) -> list[dict[str, Any]]:
    """Parse JSON Lines output (every non-empty line must be a JSON object)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def load_script(path: Path) -> ModuleType:
    """Import the Python file ``path`` (a plugin's script) as a module named by its stem."""
    spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def invoke_cli(*args: Any):
    """Run ``eyescan ARGS`` in-process; returns click's Result (``stdout``, ``stderr``)."""
    from typer.testing import CliRunner

    from eyescan.cli.app import app

    return CliRunner().invoke(app, [str(a) for a in args])


def use_plugins(*extra: tuple[str, Any]) -> None:
    """Make the CLI see the installed plugins plus ``extra`` ``(name, plugin)`` pairs."""
    plugins.reset_registry(extra)


def registry_with(*extra: tuple[str, Any], entry_points: bool = False) -> plugins.Registry:
    """A fresh registry with only ``extra`` plugins (plus the installed ones if asked)."""
    return plugins.build_registry(extra, entry_points=entry_points)


#: Runs ``eyescan`` in a child process and, at its exit, writes the child's own peak
#: resident memory (``VmHWM``: the high-water mark of the memory map made at exec; the
#: kernel's ``ru_maxrss`` also counts the parent's pages copied by fork before exec).
_PEAK_MAIN = """
import atexit, runpy, sys
out = sys.argv.pop(1)
def peak():
    with open("/proc/self/status") as status:
        kib = next(line.split()[1] for line in status if line.startswith("VmHWM"))
    with open(out, "w") as handle:
        handle.write(kib)
atexit.register(peak)
sys.argv[0] = "eyescan"
runpy.run_module("eyescan", run_name="__main__", alter_sys=True)
"""


def eyescan_peak_memory(*args: Any, env: dict[str, str] | None = None) -> tuple[int, int, str]:
    """Run ``eyescan ARGS`` as a child process (Linux): ``(its peak RSS in bytes, exit
    code, stdout)``; stderr is discarded."""
    import os
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "peak"
        done = subprocess.run(
            [sys.executable, "-c", _PEAK_MAIN, str(report), *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env if env is not None else dict(os.environ),
        )
        peak = int(report.read_text()) * 1024 if report.exists() else 0
    return peak, done.returncode, done.stdout.decode("utf-8", "replace")
