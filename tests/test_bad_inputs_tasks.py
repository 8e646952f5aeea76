"""The bad-input corpus (tests/test_bad_inputs.py) through every shipped task and the
multi-task run, with ``--report`` and ``eyescan report``, on the shipped weights.

Every input gets one record; the good ones are complete (files and per-image JSON),
each bad one has an error code and a one-line message that starts with the file's
path and holds no internal exception text when the photo is merely too small or too
thin for the task; no traceback; exit code 1; the HTML report has a row per input.

The figures of each run go through tests/figures.py (printed, and into the table of
docs/reliability.md by ``python scripts/reliability_table.py --write``).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest

from eyescan.plugins.registry import get_registry
from eyescan.reports.records import validate_prediction
from eyescan.testing import invoke_cli, json_lines

from .figures import record
from .test_bad_inputs import CORPUS, OK, UNSUITABLE, build_corpus, expected_outcome

TASKS = ["drgrade", "redlesion", "rop", "strabismus", "vessels"]
#: Tasks that get the whole corpus here (a fraction of a second per good photo). The
#: others, and the multi-task run, get :data:`SUBSET`; the whole corpus also goes through
#: vessels in tests/test_bad_inputs.py (tiny weights, without ``--report``).
FULL = {"rop", "strabismus"}
#: Every input that fails before the model, every size, the blank and odd-content
#: images, one good photo and one odd format: every kind of bad input once.
SUBSET = sorted(
    {name for name, (_, outcome, _) in CORPUS.items() if outcome != OK}
    | {"good_a.png", "rgb16.png", "black.png", "white.png", "noise.png", "stripe.png"}
)
#: Internal exception text a user must never see for a photo that is merely unsuitable.
INTERNAL = re.compile(r"Traceback|\w+Error\b|plugin \w+ failed|Exception")


@dataclass
class Figures:
    """What one run of the corpus gave: the figures in docs/reliability.md."""

    run: str
    inputs: int = 0
    bad: int = 0
    crashes: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)

    def publish(self, capsys: Any) -> None:
        record(
            capsys,
            f"bad inputs: {self.run}",
            inputs=self.inputs,
            bad_inputs=self.bad,
            crashes=len(self.crashes),
            results_lost=len(self.lost),
            misclassified=len(self.wrong),
        )

    def check(self) -> None:
        assert self.crashes == [] and self.lost == [] and self.wrong == [], asdict(self)


def _corpus(tmp_path: Path, tasks: list[str], subset: bool) -> dict[str, dict[str, str]]:
    """Write the corpus; ``{input: {task: expected outcome}}``."""
    registry = get_registry()
    written = build_corpus(tmp_path / "in", SUBSET if subset else None)
    return {
        path: {t: expected_outcome(outcome, registry.task(t)) for t in tasks}
        for path, outcome in written.items()
    }


def _check_record(
    figures: Figures, record: dict[str, Any], want: str, out: Path, task: str
) -> None:
    """One task's record of one input against its expected outcome."""
    path = record["input"]
    problems = validate_prediction(record)
    if problems:
        figures.crashes.append(f"{path}: invalid record: {problems}")
    if want == OK:
        files = [out / f for f in record["files"].values()]
        if not record["ok"]:
            figures.lost.append(f"{path}: {task}: {record['error']}")
        elif not all(f.is_file() for f in files):
            figures.lost.append(f"{path}: {task}: missing files {record['files']}")
        elif not (out / f"{record['id']}.json").is_file():
            figures.lost.append(f"{path}: {task}: no per-image JSON")
        return
    error = record["error"] or {}
    message = error.get("message", "")
    if record["ok"] or error.get("code") != want:
        figures.wrong.append(f"{path}: {task}: expected {want}, got {record['error']}")
    if "\n" in message or not message.startswith(path):
        figures.crashes.append(f"{path}: {task}: not one line naming the file: {message!r}")
    if want == UNSUITABLE:
        said = message[len(path) :]
        if INTERNAL.search(said) or "too" not in said or f"task {task}" not in said:
            figures.crashes.append(f"{path}: {task}: not a user's message: {message!r}")


def _check_exit(figures: Figures, result: Any) -> None:
    stderr = result.stderr
    if result.exit_code != 1 or "Traceback" in stderr:
        figures.crashes.append(f"exit code {result.exit_code}; stderr: {stderr[-2000:]}")


