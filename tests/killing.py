"""``eyescan`` runs to kill with SIGKILL, started without paying Python's start-up each time.

Each run is a real child process running ``eyescan.cli.app.main`` with its own
argv, forked from a multiprocessing fork server that has already imported
eyescan, torch and the plugins (and run nothing: no thread pools exist to
break in a fork). A kill cycle then costs milliseconds instead of seconds of
imports. The child's stdout and stderr go to a file.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from pathlib import Path
from typing import Any

_context: Any = None


def context() -> Any:
    """The fork-server context (started once per test session, on first use)."""
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload([__name__ + "_preload"])
    return _context


def start(argv: list[Any], output: Path, pair_weights: Path | None = None) -> Any:
    """``eyescan ARGV`` as a child process (a ``multiprocessing.Process``, started), its
    stdout to ``output`` and stderr to ``output`` + ``.err``; ``pair_weights``: also
    register the toy provider/consumer plugins (tests/toy_pair.py)."""
    process = context().Process(
        target=_run, args=([str(a) for a in argv], str(output), pair_weights), daemon=True
    )
    process.start()
    return process


def _run(argv: list[str], output: str, pair_weights: Path | None) -> None:
    for fd, name in ((1, output), (2, output + ".err")):
        os.dup2(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
    os.environ.pop("EYESCAN_DEBUG", None)
    import torch

    torch.set_num_threads(1)
    from eyescan.plugins import registry

    extra = []
    if pair_weights is not None:
        from tests.toy_pair import PairPlugin

        extra = [("pair", PairPlugin(Path(pair_weights)))]
    registry.reset_registry(extra)
    sys.argv = ["eyescan", *argv]
    from eyescan.cli.app import main

    main()
