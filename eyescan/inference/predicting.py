"""Folder prediction as a pipeline: decode in threads, infer in batches, write behind.

Library code: yields one record per input (schema ``eyescan.prediction/1``)
and never prints. Memory stays bounded: at most ``prefetch`` images are
decoded ahead of the model and at most ``prefetch`` results wait to be written.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eyescan.data.duplicates import file_sha256
from eyescan.errors import EyescanError, PluginError
from eyescan.imaging.imageio import write_text
from eyescan.inference.journal import is_fatal, output_error
from eyescan.inference.photos import Photo, PhotoReader, check_fits
from eyescan.inference.providers import Provider
from eyescan.plugins.task import Prediction, Task
from eyescan.reports.records import PREDICTION_SCHEMA, dumps

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
#: What ``load`` returns for a photo the run abstains on (``--skip-ungradable``).
ABSTAIN = object()


def default_workers() -> int:
    """Decoding/preprocessing threads for a run: one per usable core, at most 4.

    The model runs on the main thread with its own threads (torch and onnxruntime use
    every core), the writer on one more; on 2 cores two readers keep the model fed
    (docs/performance.md), and beyond 4 readers the model is the bound.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


@dataclass
class Item:
    path: Path
    stem: str


def safe_stems(items: list[tuple[Path, Path]]) -> list[Item]:
    """Output stems for inputs: their path relative to the given root, made safe.

    Stems never contain ``..`` or absolute parts (so outputs stay inside
    ``--out``); characters outside ``[A-Za-z0-9._-]`` become ``_`` (odd bytes
    in file names included); parts longer than 100 characters are shortened
    with a hash suffix; equal stems (ignoring case) get ``-2``, ``-3``… in
    input order, skipping any suffix that is itself taken.
    """
    taken: set[str] = set()
    out = []
    for path, root in items:
        try:
            rel = Path(path).relative_to(root)
        except ValueError:
            rel = Path(Path(path).name)
        parts = [p for p in rel.with_suffix("").parts if p not in ("", ".", "..", "/")]
        parts = [
            _UNSAFE.sub("_", os.fsencode(p).decode("ascii", "replace")).strip("._") or "_"
            for p in parts
        ] or ["image"]
        stem = "/".join(_shorten(p) for p in parts)
        unique, count = stem, 1
        while unique.lower() in taken:
            count += 1
            unique = f"{stem}-{count}"
        taken.add(unique.lower())
        out.append(Item(Path(path), unique))
    return out


def _shorten(part: str, limit: int = 100) -> str:
    if len(part) <= limit:
        return part
    return f"{part[: limit - 9]}-{hashlib.sha1(part.encode()).hexdigest()[:8]}"


def _describe(exc: BaseException, item: Item, owner: str) -> tuple[str, str]:
    """Error code and message; names the plugin whose hook implementation raised."""
    if isinstance(exc, EyescanError):
        message = str(exc)
        return exc.code, message if str(item.path) in message else f"{item.path}: {message}"
    plugin = getattr(exc, "eyescan_plugin", None)
    if plugin is None and isinstance(exc, OSError):  # disk full, read-only --out, …
        where = f" on {exc.filename}" if exc.filename else ""
        return "io_error", f"{item.path}: I/O error{where}: {exc.strerror or exc}"
    plugin = plugin or owner
    hook = getattr(exc, "eyescan_hook", None)
    what = f"{type(exc).__name__}: {exc}"
    if not plugin:
        return "internal_error", f"{item.path}: {what}"
    where = f" in {hook}" if hook else ""
    return "plugin_error", f"{item.path}: plugin {plugin} failed{where}: {what}"


def _error_record(
    base: dict[str, Any], item: Item, exc: BaseException, debug: bool, owner: str = ""
) -> dict:
    code, message = _describe(exc, item, owner)
    message = " ".join(message.splitlines())  # one line, whatever the exception said
    record = {
        **base,
        "input": str(item.path),
        "input_sha256": None,
        "id": item.stem,
        "ok": False,
        "outputs": {},
        "files": {},
        "timings_ms": {},
        "error": {"code": code, "message": message},
    }
    if debug:
        import traceback

        record["error"]["traceback"] = "".join(traceback.format_exception(exc))
    return record


def requested_outputs(task: Task) -> list[str]:
    """The optional outputs this run asks for: ``explain`` and the task's output options.

    Part of what a resumed record must match, so that a rerun asking for more
    does not reuse records made without it.
    """
    options = getattr(task, "options", {})
    names = ["explain"] if options.get("explain") else []
    for option in getattr(task, "predict_options", ()):
        if option.output and options.get(option.name, option.default):
            names.append(option.name)
    return names


def provenance(model: Any, providers: list[Any] = ()) -> dict[str, Any]:
    """``companions`` and ``synthetic_only`` of the models behind a record (see LoadedModel);
    the tasks that provided inputs (``providers``) are companions too."""
    described = getattr(model, "provenance", None)
    if callable(described):
        found = described()
    else:
        card = getattr(model, "card", None) or {}
        found = {"companions": [], "synthetic_only": bool(card.get("synthetic_only"))}
    if providers:
        found = {**found, "companions": [*found["companions"], *(p.companion() for p in providers)]}
    return found


