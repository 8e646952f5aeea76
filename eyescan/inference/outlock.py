"""One ``eyescan predict`` at a time per ``--out``: a lock file, created exclusively.

``OUT/.eyescan.lock`` (a shard: ``OUT/.eyescan.shard-K-of-N.lock``, so shards
may share a folder) holds the owner's pid, host, start time and command line.
It is created with ``O_CREAT | O_EXCL`` (two runs cannot both get it) and
removed when the run ends. A lock whose process is gone (a kill -9, a crash,
a power cut) is stale: the next run takes it over and says so. A lock held
by another host cannot be checked and is respected.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eyescan.errors import EyescanError
from eyescan.inference.journal import OutputError, output_error

LOCK_NAME = ".eyescan.lock"
#: A lock file without readable contents younger than this may be being written right now.
UNREADABLE_GRACE_S = 10.0


class OutputLockedError(EyescanError):
    """Another run is writing into the same ``--out``."""

    code = "out_locked"


@dataclass
class OutLock:
    path: Path
    #: The contents of the stale lock this run took over (None when there was none).
    taken_over: dict[str, Any] | None = None

    def release(self) -> None:
        """Remove the lock if it is still this process's."""
        holder = _read(self.path)
        if holder is not None and holder.get("pid") == os.getpid() and _same_host(holder):
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> OutLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_name(shard: str | None = None) -> str:
    """The lock file's name: one per ``--out``, or one per shard (``shard-K-of-N``)."""
    return LOCK_NAME if shard is None else f".eyescan.{shard}.lock"


def acquire(out_dir: Path, name: str = LOCK_NAME) -> OutLock:
    """Create ``out_dir`` (if needed) and its lock; raises OutputLockedError when a live
    run holds it, OutputError when ``out_dir`` cannot be written."""
    out_dir = Path(out_dir)
    path = out_dir / name
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"--out {out_dir} is a file, not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(exc, out_dir) from None
    mine = json.dumps(_owner()).encode("utf-8")
    taken_over = None
    for _ in range(5):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            holder = _read(path)
            if _alive(holder, path):
                raise OutputLockedError(_held_message(out_dir, path, holder)) from None
            if _claim_stale(path, holder):
                taken_over = holder or {}
            continue
        except OSError as exc:
            raise output_error(exc, out_dir) from None
        try:
            os.write(fd, mine)
            os.fsync(fd)
        except OSError as exc:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise output_error(exc, path) from None
        os.close(fd)
        return OutLock(path, taken_over)
    raise OutputLockedError(
        f"{out_dir}: could not take the lock {path} (another run keeps taking it)"
    )


def shard_locks(out_dir: Path) -> list[Path]:
    """The lock files of shard runs in ``out_dir`` (shards may write there at once)."""
    return sorted(Path(out_dir).glob(".eyescan.shard-*.lock"))


def describe(holder: dict[str, Any]) -> str:
    """``pid 123 on host, started 2026-...``: who holds (or held) a lock."""
    if not holder:
        return "unknown owner"
    return (
        f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
        f"started {holder.get('started', '?')}"
    )


def _held_message(out_dir: Path, path: Path, holder: dict[str, Any] | None) -> str:
    return (
        f"{out_dir} is in use by another eyescan run ({describe(holder or {})}); "
        f"wait for it to finish or choose another --out (if that run is gone, delete {path})"
    )


def _owner() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "process_start": _process_start(os.getpid()),
        "command": " ".join(sys.argv),
    }


def _process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _read(path: Path) -> dict[str, Any] | None:
    try:
        holder = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def _same_host(holder: dict[str, Any]) -> bool:
    return holder.get("host") == socket.gethostname()


def _alive(holder: dict[str, Any] | None, path: Path) -> bool:
    """Whether the lock's owner may still be running."""
    if holder is None:  # being written this instant, or cut short by a kill while it was
        try:
            return time.time() - path.stat().st_mtime < UNREADABLE_GRACE_S
        except OSError:
            return False  # gone meanwhile: try again
    if not _same_host(holder):
        return True  # cannot look at another machine's processes
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    started = holder.get("process_start")
    now = _process_start(pid)
    return started is None or now is None or started == now  # else: the pid was reused


def _claim_stale(path: Path, holder: dict[str, Any] | None) -> bool:
    """Move a stale lock aside (one claimant wins); False when it changed meanwhile."""
    aside = path.with_name(f"{path.name}.stale-{os.getpid()}")
    try:
        os.replace(path, aside)
    except FileNotFoundError:
        return False  # another run claimed it first
    if _read(aside) != holder:  # a live lock was created in between: put it back
        try:
            os.link(aside, path)
        except OSError:
            pass
        aside.unlink(missing_ok=True)
        return False
    aside.unlink(missing_ok=True)
    return True
