"""Checking an installation: shipped weights against their cards, and reference outputs.

Two kinds of check for each task (``eyescan verify [TASK]``):

* ``weights``: every ``*.safetensors`` under the task's ``weights_dir`` (sub-folders
  and companions included) has a model card whose ``sha256`` is the file's, whose
  ``file`` is the file's name and whose ``task``/``model`` name this task and one of
  its registered models (or, ``task: "backbone"``, an initialisation file);
* ``reference``: the task's default model, run through the prediction pipeline on
  :meth:`eyescan.plugins.task.Task.reference_image`, gives the numeric ``outputs``
  stored in ``<weights_dir>/<model>.reference.json`` within its tolerances
  (:data:`TOLERANCES`; see docs/json-schema.md, ``eyescan.verify/1``).

Library code: returns :class:`Check` values and never prints.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eyescan.errors import EyescanError, UnknownNameError

VERIFY_SCHEMA = "eyescan.verify/1"
REFERENCE_SCHEMA = "eyescan.reference/1"

#: Default tolerances of a reference file: a float matches within ``float_abs`` or
#: ``float_rel`` × |reference|; an integer within ``int_rel`` × |reference| (so exactly,
#: below 100); booleans and nulls exactly.
TOLERANCES = {"float_abs": 1e-3, "float_rel": 1e-3, "int_rel": 0.01}

#: Card task of initialisation files (a backbone), which name no model of the task.
INIT_TASK = "backbone"

#: At most this many mismatches are listed in a failed reference check.
MAX_MISMATCHES = 20


@dataclass
class Check:
    """The result of one check: ``reason`` is one line when ``ok`` is false."""

    task: str
    check: str  # "weights" or "reference"
    target: str  # the weights file, or the reference file
    ok: bool
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """The ``eyescan.verify/1`` record of this check."""
        return {
            "schema": VERIFY_SCHEMA,
            "task": self.task,
            "check": self.check,
            "target": self.target,
            "ok": self.ok,
            "reason": self.reason,
            **self.details,
        }


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


def shipped_weights(task: Any) -> list[Path]:
    """Every ``*.safetensors`` under the task's ``weights_dir`` (sorted; none without one)."""
    if task.weights_dir is None or not Path(task.weights_dir).is_dir():
        return []
    return sorted(Path(task.weights_dir).rglob("*.safetensors"))


def check_weights(registry: Any, task: Any, path: Path) -> Check:
    """One shipped weights file against its model card."""
    from eyescan.models.weights import read_card, sha256_file

    path = Path(path)

    def failed(reason: str, **details: Any) -> Check:
        return Check(task.name, "weights", str(path), False, _one_line(reason), details)

    try:
        card = read_card(path)
    except EyescanError as exc:
        return failed(str(exc))
    actual = sha256_file(path)
    expected = card.get("sha256")
    details = {"model": card.get("model"), "sha256": actual, "card_sha256": expected}
    if not expected:
        return failed(f"{path}: model card has no sha256", **details)
    if actual != expected:
        return failed(
            f"{path}: SHA-256 {actual[:12]}… does not match its model card ({expected[:12]}…)",
            **details,
        )
    if card.get("file") not in (None, path.name):
        return failed(f"{path}: model card names file {card.get('file')!r}", **details)
    if card.get("task") == INIT_TASK:
        return Check(task.name, "weights", str(path), True, None, {**details, "init": True})
    if card.get("task") != task.name:
        return failed(
            f"{path}: model card is for task {card.get('task')!r}, not {task.name!r}", **details
        )
    try:
        registry.model(task.name, card.get("model"))
    except UnknownNameError:
        return failed(
            f"{path}: model card names model {card.get('model')!r}, "
            f"not a model of task {task.name!r}",
            **details,
        )
    return Check(task.name, "weights", str(path), True, None, details)


def reference_path(task: Any, model: str | None = None) -> Path | None:
    """``<weights_dir>/<model>.reference.json`` (default: the task's default model)."""
    if task.weights_dir is None:
        return None
    return Path(task.weights_dir) / f"{model or task.default_model}.reference.json"


