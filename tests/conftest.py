"""Shared fixtures: a fresh plugin registry per test and a CLI runner."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eyescan.plugins import registry as plugins

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def fresh_registry() -> Iterator[None]:
    """Every test starts from the installed plugins only."""
    plugins.reset_registry()
    yield
    plugins.reset_registry()


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def invoke(runner: CliRunner):
    """Run the CLI in-process; returns the click Result (stdout and stderr apart)."""
    from eyescan.cli.app import app

    def run(*args: str):
        return runner.invoke(app, [str(a) for a in args])

    return run
