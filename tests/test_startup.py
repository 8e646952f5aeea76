"""Fast start: --help and tasks must not import torch."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

PROBE = """
import sys
from eyescan.cli.app import app
try:
    app({args!r})
except SystemExit:
    pass
print("TORCH-IMPORTED" if "torch" in sys.modules else "TORCH-FREE")
"""


@pytest.mark.parametrize("args", [["--help"], ["tasks"], ["plugins"]])
def test_no_torch_import(args):
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(args=args)], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip().endswith("TORCH-FREE"), result.stdout + result.stderr


def test_help_is_fast():
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "eyescan", "--help"], capture_output=True, check=True, timeout=60
    )
    assert time.perf_counter() - started < 5.0  # generous for loaded CI machines