def record_base(task: Task, model: Any, options: dict[str, Any] | None) -> dict[str, Any]:
    """What every record of a run shares (and a resumed record must match)."""
    base: dict[str, Any] = {
        "schema": PREDICTION_SCHEMA,
        "task": task.name,
        "model": model.name,
        "weights_sha256": model.sha256,
    }
    requested = requested_outputs(task)
    if requested:
        base["requested"] = requested
    if options:
        base["options"] = dict(options)
    return base


def ok_record(
    base: dict[str, Any],
    item: Item,
    photo: Photo,
    outputs: dict[str, Any],
    files: dict[str, str],
    timings: dict[str, float],
) -> dict[str, Any]:
    """A successful record (``outputs`` empty when the task abstained)."""
    record = {
        **base,
        "input": str(item.path),
        "input_sha256": photo.sha256,
        "id": item.stem,
        "ok": True,
        "outputs": outputs,
        "files": files,
        "timings_ms": {k: round(v, 2) for k, v in timings.items()},
        "error": None,
    }
    if photo.quality is not None:
        record["quality"] = photo.quality
    return record


def same_input(record: dict[str, Any], item: Item) -> bool:
    """Whether a saved record was made from the file's current bytes (hash unchanged)."""
    saved = record.get("input_sha256")
    if saved is None:
        return False
    try:
        return file_sha256(item.path) == saved
    except EyescanError:
        return False


def prepare(task: Task, model: Any) -> None:
    """Let the task load its companion models before a run (once per model; idempotent)."""
    if getattr(model, "_eyescan_prepared", False):
        return
    method = getattr(task, "prepare", None)
    if callable(method):
        method(model)
    try:
        model._eyescan_prepared = True
    except AttributeError:  # a model object that takes no attributes: prepare again next time
        pass


def owner_of(registry: Any, task: str) -> str:
    """The name of the plugin that registered ``task`` ("" when unknown), for error messages."""
    return next((p.name for p in getattr(registry, "plugins", {}).values() if task in p.tasks), "")


def record_path(out_dir: Path, stem: str) -> Path:
    return out_dir / f"{stem}.json"