def image_sha256(image: np.ndarray) -> str:
    """SHA-256 of a decoded image: its shape, then its ``uint8`` pixels in C order."""
    array = np.ascontiguousarray(image, dtype=np.uint8)
    digest = hashlib.sha256("x".join(map(str, array.shape)).encode() + b":")
    digest.update(array.tobytes())
    return digest.hexdigest()


def reference_record(registry: Any, task: Any, model: str | None = None) -> dict[str, Any]:
    """Predict on the task's reference image, as ``eyescan predict`` would (writing nothing).

    Returns the prediction record plus ``image`` (``shape``, ``sha256``). Raises
    :class:`~eyescan.errors.EyescanError` when the model cannot be loaded.
    """
    from eyescan.imaging.imageio import save_png
    from eyescan.inference import predicting
    from eyescan.models.loading import load

    image = np.asarray(task.reference_image())
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise EyescanError(
            f"task {task.name!r}: reference_image() gave {image.dtype} {image.shape}, "
            "not uint8 H×W×3"
        )
    run_task = task.configured(
        {"explain": False, **{o.name: o.default for o in task.predict_options}}
    )
    loaded = load(registry, task.name, model)
    with tempfile.TemporaryDirectory(prefix="eyescan-verify-") as folder:
        path = save_png(Path(folder) / "reference.png", image)  # lossless: the same pixels
        items = [predicting.Item(Path(path), "reference")]
        records = list(predicting.run(registry, run_task, loaded, items, None, workers=1))
    record = records[0]
    record["image"] = {"shape": list(image.shape), "sha256": image_sha256(image)}
    return record


def numeric_values(value: Any, key: str = "") -> dict[str, Any]:
    """The numbers, booleans and nulls of a JSON value by path (``a.b[2]``); text is skipped."""
    if isinstance(value, dict):
        found: dict[str, Any] = {}
        for k, v in value.items():
            found.update(numeric_values(v, f"{key}.{k}" if key else str(k)))
        return found
    if isinstance(value, (list, tuple)):
        found = {f"{key}#len": len(value)}
        for i, v in enumerate(value):
            found.update(numeric_values(v, f"{key}[{i}]"))
        return found
    if value is None or isinstance(value, (bool, int, float)):
        return {key: value}
    return {}


def _matches(expected: Any, actual: Any, tolerances: dict[str, float]) -> bool:
    if expected is None or isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual or expected == actual and type(expected) is type(actual)
    if actual is None or not isinstance(actual, (int, float)):
        return False
    diff = abs(float(actual) - float(expected))
    if isinstance(expected, int) and isinstance(actual, int):
        return diff <= tolerances["int_rel"] * abs(expected)
    if not math.isfinite(diff):
        return False
    return diff <= tolerances["float_abs"] or diff <= tolerances["float_rel"] * abs(expected)


def compare_outputs(
    expected: dict[str, Any], actual: dict[str, Any], tolerances: dict[str, float] | None = None
) -> list[dict[str, Any]]:
    """Mismatches of ``actual`` against ``expected`` (empty: they agree).

    Every number, boolean and null of ``expected`` (nested ones and list lengths
    included) must be in ``actual`` within the tolerances; keys only ``actual``
    has are ignored (fields may be added within a schema version).
    """
    tolerances = {**TOLERANCES, **(tolerances or {})}
    want, got = numeric_values(expected), numeric_values(actual)
    mismatches = []
    for key, value in want.items():
        if key not in got:
            mismatches.append({"key": key, "expected": value, "actual": "missing"})
        elif not _matches(value, got[key], tolerances):
            mismatches.append({"key": key, "expected": value, "actual": got[key]})
    return mismatches


