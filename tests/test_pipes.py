"""Machine output in pipelines: a reader that stops early (``| head``) is not an error."""

from __future__ import annotations

import subprocess
import sys


def test_closed_stdout_exits_quietly():
    """The reader closes the pipe before eyescan writes: no error line, exit code 141."""
    read_end_closed = subprocess.Popen(
        [sys.executable, "-m", "eyescan", "models", "vessels", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    read_end_closed.stdout.close()  # long before the interpreter has started
    _, stderr = read_end_closed.communicate(timeout=120)
    assert read_end_closed.returncode == 141, stderr.decode()
    assert stderr.decode().strip() == ""
