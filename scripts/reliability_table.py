"""Run the reliability tests and print the figures they measured as a Markdown table.

    python scripts/reliability_table.py            # run the tests, print the table
    python scripts/reliability_table.py --write    # ... and put it in docs/reliability.md
    python scripts/reliability_table.py tests/test_kill9.py   # only these tests

The tests write their figures (kills, images finished at each kill, results
lost, ...) as one JSON file per run into the folder named by
``EYESCAN_RELIABILITY_OUT`` (tests/figures.py); this script sets it, runs
pytest, and turns every file into a row. ``--write`` replaces the table
between the ``reliability-table`` markers of docs/reliability.md, so every
figure there comes from this command. Exit code: pytest's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "reliability.md"
TESTS = [
    "tests/test_bad_inputs.py",
    "tests/test_bad_inputs_tasks.py",
    "tests/test_memory_limits.py",
    "tests/test_resume.py",
    "tests/test_kill9.py",
    "tests/test_out_folder.py",
]
BEGIN = "<!-- reliability-table: begin (python scripts/reliability_table.py --write) -->"
END = "<!-- reliability-table: end -->"


def run_tests(tests: list[str], folder: Path) -> tuple[int, str, float]:
    """pytest on ``tests`` with the figures going to ``folder``: (exit code, summary, seconds)."""
    env = {**os.environ, "EYESCAN_RELIABILITY_OUT": str(folder), "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    sys.stderr.write(result.stdout[-3000:] + result.stderr[-2000:])
    lines = [x for x in result.stdout.splitlines() if re.search(r"\d+ (passed|failed)", x)]
    summary = re.sub(r" in [\d.]+s\b.*$", "", lines[-1].strip("= ")) if lines else "no summary"
    return result.returncode, summary, seconds


def _value(value: object) -> str:
    if isinstance(value, list) and all(isinstance(v, (int, float)) for v in value):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if isinstance(value, list):  # a list of problems: how many
        return str(len(value))
    return str(value)


def table(folder: Path, summary: str, seconds: float) -> str:
    """The Markdown block: how it was made, then one row per run."""
    rows = []
    for path in sorted(folder.glob("*.json")):
        figures = json.loads(path.read_text(encoding="utf-8"))
        name = str(figures.pop("run", path.stem))
        cells = "; ".join(f"{k.replace('_', ' ')}: {_value(v)}" for k, v in figures.items())
        rows.append(f"| {name} | {cells} |")
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    head = (
        f"Last run: {stamp}, {summary} in {seconds:.0f} s "
        f"({os.cpu_count()} CPUs, Python {platform.python_version()}).\n\n"
        "| run | figures |\n| --- | --- |"
    )
    return "\n".join([head, *rows]) + "\n"


def write_doc(text: str, doc: Path = DOC, begin: str = BEGIN, end: str = END) -> None:
    """Replace what lies between the ``begin`` and ``end`` marker lines of ``doc``."""
    content = doc.read_text(encoding="utf-8")
    if begin not in content or end not in content:
        raise SystemExit(f"{doc}: no {begin!r} ... {end!r} markers")
    before, rest = content.split(begin, 1)
    _, after = rest.split(end, 1)
    doc.write_text(f"{before}{begin}\n{text}{end}{after}", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tests", nargs="*", help="test files (default: the reliability tests)")
    parser.add_argument("--write", action="store_true", help=f"put the table in {DOC.name}")
    args = parser.parse_args()
    tests = args.tests or [t for t in TESTS if (ROOT / t).exists()]
    with tempfile.TemporaryDirectory() as tmp:
        code, summary, seconds = run_tests(tests, Path(tmp))
        text = table(Path(tmp), summary, seconds)
    print(text, end="")
    if args.write:
        if code != 0:
            print(f"tests failed (exit {code}): {DOC} left as it was", file=sys.stderr)
        else:
            write_doc(text)
    return code


if __name__ == "__main__":
    sys.exit(main())
