"""Fast start: --help and tasks must not import torch."""

from __future__ import annotations

import os
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


OMP_PROBE = """
import os, sys
sys.argv = ["eyescan", "--version"]
from eyescan.cli.app import main
try:
    main()
except SystemExit:
    pass
print("OMP_WAIT_POLICY=" + os.environ.get("OMP_WAIT_POLICY", ""))
"""


@pytest.mark.parametrize(("given", "expected"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_the_cli_makes_openmp_threads_sleep_when_idle_unless_told(given, expected):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if given:
        env["OMP_WAIT_POLICY"] = given
    result = subprocess.run(
        [sys.executable, "-c", OMP_PROBE], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.stdout.strip().endswith(f"OMP_WAIT_POLICY={expected}"), result.stderr
