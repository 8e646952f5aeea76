"""The images a predict run reads: the inputs' image files, never eyescan's own outputs.

Walking an input folder skips ``--out`` and every eyescan output folder found
inside it: a folder holding eyescan's ``predictions.jsonl`` (its first line an
``eyescan.*`` record, or empty: a run that has just started), a shard's
records, or a run's lock. A folder given on the command line that is itself
an output folder (``--out`` pointed at the photos' folder) is walked, but the
files that its records name as outputs are left out. :class:`Found` says what
was skipped, for the note the CLI prints.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from eyescan.errors import EyescanError
from eyescan.imaging.imageio import folder_key, iter_images
from eyescan.reports.records import read_jsonl

RECORDS = "predictions.jsonl"
#: A per-image record larger than this is not one of ours (not read when looking for outputs).
_RECORD_LIMIT = 1 << 20


@dataclass
class Found:
    images: list[tuple[Path, Path]]
    #: (folder, why) for each folder not walked
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    #: (input folder, output files left out) for input folders that are output folders
    outputs_left_out: list[tuple[Path, int]] = field(default_factory=list)


def output_marker(folder: Path) -> str | None:
    """The file that marks ``folder`` as an eyescan output folder, or None."""
    if _eyescan_records(folder / RECORDS):
        return RECORDS
    for pattern in ("predictions.shard-*-of-*.jsonl", ".eyescan*.lock"):
        found = next(iter(sorted(folder.glob(pattern))), None)
        if found is not None:
            return found.name
    return None


def _eyescan_records(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            first = handle.readline(_RECORD_LIMIT)
    except OSError:
        return False
    if not first.strip():
        return True
    try:
        record = json.loads(first)
    except ValueError:
        return False
    return isinstance(record, dict) and str(record.get("schema", "")).startswith("eyescan.")


def output_files(folder: Path) -> set[str]:
    """Paths (normalised) of the files that eyescan records in ``folder`` name as outputs."""
    names: set[str] = set()
    records = []
    for path in [folder / RECORDS, *sorted(folder.glob("predictions.shard-*-of-*.jsonl"))]:
        try:
            records += read_jsonl(path, repair=True)[0]
        except (OSError, EyescanError):
            continue
    for path in folder.rglob("*.json"):  # per-image records not yet in predictions.jsonl
        try:
            if path.stat().st_size <= _RECORD_LIMIT:
                records.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    for record in records:
        if not isinstance(record, dict) or not str(record.get("schema", "")).startswith("eyescan."):
            continue
        parts = record.get("tasks") if isinstance(record.get("tasks"), dict) else {"": record}
        for part in parts.values():
            files = part.get("files") if isinstance(part, dict) else None
            if isinstance(files, dict):
                names.update(os.path.normpath(folder / str(f)) for f in files.values())
    return names


def find_images(inputs: list[Path], out_dir: Path | None = None) -> Found:
    """The image files of ``inputs`` (files, folders walked recursively), sorted per input,
    without eyescan's outputs (see the module docstring)."""
    skipped: list[tuple[Path, str]] = []
    out_key = folder_key(out_dir) if out_dir is not None else None

    def prune(folder: Path) -> bool:
        if out_key is not None and folder_key(folder) == out_key:
            skipped.append((folder, "the --out folder"))
            return True
        marker = output_marker(folder)
        if marker is not None:
            skipped.append((folder, f"eyescan output: {marker}"))
            return True
        return False

    images: list[tuple[Path, Path]] = []
    left_out: list[tuple[Path, int]] = []
    for item in inputs:
        found = list(iter_images([item], prune=prune))
        if Path(item).is_dir() and (
            output_marker(Path(item)) is not None or folder_key(Path(item)) == out_key
        ):
            outputs = output_files(Path(item))
            kept = [pair for pair in found if os.path.normpath(pair[0]) not in outputs]
            if len(kept) < len(found):
                left_out.append((Path(item), len(found) - len(kept)))
            found = kept
        images += found
    return Found(images, skipped, left_out)


def skipped_note(found: Found) -> str | None:
    """One line saying what was not read as input, or None."""
    parts = [f"{folder} ({why})" for folder, why in found.skipped]
    if len(parts) > 3:
        parts = [*parts[:3], f"and {len(parts) - 3} more"]
    text = []
    if parts:
        text.append("not read as input: " + ", ".join(parts))
    for folder, count in found.outputs_left_out:
        text.append(
            f"{folder} holds eyescan outputs: its {count} output image(s) not read as input"
        )
    return "; ".join(text) or None
