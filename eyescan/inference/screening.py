"""Several tasks in one run: each photo decoded once, every task run on it, one record per photo.

Library code: yields one record per input (schema ``eyescan.screening/1``,
see docs/json-schema.md) and never prints. Each task writes its files and
its own ``eyescan.prediction/1`` record under ``out/<task>/``, exactly as a
single-task run into that folder would (so ``eyescan report out/vessels``
works and ``--resume`` reuses them per task). A task that fails on a photo
gives an error record for that task only; the other tasks' results stand.
Tasks run in provider order: a task that provides a need of a later task
hands its prediction over, so the provider model runs once per photo.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eyescan.imaging.imageio import write_text
from eyescan.inference.journal import is_fatal, output_error
from eyescan.inference.photos import Photo, PhotoReader, check_fits
from eyescan.inference.predicting import (
    Item,
    _check_count,
    _error_record,
    completed,
    default_workers,
    ok_record,
    owner_of,
    prepare,
    provenance,
    record_base,
    record_path,
    same_input,
)
from eyescan.inference.providers import Provider
from eyescan.plugins.task import Task
from eyescan.reports.records import SCREENING_SCHEMA, dumps


@dataclass
class TaskRun:
    """One task of a multi-task run: its per-run copy, model and output folder."""

    task: Task
    model: Any
    out_dir: Path | None
    #: need -> name of the task of this run that provides it
    uses: dict[str, str] = field(default_factory=dict)
    #: providers loaded for this task alone (their task is not part of the run)
    providers: list[Provider] = field(default_factory=list)
    #: this task as a provider: need -> key of its prediction arrays (for the later tasks)
    owner: str = ""
    base: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.task.name


def run(
    registry: Any,
    runs: list[TaskRun],
    items: list[Item],
    workers: int | None = None,
    resume: bool = False,
    debug: bool = False,
    reader: PhotoReader | None = None,
    skip_ungradable: bool = False,
    options: dict[str, Any] | None = None,
) -> Iterator[dict[str, Any]]:
    """Run every task of ``runs`` (in order) on every item; yield one screening record each."""
    hook = registry.hook
    reader = reader or PhotoReader()
    for step in runs:
        prepare(step.task, step.model)
        step.base = record_base(step.task, step.model, (options or {}).get(step.name))
        step.base.update(provenance(step.model, _providers(step, runs)))
        step.owner = owner_of(registry, step.name)
    workers = workers or default_workers()
    prefetch = max(2, 2 * max(1, workers))
    readers = ThreadPoolExecutor(max(1, workers), thread_name_prefix="eyescan-read")

    def load(item: Item) -> tuple[Photo, float]:
        t0 = time.perf_counter()
        photo = reader.read(item.path)
        return photo, (time.perf_counter() - t0) * 1e3

    try:
        pending: deque[tuple[Item, Future]] = deque()
        queue = iter(items)

        def fill() -> None:
            while len(pending) < prefetch:
                item = next(queue, None)
                if item is None:
                    return
                pending.append((item, readers.submit(load, item)))

        fill()
        while pending:
            item, future = pending.popleft()
            fill()
            try:
                photo, read_ms = future.result()
            except Exception as exc:
                yield _photo_failed(runs, item, exc, debug, options)
                continue
            yield _screen(hook, runs, item, photo, read_ms, resume, debug, skip_ungradable, options)
    finally:
        readers.shutdown(wait=True, cancel_futures=True)


def _providers(step: TaskRun, runs: list[TaskRun]) -> list[Provider]:
    """The providers behind a task's records: loaded ones and tasks of the run."""
    found = list(step.providers)
    for need, name in step.uses.items():
        other = next(r for r in runs if r.name == name)
        found.append(Provider(need, other.task, other.model, other.task.provides[need]))
    return found


def _photo_failed(
    runs: list[TaskRun],
    item: Item,
    exc: BaseException,
    debug: bool,
    options: dict[str, Any] | None,
) -> dict[str, Any]:
    """The record of a photo that could not be read: every task fails with the same error."""
    tasks = {}
    for step in runs:
        record = _error_record(step.base, item, exc, debug, step.owner)
        _save(step, item, record)
        tasks[step.name] = record
    first = next(iter(tasks.values()), None)
    error = first["error"] if first else {"code": "internal_error", "message": str(exc)}
    return _combined(item, None, tasks, options, {}, error)


