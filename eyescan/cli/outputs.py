"""A predict run's outputs: the ``--out`` lock, ``predictions.jsonl`` written as images
finish, and one line (results kept) when ``--out`` cannot be written.

Shared by the single-task (cli/predict.py) and multi-task (cli/screen.py) runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from eyescan.cli.common import ExitCode, error, note


def open_log(path: Path, resume: bool) -> Any:
    """The run's ``predictions.jsonl``, appended to as images finish (see journal.RecordLog)."""
    from eyescan.inference.journal import RecordLog

    log = RecordLog(path, resume)
    if log.dropped:
        note(f"{path}: dropped {log.dropped} line(s) cut short by an interrupted run")
    return log


@contextmanager
def kept_on_failure(log: Any, records: list[Any]) -> Iterator[None]:
    """A run stopped because ``--out`` cannot be written (full disk, read-only): one line
    saying so and what was kept (the records appended so far, each image's files)."""
    from eyescan.inference.journal import OutputError

    try:
        yield
    except OutputError as exc:
        log.close()
        raise error(
            f"{exc}; run stopped, {len(records)} finished result(s) kept in {log.path}; "
            "fix that, then rerun with --resume to finish",
            ExitCode.FAILED,
        ) from None


def write_report_file(write: Any, records: list[Any], out_dir: Path, path: Path) -> Path:
    """Write the HTML report; a full disk or unwritable path is one line, results kept."""
    from eyescan.inference.journal import output_error

    try:
        return write(records, out_dir, path)
    except OSError as exc:
        raise error(f"report not written: {output_error(exc, path)}", ExitCode.FAILED) from None


def hold_out(out_dir: Path, shard: Any = None, tasks: list[str] = ()) -> ExitStack:
    """Lock ``--out`` for this run, and ``--out/<task>`` for each task of a multi-task run
    (each is what a single-task run into it would lock); a shard
    (:class:`~eyescan.inference.sharding.Shard`) locks its own part. Says so when it took
    over the stale locks of a run that is gone. Close the returned stack to release them."""
    from eyescan.imaging.imageio import remove_temporaries
    from eyescan.inference import outlock

    name = outlock.lock_name(None if shard is None else shard.name)
    stack = ExitStack()
    try:
        locks = [stack.enter_context(outlock.acquire(out_dir, name))]
        locks += [stack.enter_context(outlock.acquire(out_dir / task, name)) for task in tasks]
    except BaseException:
        stack.close()
        raise
    stale = [lock for lock in locks if lock.taken_over is not None]
    if stale:
        note(
            f"took over {', '.join(str(lock.path) for lock in stale)}: the run that held "
            f"{'it' if len(stale) == 1 else 'them'} is gone "
            f"({outlock.describe(stale[0].taken_over)})"
        )
    if shard is None and not outlock.shard_locks(out_dir):  # no one else writes there
        remove_temporaries(out_dir)
    return stack
