"""kill -9 at random points of ``eyescan predict``, then ``--resume``: nothing finished is lost.

One task (vessels) and a multi-task run (vessels, toymap, toyuse: a provider and
its consumer, each writing ``out/<task>/`` and the screening records in
``out/predictions.jsonl``). Each run is killed with SIGKILL at a random point
(after a random number of finished records, plus a random fraction of an
image), resumed with ``--resume``, killed again, and so on; a last resume runs
to the end. After every kill:

- every line of ``predictions.jsonl`` is a whole record, except at most a torn
  last line; every record in it has its files on disk, and they decode;
- every image that was complete before the kill is still complete;
- ``eyescan report OUT`` works on the interrupted run (and on a task's folder);
- the next run takes over the lock the killed one left (and says so).

The last run must skip exactly the images complete at the last kill, finish
the rest and leave one record per image, in input order, no temporary files
and no lock. The first run is also asked to share its ``--out`` with a second
``predict``, which must refuse.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

import pytest
from PIL import Image

from eyescan.inference import outlock
from eyescan.testing import invoke_cli

from . import killing, tiny_vessels, toy_pair
from .figures import record as record_figures
from .tiny_vessels import fundus_png

vessels_weights = tiny_vessels.vessels_weights  # the session fixture

N_IMAGES = 16
KILLS = 4
SINGLE = ("vessels",)
MULTI = ("vessels", "toymap", "toyuse")


def _lines(path: Path) -> tuple[list[dict], bool]:
    """The whole records of a JSON Lines file and whether its last line is torn."""
    if not path.exists():
        return [], False
    *whole, tail = path.read_bytes().split(b"\n")
    records = [json.loads(line) for line in whole if line.strip()]  # each must parse
    return records, bool(tail.strip())


def _decodes(path: Path) -> bool:
    try:
        with Image.open(path) as image:
            image.load()
        return True
    except Exception:
        return False


def _task_complete(folder: Path, stem: str) -> bool:
    """The per-image record says ok and every file it names exists and decodes."""
    try:
        record = json.loads((folder / f"{stem}.json").read_text())
    except (OSError, ValueError):
        return False
    files = [folder / f for f in record.get("files", {}).values()]
    return record["ok"] and all(f.is_file() and (f.suffix != ".png" or _decodes(f)) for f in files)


def _complete(out: Path, tasks: tuple[str, ...], stems: list[str]) -> set[str]:
    folders = [out] if len(tasks) == 1 else [out / t for t in tasks]
    return {s for s in stems if all(_task_complete(f, s) for f in folders)}


def _logs(out: Path, tasks: tuple[str, ...]) -> list[Path]:
    extra = [] if len(tasks) == 1 else [out / t / "predictions.jsonl" for t in tasks]
    return [out / "predictions.jsonl", *extra]


def _wait_lines(path: Path, count: int, process, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while process.is_alive() and time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= count:
            return
        time.sleep(0.005)


def _temporaries(out: Path) -> list[Path]:
    return [p for p in out.rglob(".*") if p.is_file() and not p.name.startswith(".eyescan")]


def _kill_and_resume(tmp_path, weights, tasks, capsys, pair=None) -> dict:
    folder = tmp_path / "in"
    stems = [f"eye{i:02d}" for i in range(N_IMAGES)]
    for i, stem in enumerate(stems):
        fundus_png(folder / f"{stem}.png", size=128, seed=i)
    out = tmp_path / "out"
    weights_arg = str(weights) if len(tasks) == 1 else f"vessels={weights}"
    args = ["predict", ",".join(tasks), folder, "--weights", weights_arg, "--out", out]
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    complete: set[str] = set()
    figures = {"kills": 0, "complete_at_kills": [], "torn_lines": 0, "lost": 0}
    took_over = refused = 0
    stale = False  # a lock left by a killed run
    for cycle in range(KILLS):
        if len(complete) >= N_IMAGES - 1:
            break
        log_file = tmp_path / f"run{cycle}.txt"
        process = killing.start([*args, *(["--resume"] if cycle else [])], log_file, pair)
        if cycle == 0:  # while it holds --out, no other run gets it
            _wait_lines(out / "predictions.jsonl", 1, process)
            if process.is_alive():
                with pytest.raises(outlock.OutputLockedError, match=f"pid {process.pid} "):
                    outlock.acquire(out)
                refused += 1
        # the kill point: after a random number of new records (0: during start-up),
        # then a random part of the next image
        start = len(_lines(out / "predictions.jsonl")[0])
        remaining = N_IMAGES - len(complete)
        kill_after = start + rng.randint(0, (remaining - 1) // 2)
        _wait_lines(out / "predictions.jsonl", kill_after, process)
        time.sleep(rng.uniform(0.0, 0.1))
        if process.is_alive():
            os.kill(process.pid, signal.SIGKILL)
        process.join(30)
        err_file = Path(f"{log_file}.err")  # absent: killed before it was set up
        stderr = err_file.read_text() if err_file.exists() else ""
        if process.exitcode == 0:  # it finished first (before the check or the kill)
            took_over += "took over" in stderr
            stale = (out / ".eyescan.lock").exists()
            complete = _complete(out, tasks, stems)
            break
        assert process.exitcode == -signal.SIGKILL
        figures["kills"] += 1
        assert "Traceback" not in stderr, stderr
        if _lock_pid(out) == process.pid:  # it had got the lock: it took over a stale one
            assert ("took over" in stderr) == stale, stderr
        took_over += "took over" in stderr
        stale = (out / ".eyescan.lock").exists()
        now = _complete(out, tasks, stems)
        lost = complete - now
        assert not lost, f"seed {seed}: finished before kill {cycle + 1}, gone after: {lost}"
        complete = now
        figures["complete_at_kills"].append(len(now))
        for path in _logs(out, tasks):
            records, torn = _lines(path)
            figures["torn_lines"] += torn
            assert {r["id"] for r in records} <= complete, f"seed {seed}: {path} ahead of files"
        for folder in [out] if len(tasks) == 1 else [out, out / tasks[cycle % len(tasks)]]:
            html = tmp_path / f"report{cycle}-{folder.name}.html"
            report = invoke_cli("report", folder, "--out", html)
            assert report.exit_code == 0, report.output
            assert html.is_file()

    last = killing.start([*args, "--resume", "--json"], tmp_path / "last.txt", pair)
    last.join(120)
    stderr = Path(f"{tmp_path / 'last.txt'}.err").read_text()
    assert last.exitcode == 0, stderr
    assert ("took over" in stderr) == stale, stderr
    took_over += stale
    records = [json.loads(line) for line in (tmp_path / "last.txt").read_text().splitlines()]
    assert [r["id"] for r in records] == stems and all(r["ok"] for r in records)
    resumed = {r["id"] for r in records if _all_resumed(r)}
    assert resumed == complete, f"seed {seed}: skipped {resumed}, complete {complete}"
    assert _complete(out, tasks, stems) == set(stems)
    for path in _logs(out, tasks):
        logged, torn = _lines(path)
        assert [r["id"] for r in logged] == stems and not torn
    assert not _temporaries(out), _temporaries(out)
    assert not list(out.rglob(".eyescan*.lock"))  # --out's and, multi-task, each task's
    figures.update(refused_second_run=refused, stale_locks_taken_over=took_over)
    figures.update(redone=N_IMAGES - len(resumed), lost=0, seed=seed)
    name = "kill -9 " + ("one task" if len(tasks) == 1 else "multi-task")
    record_figures(capsys, name, images=N_IMAGES, **figures)
    return figures


def _lock_pid(out: Path) -> int | None:
    try:
        return json.loads((out / ".eyescan.lock").read_text())["pid"]
    except (OSError, ValueError, KeyError):
        return None


def _all_resumed(record: dict) -> bool:
    if "tasks" in record:
        return all(part.get("resumed") for part in record["tasks"].values())
    return bool(record.get("resumed"))


def test_kill9_at_random_points_single_task(vessels_weights, tmp_path, capsys):
    figures = _kill_and_resume(tmp_path, vessels_weights, SINGLE, capsys)
    assert figures["kills"] >= 2 and figures["refused_second_run"] == 1


def test_kill9_at_random_points_multi_task(vessels_weights, tmp_path, capsys):
    pair = toy_pair.write_weights(tmp_path / "pair")
    figures = _kill_and_resume(tmp_path, vessels_weights, MULTI, capsys, pair)
    assert figures["kills"] >= 2


@pytest.fixture(autouse=True, scope="module")
def _fork_server():
    """Start the fork server once for the module (its imports take a few seconds)."""
    killing.context()
    yield