def check_reference(registry: Any, task: Any) -> Check:
    """The default model's outputs on the reference image against the stored ones."""
    path = reference_path(task)
    target = str(path) if path is not None else f"{task.name}/{task.default_model}"

    def failed(reason: str, **details: Any) -> Check:
        return Check(task.name, "reference", target, False, _one_line(reason), details)

    if path is None or not path.exists():
        return failed(
            f"no reference output {target} (maintainers: 'eyescan verify {task.name} --update')"
        )
    try:
        reference = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return failed(f"{path}: unreadable reference ({exc})")
    if not isinstance(reference, dict) or reference.get("schema") != REFERENCE_SCHEMA:
        return failed(f"{path}: not an eyescan reference ({REFERENCE_SCHEMA})")
    details: dict[str, Any] = {"model": reference.get("model")}
    try:
        record = reference_record(registry, task, reference.get("model"))
    except EyescanError as exc:
        return failed(str(exc), **details)
    details["weights_sha256"] = record.get("weights_sha256")
    if not record.get("ok"):
        message = (record.get("error") or {}).get("message", "prediction failed")
        return failed(f"prediction on the reference image failed: {message}", **details)
    stored_image = (reference.get("image") or {}).get("sha256")
    if stored_image != record["image"]["sha256"]:
        return failed(
            f"the reference image is not the one {path.name} was made from "
            f"(sha256 {record['image']['sha256'][:12]}…, stored {str(stored_image)[:12]}…)",
            **details,
        )
    if reference.get("weights_sha256") != record.get("weights_sha256"):
        return failed(
            f"{path.name} was made with other weights "
            f"({str(reference.get('weights_sha256'))[:12]}…, now "
            f"{str(record.get('weights_sha256'))[:12]}…); maintainers: rerun with --update",
            **details,
        )
    tolerances = {**TOLERANCES, **(reference.get("tolerances") or {})}
    mismatches = compare_outputs(reference.get("outputs") or {}, record["outputs"], tolerances)
    details.update(
        compared=len(numeric_values(reference.get("outputs") or {})),
        tolerances=tolerances,
        mismatches=mismatches[:MAX_MISMATCHES],
    )
    if mismatches:
        first = mismatches[0]
        return failed(
            f"{len(mismatches)} outputs differ from {path.name}, e.g. {first['key']}: "
            f"{first['actual']} (reference {first['expected']})",
            **details,
        )
    return Check(task.name, "reference", target, True, None, details)


def update_reference(registry: Any, task: Any) -> Check:
    """Write ``<weights_dir>/<default model>.reference.json`` from a prediction now."""
    from eyescan import __version__
    from eyescan.imaging.imageio import write_text

    path = reference_path(task)
    if path is None:
        return Check(task.name, "reference", task.name, False, "the task ships no weights")
    try:
        record = reference_record(registry, task)
    except EyescanError as exc:
        return Check(task.name, "reference", str(path), False, _one_line(exc))
    if not record.get("ok"):
        message = (record.get("error") or {}).get("message", "prediction failed")
        return Check(task.name, "reference", str(path), False, _one_line(message))
    from eyescan.reports.records import clean

    reference = {
        "schema": REFERENCE_SCHEMA,
        "task": task.name,
        "model": record["model"],
        "weights_sha256": record["weights_sha256"],
        "image": record["image"],
        "outputs": clean(record["outputs"]),
        "tolerances": dict(TOLERANCES),
        "eyescan_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_text(path, json.dumps(reference, indent=2, allow_nan=False) + "\n")
    details = {"model": record["model"], "updated": True}
    return Check(task.name, "reference", str(path), True, None, details)


def verify_task(registry: Any, task: Any, update: bool = False) -> list[Check]:
    """The weights checks of ``task``, then its reference check (or update)."""
    checks = [check_weights(registry, task, path) for path in shipped_weights(task)]
    if update:
        if all(c.ok for c in checks):
            checks.append(update_reference(registry, task))
        else:
            reason = "not updated: the shipped weights fail their checks"
            checks.append(Check(task.name, "reference", str(reference_path(task)), False, reason))
        return checks
    checks.append(check_reference(registry, task))
    return checks


__all__ = [
    "Check",
    "REFERENCE_SCHEMA",
    "TOLERANCES",
    "VERIFY_SCHEMA",
    "check_reference",
    "check_weights",
    "compare_outputs",
    "image_sha256",
    "numeric_values",
    "reference_path",
    "reference_record",
    "shipped_weights",
    "update_reference",
    "verify_task",
]
