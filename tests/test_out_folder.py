"""``--out`` under stress: records appended as images finish, one run at a time (the lock),
eyescan's own outputs never read back as inputs, a full disk or an unwritable folder."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

from eyescan.imaging import imageio
from eyescan.inference import journal, outlock
from eyescan.reports.records import read_jsonl
from eyescan.testing import invoke_cli, json_lines

from . import tiny_vessels
from .figures import record as record_figures
from .tiny_vessels import fundus_png

vessels_weights = tiny_vessels.vessels_weights  # the session fixture


def _photos(folder: Path, count: int) -> Path:
    for i in range(count):
        fundus_png(folder / f"eye{i:02d}.png", seed=i)
    return folder


def _predict(weights: Path, *args: object):
    return invoke_cli("predict", "vessels", *args, "--weights", weights)


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def _hidden(out: Path) -> list[Path]:
    """Temporary files (``.NAME.XXXXXXXX.SUFFIX``) left in ``out``."""
    return [p for p in out.rglob(".*") if p.is_file() and not p.name.startswith(".eyescan")]


def _whole(out: Path) -> set[str]:
    """Ids whose record is ok and whose files all exist and decode; asserts that every
    record in predictions.jsonl is one of them and that no line is torn."""
    from PIL import Image

    done = set()
    for path in out.glob("*.json"):
        record = json.loads(path.read_text())
        if record["ok"]:
            for name in record["files"].values():
                with Image.open(out / name) as image:
                    image.load()
            done.add(record["id"])
    text = (out / "predictions.jsonl").read_text()
    assert text == "" or text.endswith("\n")
    assert {json.loads(line)["id"] for line in text.splitlines()} <= done
    return done


# -- predictions.jsonl ---------------------------------------------------------------


def test_torn_last_line_is_dropped_on_resume_and_in_reports(vessels_weights, tmp_path):
    folder, out = _photos(tmp_path / "in", 3), tmp_path / "out"
    assert _predict(vessels_weights, folder, "--out", out).exit_code == 0
    log = out / "predictions.jsonl"
    lines = log.read_text().splitlines()
    log.write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2])  # a kill mid-line
    (out / "eye02.json").unlink()  # eye02 did not finish

    report = invoke_cli("report", out)
    assert report.exit_code == 0, report.output
    assert "cut short" in report.stderr and "(1 images)" in report.stderr

    resumed = _predict(vessels_weights, folder, "--out", out, "--resume", "--json")
    assert resumed.exit_code == 0, resumed.output
    assert "dropped 1 line(s) cut short" in resumed.stderr
    records = json_lines(resumed.stdout)
    assert [r.get("resumed", False) for r in records] == [True, True, False]
    assert [json.loads(x)["id"] for x in log.read_text().splitlines()] == [r["id"] for r in records]


def test_records_are_in_the_file_while_the_run_goes_on(vessels_weights, tmp_path, monkeypatch):
    """Each record is in predictions.jsonl before the next image is done."""
    folder, out = _photos(tmp_path / "in", 4), tmp_path / "out"
    seen = []
    add = journal.RecordLog.add

    def watching(self, record):
        add(self, record)
        seen.append(len(self.path.read_text().splitlines()))

    monkeypatch.setattr(journal.RecordLog, "add", watching)
    assert _predict(vessels_weights, folder, "--out", out).exit_code == 0
    assert seen == [1, 2, 3, 4]


def test_read_jsonl_keeps_the_last_record_of_an_id(tmp_path):
    path = tmp_path / "predictions.jsonl"
    lines = [{"id": "a", "ok": False}, {"id": "b", "ok": True}, {"id": "a", "ok": True}]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"id": "c", "o')
    records, dropped = read_jsonl(path)
    assert records == [{"id": "a", "ok": True}, {"id": "b", "ok": True}] and dropped == 1
    path.write_text('{"id": "a"}\nnot json\n{"id": "b"}\n')
    with pytest.raises(Exception, match="predictions.jsonl:2: not a JSON object"):
        read_jsonl(path)
    assert [r["id"] for r in read_jsonl(path, repair=True)[0]] == ["a", "b"]


def test_a_failed_append_leaves_no_torn_line(tmp_path, monkeypatch):
    log = journal.RecordLog(tmp_path / "predictions.jsonl")
    log.add({"id": "a", "ok": True})

    def half_then_full(fd, data):
        os.write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(journal, "_append", half_then_full)
    with pytest.raises(journal.OutputError, match="No space left on device"):
        log.add({"id": "b", "ok": True})
    log.close()
    assert (tmp_path / "predictions.jsonl").read_text() == '{"id": "a", "ok": true}\n'


# -- one run per --out ---------------------------------------------------------------


def _lock(out: Path, **owner: object) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / ".eyescan.lock"
    path.write_text(json.dumps({"host": socket.gethostname(), "started": "earlier", **owner}))
    return path


def test_a_held_out_folder_is_refused_and_a_stale_lock_taken_over(
    vessels_weights, tmp_path, capsys
):
    folder, out = _photos(tmp_path / "in", 2), tmp_path / "out"
    holder = subprocess.Popen(["sleep", "60"])  # a live process holds --out
    try:
        _lock(out, pid=holder.pid, process_start=outlock._process_start(holder.pid))
        refused = _predict(vessels_weights, folder, "--out", out)
        assert refused.exit_code == 1
        (line,) = refused.stderr.strip().splitlines()
        assert f"{out} is in use by another eyescan run (pid {holder.pid} on " in line
        assert not list(out.glob("*.json")) and not (out / "predictions.jsonl").exists()
    finally:
        holder.kill()
        holder.wait()
    taken = _predict(vessels_weights, folder, "--out", out)  # the holder is gone: stale
    assert taken.exit_code == 0, taken.output
    assert f"took over {out / '.eyescan.lock'}: the run that held it is gone (pid {holder.pid}" in (
        taken.stderr
    )
    assert not (out / ".eyescan.lock").exists()  # released at the end
    record_figures(capsys, "out lock", refused_while_held=1, stale_taken_over=1)


def test_stale_locks_of_every_kind(tmp_path):
    out = tmp_path / "out"
    _lock(out, pid=os.getpid(), process_start=-1)  # our pid, another process: pid reused
    lock = outlock.acquire(out)
    assert lock.taken_over["process_start"] == -1
    lock.release()
    _lock(out, pid=os.getpid(), host="another-machine")  # cannot be checked: respected
    with pytest.raises(outlock.OutputLockedError, match="on another-machine"):
        outlock.acquire(out)
    (out / ".eyescan.lock").write_text('{"pid": 12')  # cut short while written, just now
    with pytest.raises(outlock.OutputLockedError):
        outlock.acquire(out)
    old = os.stat(out / ".eyescan.lock").st_mtime - 2 * outlock.UNREADABLE_GRACE_S
    os.utime(out / ".eyescan.lock", (old, old))  # ... long ago: stale
    with outlock.acquire(out) as lock:
        assert lock.taken_over == {}
        with pytest.raises(outlock.OutputLockedError, match=f"pid {os.getpid()} "):
            outlock.acquire(out)  # held by a live run (this one)
        shard = outlock.acquire(out, outlock.lock_name("shard-1-of-2"))  # shards: their own
        shard.release()
    assert not list(out.iterdir())


def test_multi_task_run_locks_each_task_folder(tmp_path):
    from eyescan.plugins import registry as plugins

    from . import toy_pair

    plugins.reset_registry([("pair", toy_pair.PairPlugin(toy_pair.write_weights(tmp_path / "w")))])
    folder, out = _photos(tmp_path / "in", 1), tmp_path / "out"
    with outlock.acquire(out / "toymap"):  # a single-task run into out/toymap
        refused = invoke_cli("predict", "toymap,toyuse", folder, "--out", out)
        assert refused.exit_code == 1
        assert f"{out / 'toymap'} is in use by another eyescan run" in refused.stderr
    assert not (out / ".eyescan.lock").exists()  # the lock it had taken is given back
    result = invoke_cli("predict", "toymap,toyuse", folder, "--out", out)
    assert result.exit_code == 0, result.output
    assert not list(out.rglob(".eyescan*.lock"))


def test_shards_sharing_a_folder_do_not_lock_each_other_out(vessels_weights, tmp_path):
    folder, out = _photos(tmp_path / "in", 2), tmp_path / "out"
    with outlock.acquire(out, outlock.lock_name("shard-1-of-2")):  # shard 1 running
        result = _predict(vessels_weights, folder, "--out", out, "--shard", "2/2")
        assert result.exit_code == 0, result.output


def test_merge_into_a_held_folder_is_refused(tmp_path):
    (tmp_path / "part").mkdir()
    with outlock.acquire(tmp_path / "merged"):
        result = invoke_cli("merge", tmp_path / "part", "--out", tmp_path / "merged")
    assert result.exit_code == 1 and "is in use by another eyescan" in result.stderr


# -- outputs are not inputs ----------------------------------------------------------


def test_rerun_into_its_own_folder_reads_only_the_photos(
    vessels_weights, tmp_path, monkeypatch, capsys
):
    folder = _photos(tmp_path / "in", 2)
    monkeypatch.chdir(folder)
    counts = []
    for _ in range(2):  # ``eyescan predict vessels . --out out``, twice
        result = _predict(vessels_weights, ".", "--out", "out", "--json")
        assert result.exit_code == 0, result.output
        counts.append(len(json_lines(result.stdout)))
    assert counts == [2, 2]
    assert "not read as input: out (the --out folder)" in result.stderr

    other = _predict(vessels_weights, ".", "--out", "second", "--json")  # an old output folder
    assert other.exit_code == 0 and len(json_lines(other.stdout)) == 2
    assert "out (eyescan output: predictions.jsonl)" in other.stderr

    same = [_predict(vessels_weights, ".", "--out", ".", "--json") for _ in range(2)]
    assert [len(json_lines(r.stdout)) for r in same] == [2, 2]  # its overlays are not photos
    assert ". holds eyescan outputs: its 6 output image(s) not read as input" in same[1].stderr
    record_figures(capsys, "outputs not read back", reruns=5, outputs_read_as_input=0)


def test_output_folder_markers(tmp_path):
    from eyescan.inference.inputs import output_marker

    folder = tmp_path / "f"
    folder.mkdir()
    assert output_marker(folder) is None
    (folder / "predictions.jsonl").write_text('{"label": 1}\n')  # someone else's file
    assert output_marker(folder) is None
    (folder / "predictions.jsonl").write_text('{"schema": "eyescan.prediction/1"}\n')
    assert output_marker(folder) == "predictions.jsonl"
    (folder / "predictions.jsonl").unlink()
    (folder / ".eyescan.lock").write_text("{}")
    assert output_marker(folder) == ".eyescan.lock"


# -- a full disk, an unwritable --out ------------------------------------------------


class FillingDisk:
    """Writes through eyescan's atomic writer and the records' append until ``room`` files
    have been written, then fail the way a full disk does: part of the bytes land, then
    ENOSPC."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.atomic_path = imageio.atomic_path
        self.append = journal._append

    def _spend(self) -> bool:
        self.room -= 1
        return self.room < 0

    @contextmanager
    def atomic(self, path):
        with self.atomic_path(path) as tmp:
            yield tmp
            if self._spend():
                os.truncate(tmp, tmp.stat().st_size // 2)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))

    def write(self, fd, data):
        if self.room <= 0:
            os.write(fd, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.append(fd, data)


def test_full_disk_stops_with_one_line_and_keeps_every_result(
    vessels_weights, tmp_path, monkeypatch, capsys
):
    folder, out = _photos(tmp_path / "in", 8), tmp_path / "out"
    disk = FillingDisk(room=14)  # lock, log, then 4 files an image: full during the 4th
    monkeypatch.setattr(imageio, "atomic_path", disk.atomic)
    monkeypatch.setattr(journal, "_append", disk.write)
    result = _predict(vessels_weights, folder, "--out", out, "--workers", "1")
    assert result.exit_code == 1 and "Traceback" not in result.output
    (line,) = _errors(result.stderr)
    assert "No space left on device" in line and "finished result(s) kept in" in line
    assert "rerun with --resume" in line
    monkeypatch.undo()
    kept = _whole(out)
    logged = (out / "predictions.jsonl").read_text().splitlines()
    assert f" {len(logged)} finished result(s) kept in" in line
    assert 1 <= len(kept) < 8 and not _hidden(out)
    assert not (out / ".eyescan.lock").exists()

    resumed = _predict(vessels_weights, folder, "--out", out, "--resume", "--json")
    assert resumed.exit_code == 0, resumed.output
    records = json_lines(resumed.stdout)
    assert {r["id"] for r in records if r.get("resumed")} == kept
    assert len(_whole(out)) == 8
    record_figures(
        capsys, "full disk (simulated)", images=8, finished_before_full=len(kept), lost=0,
        half_written_files=0,
    )  # fmt: skip


def test_full_disk_in_a_multi_task_run(tmp_path, monkeypatch):
    from eyescan.plugins import registry as plugins

    from . import toy_pair

    plugins.reset_registry([("pair", toy_pair.PairPlugin(toy_pair.write_weights(tmp_path / "w")))])
    folder, out = _photos(tmp_path / "in", 6), tmp_path / "out"
    args = ("predict", "toymap,toyuse", folder, "--out", out)
    disk = FillingDisk(room=15)  # the three logs, then full after a few photos
    monkeypatch.setattr(imageio, "atomic_path", disk.atomic)
    monkeypatch.setattr(journal, "_append", disk.write)
    result = invoke_cli(*args)
    monkeypatch.undo()
    assert result.exit_code == 1 and "Traceback" not in result.output
    (line,) = _errors(result.stderr)
    assert "No space left on device" in line and "finished result(s) kept in" in line
    kept = {r["id"] for r in read_jsonl(out / "predictions.jsonl")[0]}
    for task in ("toymap", "toyuse"):
        assert kept <= _whole(out / task) and not _hidden(out / task)
    assert 1 <= len(kept) < 6 and not list(out.rglob(".eyescan*.lock"))
    resumed = invoke_cli(*args, "--resume", "--json")
    assert resumed.exit_code == 0, resumed.output
    assert len(read_jsonl(out / "predictions.jsonl")[0]) == 6


@contextmanager
def _tmpfs(path: Path, options: str):
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small file system needs root")
def test_really_full_disk(vessels_weights, tmp_path, capsys):
    """A 160 KiB tmpfs: a real ENOSPC, wherever it strikes."""
    folder = _photos(tmp_path / "in", 14)
    with _tmpfs(tmp_path / "small", "size=160k") as out:
        result = _predict(vessels_weights, folder, "--out", out)
        assert result.exit_code == 1 and "Traceback" not in result.output
        (line,) = _errors(result.stderr)
        assert "No space left on device" in line, line
        kept = _whole(out)
        assert kept and not _hidden(out)
        subprocess.run(["mount", "-o", "remount,size=8m", str(out)], check=True)
        resumed = _predict(vessels_weights, folder, "--out", out, "--resume", "--json")
        assert resumed.exit_code == 0, resumed.output
        assert {r["id"] for r in json_lines(resumed.stdout) if r.get("resumed")} == kept
    record_figures(capsys, "full disk (tmpfs)", images=14, finished_before_full=len(kept), lost=0)


def test_unwritable_out_is_one_line(vessels_weights, tmp_path):
    folder = _photos(tmp_path / "in", 1)
    (tmp_path / "file").write_text("x")
    result = _predict(vessels_weights, folder, "--out", tmp_path / "file")
    assert result.exit_code == 1
    assert _errors(result.stderr) == [f"error: --out {tmp_path / 'file'} is a file, not a folder"]

    if os.geteuid() != 0:  # a read-only folder (root writes into any folder)
        (tmp_path / "ro").mkdir(mode=0o555)
        target, context = tmp_path / "ro", None
    else:  # a read-only file system
        context = _tmpfs(tmp_path / "ro", "ro,size=64k")
        target = context.__enter__()
    try:
        result = _predict(vessels_weights, folder, "--out", target / "out")
        assert result.exit_code == 1 and "Traceback" not in result.output
        (line,) = _errors(result.stderr)
        assert line.startswith(f"error: cannot write {target / 'out'}: ")
        assert "Read-only file system" in line or "Permission denied" in line
    finally:
        if context is not None:
            context.__exit__(None, None, None)
