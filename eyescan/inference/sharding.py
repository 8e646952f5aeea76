"""Split a folder prediction over N machines (``--shard K/N``) and merge the parts.

Output stems are assigned on the full input list first, then input ``i`` (in
the sorted order ``eyescan predict`` walks) goes to shard ``i % N + 1``, so
shards are balanced, deterministic and name every output exactly as an
unsharded run would. A shard writes its records to
``predictions.shard-K-of-N.jsonl`` beside a manifest ``shard-K-of-N.json``
(the positions of its inputs in the full list and a fingerprint of that
list); shards may share one ``--out`` folder. :func:`merge` checks that all N
shards of the same input list are there and complete, and returns their
records in the order of an unsharded run.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eyescan.errors import DataError
from eyescan.imaging.imageio import atomic_path, write_text
from eyescan.reports.records import read_jsonl

SHARD_SCHEMA = "eyescan.shard/1"
_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    @property
    def name(self) -> str:
        return f"shard-{self.index}-of-{self.count}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """``"K/N"`` → :class:`Shard`; raises ValueError unless 1 <= K <= N."""
    match = _SPEC.match(text)
    if not match:
        raise ValueError(f"shard {text!r} is not K/N (e.g. 1/4)")
    index, count = int(match.group(1)), int(match.group(2))
    if not 1 <= index <= count:
        raise ValueError(f"shard {text!r}: K must be between 1 and N")
    return Shard(index, count)


def positions(total: int, shard: Shard) -> list[int]:
    """Positions in the full input list that belong to ``shard``."""
    return list(range(shard.index - 1, total, shard.count))


def fingerprint(stems: Sequence[str]) -> str:
    """Identity of the full input list (its output stems, in order)."""
    return hashlib.sha256("\n".join(stems).encode("utf-8")).hexdigest()


def records_path(out_dir: Path, shard: Shard) -> Path:
    return Path(out_dir) / f"predictions.{shard.name}.jsonl"


def manifest_path(out_dir: Path, shard: Shard) -> Path:
    return Path(out_dir) / f"{shard.name}.json"


def write_manifest(out_dir: Path, shard: Shard, stems: Sequence[str]) -> Path:
    """Record which inputs of the full list (``stems``) this shard holds."""
    path = manifest_path(out_dir, shard)
    manifest = {
        "schema": SHARD_SCHEMA,
        "shard": shard.index,
        "shards": shard.count,
        "inputs": len(stems),
        "inputs_sha256": fingerprint(stems),
        "positions": positions(len(stems), shard),
        "records": records_path(out_dir, shard).name,
    }
    write_text(path, json.dumps(manifest) + "\n")
    return path


@dataclass
class Merged:
    records: list[dict[str, Any]]
    shards: int
    copied: int  # per-image files copied into the merged folder


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable ({exc})") from None


def _read_records(path: Path) -> list[dict[str, Any]]:
    try:
        return read_jsonl(path)[0]  # a line cut short by a kill: that shard did not finish
    except OSError as exc:
        raise DataError(f"{path}: shard records missing ({exc}); rerun that shard") from None
    except DataError as exc:
        raise DataError(f"{exc}; rerun that shard") from None


def find_manifests(dirs: Sequence[Path]) -> list[Path]:
    """Shard manifests in the given folders (not recursive)."""
    found = []
    for folder in dirs:
        found.extend(sorted(Path(folder).glob("shard-*-of-*.json")))
    return found


def merge(dirs: Sequence[Path], out_dir: Path, copy_files: bool = True) -> Merged:
    """All shards' records in unsharded order; copies per-image outputs to ``out_dir``.

    Raises DataError when shards are missing, duplicated, incomplete or were
    made from different input lists.
    """
    manifests = find_manifests(dirs)
    if not manifests:
        folders = ", ".join(str(d) for d in dirs)
        raise DataError(f"no shard outputs (shard-K-of-N.json) in {folders}")
    loaded = [(path, _read_json(path)) for path in manifests]
    first = loaded[0][1]
    count, total, identity = first["shards"], first["inputs"], first["inputs_sha256"]
    by_index: dict[int, tuple[Path, dict[str, Any]]] = {}
    for path, manifest in loaded:
        if manifest.get("schema") != SHARD_SCHEMA:
            raise DataError(f"{path}: not an eyescan shard manifest")
        if (manifest["shards"], manifest["inputs"], manifest["inputs_sha256"]) != (
            count,
            total,
            identity,
        ):
            raise DataError(
                f"{path}: made from a different input list or shard count than "
                f"{loaded[0][0]}; merge shards of one run only"
            )
        index = manifest["shard"]
        if index in by_index:
            raise DataError(f"shard {index}/{count} found twice: {by_index[index][0]} and {path}")
        by_index[index] = (path, manifest)
    missing = [f"{k}/{count}" for k in range(1, count + 1) if k not in by_index]
    if missing:
        raise DataError(f"missing shards {', '.join(missing)} (run them, then merge again)")

    slots: list[dict[str, Any] | None] = [None] * total
    copied = 0
    for index in sorted(by_index):
        path, manifest = by_index[index]
        records = _read_records(path.parent / manifest["records"])
        wanted = manifest["positions"]
        if len(records) != len(wanted):
            raise DataError(
                f"{path.parent / manifest['records']}: {len(records)} of {len(wanted)} records; "
                f"shard {index}/{count} did not finish (rerun it with --resume)"
            )
        for position, record in zip(wanted, records):
            slots[position] = record
        if copy_files and path.parent.resolve() != Path(out_dir).resolve():
            copied += _copy_outputs(records, path.parent, Path(out_dir))
    return Merged([r for r in slots if r is not None], count, copied)


def _copy_outputs(records: list[dict[str, Any]], source: Path, target: Path) -> int:
    copied = 0
    for record in records:
        names = [f"{record['id']}.json", *record.get("files", {}).values()]
        for name in names:
            if Path(name).is_absolute() or ".." in Path(name).parts:
                continue  # outputs always lie inside their folder
            src = source / name
            if src.is_file():
                with atomic_path(target / name) as tmp:  # never half a copy
                    shutil.copy2(src, tmp)
                copied += 1
    return copied
