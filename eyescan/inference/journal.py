"""``predictions.jsonl`` appended as each image finishes, so a killed run keeps its records.

A line is written in one ``write`` on a file opened for appending and flushed
at once (a kill -9 loses no finished record); the file is fsync'ed at most
once a second and when the run ends. A write that fails part-way (a full
disk) is cut back, so the file never holds a torn line of ours. A torn last
line left by a kill is dropped when the run is resumed. At the end of a run
the file is rewritten atomically in input order, one record per input, as an
uninterrupted run writes it.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from eyescan.errors import EyescanError
from eyescan.imaging.imageio import write_text
from eyescan.reports.records import dumps, read_jsonl

#: Seconds between fsyncs of the appended file (a kill -9 needs none: the lines are flushed).
FSYNC_INTERVAL = 1.0
#: errno values that stop a run: no later image could be written either.
FATAL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


class OutputError(EyescanError):
    """``--out`` cannot be written (full disk, read-only, not a folder): the run stops."""

    code = "io_error"


def is_fatal(exc: BaseException) -> bool:
    """Whether an exception means no output can be written any more (full disk, read-only)."""
    return isinstance(exc, OSError) and exc.errno in FATAL_ERRNOS


def output_error(exc: OSError, path: Path | str | None = None) -> OutputError:
    """The one-line error for an output that cannot be written."""
    where = exc.filename or path
    reason = exc.strerror or str(exc)
    return OutputError(f"cannot write {where}: {reason}" if where else f"cannot write: {reason}")


def _reused(record: dict[str, Any]) -> bool:
    """A record ``--resume`` reused (a screening record: every task's was reused)."""
    tasks = record.get("tasks")
    if isinstance(tasks, dict) and tasks:
        return all(isinstance(t, dict) and t.get("resumed") for t in tasks.values())
    return bool(record.get("resumed"))


def _append(fd: int, data: bytes) -> None:
    written = 0
    while written < len(data):
        written += os.write(fd, data[written:])


class RecordLog:
    """The run's JSON Lines file, appended to as records come (see the module docstring).

    With ``resume`` the records already in the file are kept (a torn last
    line, or any line that is not a JSON object, is dropped and reported in
    :attr:`dropped`); without, the file starts empty.
    """

    def __init__(self, path: Path, resume: bool = False) -> None:
        self.path = Path(path)
        self.dropped = 0
        self._kept: dict[str, str] = {}  # id -> line, of the records kept from before
        self._synced = time.monotonic()
        kept: list[dict[str, Any]] = []
        if resume and self.path.exists():
            try:
                kept, self.dropped = read_jsonl(self.path, repair=True)
            except OSError as exc:
                raise output_error(exc, self.path) from None
            self._kept = {str(r.get("id")): dumps(r) for r in kept}
        try:
            if not resume or self.dropped:  # start empty, or without the torn line
                write_text(self.path, "".join(line + "\n" for line in self._kept.values()))
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise output_error(exc, self.path) from None

    def add(self, record: dict[str, Any]) -> None:
        """Append one record (a resumed record already in the file is not written twice)."""
        if _reused(record) and str(record.get("id")) in self._kept:
            return
        data = (dumps(record) + "\n").encode("utf-8")
        size = os.fstat(self._fd).st_size
        try:
            _append(self._fd, data)
        except OSError as exc:
            try:  # no torn line of ours stays behind
                os.ftruncate(self._fd, size)
            except OSError:
                pass
            raise output_error(exc, self.path) from None
        if time.monotonic() - self._synced >= FSYNC_INTERVAL:
            self.sync()

    def sync(self) -> None:
        try:
            os.fsync(self._fd)
        except OSError:  # a file system without fsync: the lines are written all the same
            pass
        self._synced = time.monotonic()

    def finish(self, records: Iterable[dict[str, Any]]) -> None:
        """Replace the file, atomically, by ``records`` (the run's, in input order)."""
        self.close()
        try:
            write_text(self.path, "".join(dumps(r) + "\n" for r in records))
        except OSError as exc:  # the appended lines stay: every finished record is kept
            raise output_error(exc, self.path) from None

    def close(self) -> None:
        if self._fd >= 0:
            self.sync()
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> RecordLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
