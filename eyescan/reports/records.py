"""The versioned JSON Lines schemas of ``--json`` output (see docs/json-schema.md)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from eyescan.errors import DataError

PREDICTION_SCHEMA = "eyescan.prediction/1"
EVALUATION_SCHEMA = "eyescan.evaluation/1"
TRAINING_SCHEMA = "eyescan.training/1"
BENCHMARK_SCHEMA = "eyescan.benchmark/1"
SCREENING_SCHEMA = "eyescan.screening/1"

#: Keys every prediction record has, with their JSON types.
PREDICTION_FIELDS: dict[str, tuple[type, ...]] = {
    "schema": (str,),
    "task": (str,),
    "model": (str,),
    "weights_sha256": (str, type(None)),
    "input": (str,),
    "input_sha256": (str, type(None)),
    "id": (str,),
    "ok": (bool,),
    "outputs": (dict,),
    "files": (dict,),
    "timings_ms": (dict,),
    "error": (dict, type(None)),
    "companions": (list,),
    "synthetic_only": (bool,),
}

#: Keys of each entry of a record's ``companions``.
COMPANION_FIELDS = ("role", "model", "weights", "sha256", "synthetic_only")


def clean(value: Any) -> Any:
    """Make a value JSON-safe: NaN/inf become null, numpy scalars plain numbers."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps(record: dict[str, Any]) -> str:
    """One JSON line (no NaN, ASCII-safe even for odd file names)."""
    return json.dumps(clean(record), ensure_ascii=True, allow_nan=False)


def read_jsonl(path: Path, repair: bool = False) -> tuple[list[dict[str, Any]], int]:
    """The records of a ``predictions.jsonl`` and how many lines were dropped.

    One record per ``id``: a later line replaces an earlier one with the same
    id, in the earlier one's place (a resumed run appends an image it redid).
    A torn last line (cut by a kill: no newline and not a JSON object) is
    dropped; any other line that is not a JSON object raises DataError naming
    it, unless ``repair`` (then it is dropped too). Raises OSError when the
    file cannot be read.
    """
    text = Path(path).read_bytes().decode("utf-8", "replace")
    lines = text.split("\n")
    last = len(lines) - 1  # the text after the last newline ("" when the file ends in one)
    found: dict[Any, dict[str, Any]] = {}
    dropped = 0
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            if number == last or repair:
                dropped += 1
                continue
            raise DataError(f"{path}:{number + 1}: not a JSON object")
        key = record.get("id", number) if isinstance(record.get("id"), str) else number
        found[key] = record  # an id seen before keeps its place
    return list(found.values()), dropped


def validate_prediction(record: dict[str, Any]) -> list[str]:
    """Problems of a prediction record against the schema (empty list when valid)."""
    problems = []
    for key, types in PREDICTION_FIELDS.items():
        if key not in record:
            problems.append(f"missing key {key!r}")
        elif not isinstance(record[key], types):
            problems.append(f"{key!r} has type {type(record[key]).__name__}")
    if record.get("schema") != PREDICTION_SCHEMA:
        problems.append(f"schema is {record.get('schema')!r}")
    error = record.get("error")
    if isinstance(error, dict) and not {"code", "message"} <= set(error):
        problems.append("error needs 'code' and 'message'")
    if record.get("ok") is True and error is not None:
        problems.append("ok record with an error")
    for companion in record.get("companions") or []:
        if not isinstance(companion, dict) or not set(COMPANION_FIELDS) <= set(companion):
            problems.append(f"a companion needs {', '.join(COMPANION_FIELDS)}")
    return problems