def _check_report(figures: Figures, page: Path, rows: int, failed: int) -> None:
    """An HTML report with a row per input, the failed ones marked."""
    if not page.is_file():
        figures.crashes.append(f"no report {page}")
        return
    text = page.read_text(encoding="utf-8")
    found = len(re.findall(r'<tr class="image-row', text))
    marked = len(re.findall(r'<tr class="image-row[^"]*\bfailed\b', text))
    if (found, marked) != (rows, failed):
        figures.crashes.append(f"{page}: {found} rows ({marked} failed), not {rows} ({failed})")


@pytest.mark.parametrize("task", TASKS)
def test_corpus_through_every_task(task, tmp_path, capsys):
    """``predict TASK CORPUS --report``, then ``eyescan report`` on its folder."""
    expected = {p: o[task] for p, o in _corpus(tmp_path, [task], task not in FULL).items()}
    out = tmp_path / "out"
    result = invoke_cli(
        "predict", task, tmp_path / "in", "--out", out, "--json", "--report", out / "run.html"
    )
    figures = Figures(f"{task} --report", len(expected), sum(o != OK for o in expected.values()))
    _check_exit(figures, result)
    records = {r["input"]: r for r in json_lines(result.stdout)}
    for path, want in expected.items():
        if path not in records:
            figures.crashes.append(f"{path}: no record")
        else:
            _check_record(figures, records[path], want, out, task)
    if set(records) != set(expected):
        figures.crashes.append(f"records of unexpected inputs: {set(records) - set(expected)}")
    failed = sum(not r["ok"] for r in records.values())
    _check_report(figures, out / "run.html", len(records), failed)
    again = invoke_cli("report", out, "--out", out / "again.html")
    if again.exit_code != 0 or "Traceback" in again.stderr:
        figures.crashes.append(f"eyescan report: exit {again.exit_code}: {again.stderr[-2000:]}")
    _check_report(figures, out / "again.html", len(records), failed)
    figures.publish(capsys)
    figures.check()


def test_corpus_through_the_multi_task_run(tmp_path, capsys):
    """``predict vessels,drgrade,redlesion`` (no ``--report``), then ``eyescan report``."""
    tasks = ["vessels", "drgrade", "redlesion"]
    expected = _corpus(tmp_path, tasks, subset=True)
    out = tmp_path / "out"
    result = invoke_cli("predict", ",".join(tasks), tmp_path / "in", "--out", out, "--json")
    figures = Figures(
        ",".join(tasks),
        len(expected),
        sum(any(o != OK for o in wants.values()) for wants in expected.values()),
    )
    _check_exit(figures, result)
    records = {r["input"]: r for r in json_lines(result.stdout)}
    for path, wants in expected.items():
        record = records.get(path)
        if record is None:
            figures.crashes.append(f"{path}: no record")
            continue
        if record["ok"] != all(w == OK for w in wants.values()):
            figures.wrong.append(f"{path}: ok is {record['ok']}, expected {wants}")
        for task, want in wants.items():
            one = record["tasks"].get(task)
            if one is None:
                figures.crashes.append(f"{path}: no {task} record")
                continue
            # the screening record's files are relative to --out; the task's own to out/TASK
            files = {k: v.removeprefix(f"{task}/") for k, v in one["files"].items()}
            _check_record(figures, {**one, "files": files}, want, out / task, task)
    if set(records) != set(expected):
        figures.crashes.append(f"records of unexpected inputs: {set(records) - set(expected)}")
    report = invoke_cli("report", out)
    if report.exit_code != 0 or "Traceback" in report.stderr:
        figures.crashes.append(f"eyescan report: exit {report.exit_code}: {report.stderr[-2000:]}")
    failed = sum(not r["ok"] for r in records.values())
    _check_report(figures, out / "report.html", len(records), failed)
    for task in tasks:  # each task's folder is a prediction folder of its own
        single = invoke_cli("report", out / task)
        if single.exit_code != 0:
            figures.crashes.append(f"eyescan report {task}: {single.stderr[-2000:]}")
    figures.publish(capsys)
    figures.check()


def test_unsuitable_messages_name_task_and_limit(tmp_path):
    """A 3×4000 photo through strabismus: the limit in words, not torch's message."""
    from PIL import Image

    Image.new("RGB", (3, 4000), (90, 60, 40)).save(tmp_path / "thin.png")
    result = invoke_cli("predict", "strabismus", tmp_path / "thin.png", "--out", tmp_path / "o")
    assert result.exit_code == 1
    line = f"{tmp_path / 'thin.png'}: image too small/thin for task strabismus (3x4000 pixels;"
    assert line in " ".join(result.stderr.split())
    assert "minimum 32 px on each side" in result.stderr
    assert "RuntimeError" not in result.stderr and "Traceback" not in result.stderr
