"""Byte-identical images: found by SHA-256 and never on both sides of a split.

Published data sets hold copies of one photograph under two names (IDRiD
part B has six pairs, one across its train and test sets, four with
different grades). :func:`resolve_duplicates` applies one rule, which a
reader calls on all its samples:

1. Images whose files have the same bytes (SHA-256; only files of equal
   size are hashed) form a group.
2. A group whose copies lie in different splits keeps only its copies in
   the most held-out split, in the order ``test``, ``val``, ``train``, none;
   the other copies are dropped. The data set's test set stays whole (its
   numbers stay comparable); training loses a copy of a test image.
3. The kept copies become one patient: the copies' patients are joined
   under the first name in sorted order (every image of those patients then
   carries it), or ``identical:<sha256[:12]>`` where none is named. The
   hold-out and the validation split then keep them on one side.
4. Each group gives one note naming every copy (id, file and label), what
   was kept and dropped, and ``labels differ`` where they do. The note is
   added to each kept copy's ``notes``; :func:`eyescan.data.readers.read_split`
   puts the notes in its ``info`` (model cards, evaluation summaries) and
   ``eyescan evaluate`` prints them as warnings.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from eyescan.errors import DataError

T = TypeVar("T")

#: Splits from the most held-out to the least; ``None`` (no split) comes last.
PRECEDENCE = ("test", "val", "train", None)


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return digest.hexdigest()


def find_identical(
    samples: Sequence[T], image: Callable[[T], Path] = lambda s: s.image
) -> dict[str, list[T]]:
    """Groups of two or more samples whose image files are byte-identical, by SHA-256
    (input order inside a group; groups in the order of their first member)."""
    by_size: dict[int, list[T]] = {}
    for sample in samples:
        path = Path(image(sample))
        try:
            size = os.stat(path).st_size
        except OSError as exc:
            raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
        by_size.setdefault(size, []).append(sample)
    groups: dict[str, list[T]] = {}
    for same_size in by_size.values():
        if len(same_size) > 1:
            for sample in same_size:
                groups.setdefault(file_sha256(Path(image(sample))), []).append(sample)
    order = {id(s): i for i, s in enumerate(samples)}
    found = [(k, g) for k, g in groups.items() if len(g) > 1]
    found.sort(key=lambda kg: order[id(kg[1][0])])
    return {k: sorted(g, key=lambda s: order[id(s)]) for k, g in found}


@dataclass
class DuplicateGroup:
    """One set of byte-identical images and what the rule did with it."""

    sha256: str
    kept: list[str]
    dropped: list[str]
    labels: dict[str, str] = field(default_factory=dict)  # id -> label text
    files: dict[str, str] = field(default_factory=dict)  # id -> file name

    @property
    def conflict(self) -> bool:
        """True when the copies carry different labels."""
        return len(set(self.labels.values())) > 1

    def note(self) -> str:
        """One line: every copy with its file and label, what was kept and dropped."""
        copies = " = ".join(
            f"{i} ({self.files[i]}: {self.labels[i]})" for i in [*self.kept, *self.dropped]
        )
        parts = [f"byte-identical images {copies}"]
        if self.conflict:
            parts.append("labels differ")
        if self.dropped:
            parts.append(f"kept {', '.join(self.kept)}, dropped {', '.join(self.dropped)}")
        else:
            parts.append("all kept, grouped as one patient")
        return "; ".join(parts) + f" (sha256 {self.sha256[:12]})"


def _rank(sample: Any) -> int:
    split = getattr(sample, "split", None)
    return PRECEDENCE.index(split) if split in PRECEDENCE else len(PRECEDENCE)


def resolve_duplicates(
    samples: Sequence[T],
    label: Callable[[T], Any] = lambda s: f"label {getattr(s, 'label', None)}",
) -> tuple[list[T], list[DuplicateGroup]]:
    """Apply the module's rule: ``(kept samples, one DuplicateGroup per set of copies)``.

    ``label`` gives the text compared and reported for each copy (e.g.
    ``"grade 3, DME 0"``). Kept samples keep the input order; their
    ``patient`` and ``notes`` are updated in place.
    """
    items = list(samples)
    groups = find_identical(items)
    drop: set[int] = set()
    parent: dict[str, str] = {}

    def root(name: str) -> str:
        while parent.get(name, name) != name:
            name = parent[name]
        return name

    report = []
    for sha, copies in groups.items():
        best = min(_rank(c) for c in copies)
        kept = [c for c in copies if _rank(c) == best]
        dropped = [c for c in copies if _rank(c) != best]
        drop.update(id(c) for c in dropped)
        for copy in kept:
            if not getattr(copy, "patient", None):
                copy.patient = f"identical:{sha[:12]}"
        names = sorted({root(c.patient) for c in kept})
        for name in names[1:]:
            parent[name] = names[0]
        group = DuplicateGroup(
            sha,
            [str(c.id) for c in kept],
            [str(c.id) for c in dropped],
            {str(c.id): str(label(c)) for c in copies},
            {str(c.id): Path(c.image).name for c in copies},
        )
        for copy in kept:
            copy.notes = [*getattr(copy, "notes", []), group.note()]
        report.append(group)
    out = [s for s in items if id(s) not in drop]
    for sample in out:
        if getattr(sample, "patient", None) and parent:
            sample.patient = root(sample.patient)
    return out, report