def _save(step: TaskRun, item: Item, record: dict[str, Any]) -> None:
    if step.out_dir is None:
        return
    try:  # best effort for failures: the record is also in predictions.jsonl
        write_text(record_path(step.out_dir, item.stem), dumps(record) + "\n")
    except OSError as exc:
        if is_fatal(exc):  # full disk, read-only: the run stops
            raise output_error(exc) from None
        if record["ok"]:
            raise


def _screen(
    hook: Any,
    runs: list[TaskRun],
    item: Item,
    photo: Photo,
    read_ms: float,
    resume: bool,
    debug: bool,
    skip_ungradable: bool,
    options: dict[str, Any] | None,
) -> dict[str, Any]:
    predictions: dict[str, Any] = {}  # task name -> its Prediction on this photo
    tasks: dict[str, dict[str, Any]] = {}
    unassessed = dataclasses.replace(photo, quality=None)
    for step in runs:
        seen = photo if step.task.fundus else unassessed
        done = None
        if resume and step.out_dir is not None:
            done = completed(step.out_dir, item, step.base)
            if done is not None and not same_input(done, item):
                done = None
        if done is not None:
            tasks[step.name] = {**done, "resumed": True}
            continue
        timings = {"read": read_ms}
        try:
            if skip_ungradable and step.task.fundus and photo.ungradable:
                record = ok_record(step.base, item, seen, {}, {}, timings)
                record["abstained"] = "ungradable"
            else:
                record = _run_task(hook, step, runs, item, photo, seen, predictions, timings)
        except Exception as exc:
            if is_fatal(exc):
                raise output_error(exc) from None
            record = _error_record(step.base, item, exc, debug, step.owner)
            record["input_sha256"] = photo.sha256
        try:
            _save(step, item, record)
        except OSError as exc:  # this record cannot be written: this task fails on this photo
            record = _error_record(step.base, item, exc, debug, step.owner)
        tasks[step.name] = record
    return _combined(item, photo, tasks, options, {"read": round(read_ms, 2)}, None)


def _run_task(
    hook: Any,
    step: TaskRun,
    runs: list[TaskRun],
    item: Item,
    photo: Photo,
    seen: Photo,
    predictions: dict[str, Any],
    timings: dict[str, float],
) -> dict[str, Any]:
    source = str(item.path)
    check_fits(step.task, photo.image, source)
    t0 = time.perf_counter()
    provided = dict(photo.provided)
    for provider in _providers(step, runs):
        earlier = predictions.get(provider.task.name)
        if earlier is not None:  # the provider task ran on this photo: hand its output over
            provided[provider.need] = provider.extract(earlier)
        else:  # not in the run, or its record was resumed: run it for this photo
            provided[provider.need] = provider.run(hook, photo.image, source, provided)
    t1 = time.perf_counter()
    if t1 - t0 > 1e-4:
        timings["providers"] = (t1 - t0) * 1e3
    prepared = hook.preprocess(task=step.task, image=photo.image, source=source, provided=provided)
    t2 = time.perf_counter()
    result = hook.predict(task=step.task, model=step.model, batch=[prepared])
    _check_count(result, 1)
    (prediction,) = result
    if step.task.provides:
        predictions[step.name] = prediction
    t3 = time.perf_counter()
    files: dict[str, str] = {}
    if step.out_dir is not None:
        for part in hook.report(
            task=step.task, prediction=prediction, out_dir=step.out_dir, stem=item.stem
        ):
            files.update(part or {})
    timings.update(
        preprocess=(t2 - t1) * 1e3, predict=(t3 - t2) * 1e3, report=(time.perf_counter() - t3) * 1e3
    )
    return ok_record(step.base, item, seen, prediction.values, files, timings)


def _combined(
    item: Item,
    photo: Photo | None,
    tasks: dict[str, dict[str, Any]],
    options: dict[str, Any] | None,
    timings: dict[str, float],
    error: dict[str, Any] | None,
) -> dict[str, Any]:
    """The photo's screening record; task files are made relative to the run's ``--out``
    (each task writes into ``--out/<task>/``)."""
    shown = {}
    for name, record in tasks.items():
        files = {k: f"{name}/{v}" for k, v in (record.get("files") or {}).items()}
        shown[name] = {**record, "files": files}
    return {
        "schema": SCREENING_SCHEMA,
        "input": str(item.path),
        "input_sha256": None if photo is None else photo.sha256,
        "id": item.stem,
        "ok": error is None and all(r["ok"] for r in tasks.values()),
        "quality": None if photo is None else photo.quality,
        "tasks": shown,
        "options": options or {},
        "timings_ms": timings,
        "error": error,
    }