def completed(
    out_dir: Path, item: Item, base: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """The saved record of an input whose outputs are all complete, else None.

    With ``base`` (task, model, weights hash, requested outputs, companions of
    this run), a record made by other weights or companions, or without an
    output asked for now, does not count as complete.
    """
    path = record_path(out_dir, item.stem)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not record.get("ok"):
        return None
    if record.get("input") != str(item.path):
        return None
    if base is not None and any(record.get(k) != base[k] for k in base):
        return None
    if not all((out_dir / f).exists() for f in record.get("files", {}).values()):
        return None
    return record


def run(
    registry: Any,
    task: Task,
    model: Any,
    items: list[Item],
    out_dir: Path | None,
    batch_size: int = 1,
    workers: int | None = None,
    resume: bool = False,
    debug: bool = False,
    reader: PhotoReader | None = None,
    providers: list[Provider] = (),
    skip_ungradable: bool = False,
    options: dict[str, Any] | None = None,
) -> Iterator[dict[str, Any]]:
    """Predict every item; yield records in input order (errors included).

    ``out_dir=None`` writes nothing (no images, no per-image JSON). ``reader``
    decodes each photo (``--fov`` masks, the quality gate); ``providers`` run
    before the task's ``preprocess`` and fill its ``provided`` needs;
    ``skip_ungradable`` abstains on photos the quality gate marks ungradable;
    ``options`` (the run's options) go into every record.
    """
    hook = registry.hook
    workers = workers or default_workers()
    reader = reader or PhotoReader()
    base = record_base(task, model, options)
    prepare(task, model)  # companions known before any record is checked or made
    base.update(provenance(model, providers))
    prefetch = max(2, 2 * batch_size * max(1, workers))
    owner = owner_of(registry, task.name)

    def failed(item: Item, exc: BaseException) -> dict[str, Any]:
        return _error_record({**base, **provenance(model, providers)}, item, exc, debug, owner)

    def save_failure(item: Item, record: dict[str, Any]) -> None:
        if out_dir is None:
            return
        try:  # best effort: the record is also yielded (and in predictions.jsonl)
            write_text(record_path(out_dir, item.stem), dumps(record) + "\n")
        except OSError:
            pass

    def load(item: Item) -> tuple[Any, dict[str, float], Photo]:
        t0 = time.perf_counter()
        photo = reader.read(item.path)
        t1 = time.perf_counter()
        timings = {"read": (t1 - t0) * 1e3}
        if skip_ungradable and photo.ungradable:
            return ABSTAIN, timings, photo
        check_fits(task, photo.image, str(item.path))
        provided = dict(photo.provided)
        for provider in providers:
            provided[provider.need] = provider.run(hook, photo.image, str(item.path), provided)
        t2 = time.perf_counter()
        if providers:
            timings["providers"] = (t2 - t1) * 1e3
        prepared = hook.preprocess(
            task=task, image=photo.image, source=str(item.path), provided=provided
        )
        timings["preprocess"] = (time.perf_counter() - t2) * 1e3
        return prepared, timings, photo

    def write(
        item: Item, prediction: Prediction, timings: dict[str, float], photo: Photo
    ) -> dict[str, Any]:
        t0 = time.perf_counter()
        files: dict[str, str] = {}
        if out_dir is not None:
            for part in hook.report(
                task=task, prediction=prediction, out_dir=out_dir, stem=item.stem
            ):
                files.update(part or {})
        timings["report"] = (time.perf_counter() - t0) * 1e3
        record = ok_record(
            {**base, **provenance(model, providers)}, item, photo, prediction.values, files, timings
        )
        if out_dir is not None:
            write_text(record_path(out_dir, item.stem), dumps(record) + "\n")
        return record

    def abstain(item: Item, timings: dict[str, float], photo: Photo) -> dict[str, Any]:
        record = ok_record({**base, **provenance(model, providers)}, item, photo, {}, {}, timings)
        record["abstained"] = "ungradable"
        if out_dir is not None:
            write_text(record_path(out_dir, item.stem), dumps(record) + "\n")
        return record

    readers = ThreadPoolExecutor(max(1, workers), thread_name_prefix="eyescan-read")
    writer = ThreadPoolExecutor(1, thread_name_prefix="eyescan-write")
    try:
        pending: deque[tuple[Item, Future | dict]] = deque()
        queue = iter(items)
        results: deque[tuple[Item, Future | dict]] = deque()

        def fill() -> None:
            while len(pending) < prefetch:
                item = next(queue, None)
                if item is None:
                    return
                done = completed(out_dir, item, base) if resume and out_dir is not None else None
                if done is not None and not same_input(done, item):
                    done = None
                if done is not None:
                    pending.append((item, {**done, "resumed": True}))
                else:
                    pending.append((item, readers.submit(load, item)))

        def drain(limit: int) -> Iterator[dict[str, Any]]:
            # beyond ``limit`` waiting, and every finished one at the front (so the caller
            # can log it at once: a kill then loses no finished record)
            while results and (len(results) > limit or _ready(results[0][1])):
                item, result = results.popleft()
                if not isinstance(result, dict):
                    try:
                        result = result.result()
                    except Exception as exc:
                        if is_fatal(exc):  # full disk, read-only: no later image fares better
                            raise output_error(exc) from None
                        result = failed(item, exc)
                if not result["ok"]:
                    save_failure(item, result)
                yield result

        fill()
        while pending:
            batch: list[tuple[Item, Any, dict[str, float]]] = []
            while pending and len(batch) < batch_size:
                item, future = pending.popleft()
                if isinstance(future, dict):
                    results.append((item, future))
                    continue
                try:
                    prepared, timings, photo = future.result()
                except Exception as exc:
                    results.append((item, failed(item, exc)))
                    continue
                if prepared is ABSTAIN:
                    results.append((item, writer.submit(abstain, item, timings, photo)))
                else:
                    batch.append((item, prepared, timings, photo))
            fill()
            if batch:
                t0 = time.perf_counter()
                try:
                    predictions = hook.predict(task=task, model=model, batch=[b[1] for b in batch])
                    _check_count(predictions, len(batch))
                    per_image = (time.perf_counter() - t0) * 1e3 / len(batch)
                    for (item, _, timings, photo), prediction in zip(batch, predictions):
                        timings["predict"] = per_image
                        results.append(
                            (item, writer.submit(write, item, prediction, timings, photo))
                        )
                except Exception as exc:
                    if len(batch) == 1:
                        results.append((batch[0][0], failed(batch[0][0], exc)))
                    else:  # retry one by one so one bad image does not sink the batch
                        for item, prepared, timings, photo in batch:
                            results.append(
                                (
                                    item,
                                    _single(
                                        hook,
                                        task,
                                        model,
                                        (item, prepared, timings, photo),
                                        writer,
                                        write,
                                        failed,
                                    ),
                                )
                            )
            yield from drain(prefetch)
        yield from drain(0)
    finally:
        readers.shutdown(wait=True, cancel_futures=True)
        writer.shutdown(wait=True)


def _ready(result: Future | dict) -> bool:
    return isinstance(result, dict) or result.done()


def _check_count(predictions: Any, expected: int) -> None:
    """A predict hook must answer every image of the batch (none silently lost)."""
    count = None if predictions is None else len(predictions)
    if count != expected:
        raise PluginError(f"predict returned {count} predictions for {expected} images")


def _single(hook, task, model, entry, writer, write, failed):
    item, prepared, timings, photo = entry
    t0 = time.perf_counter()
    try:
        predictions = hook.predict(task=task, model=model, batch=[prepared])
        _check_count(predictions, 1)
        (prediction,) = predictions
    except Exception as exc:
        return failed(item, exc)
    timings["predict"] = (time.perf_counter() - t0) * 1e3
    return writer.submit(write, item, prediction, timings, photo)


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    """All records as one JSON Lines file, written atomically."""
    write_text(path, "".join(dumps(r) + "\n" for r in records))
