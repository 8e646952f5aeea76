"""The command line: one typer app (`app`) and `main`, the console-script entry point."""

from eyescan.cli.app import app, main

__all__ = ["app", "main"]
