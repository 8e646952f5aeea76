"""Which images train and which are scored: the one hold-out rule of every task.

A data set either says which split each image belongs to (a ``split``
column, ``train/`` and ``test/`` folders, an official list) or it does not.
When it does, that split is used. When it does not, :func:`hold_out` sets a
part aside, the same part for ``train`` and for ``evaluate`` (same rule,
same seed), so a model is never scored on an image it was trained on:

- deterministic: the same samples and seed give the same split, in any order;
- stratified by label where there are labels (each class keeps its share);
- grouped by patient (or eye) where the data names one: all images of one
  patient fall on the same side.

:func:`select` applies the rule and returns, beside the samples, a record of
what was chosen (rule, count, a hash of the ids) that evaluation summaries
and model cards carry. Validation sets inside a training run are split off
the training part with the same function.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from eyescan.errors import DataError

T = TypeVar("T")

#: Split names a data set may carry.
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class HoldOut:
    """The hold-out rule for data without splits: ``fraction`` of the groups, seeded."""

    fraction: float = 0.2
    seed: int = 0

    def describe(self) -> str:
        return (
            f"hold-out {self.fraction:g} of patients (or images where no patient is named), "
            f"stratified by label, seed {self.seed}"
        )


def _key(value: Any) -> str:
    return "" if value is None else str(value)


def _rank(seed: int, text: str) -> int:
    """A seeded pseudo-random rank of ``text``, independent of the order of the samples."""
    digest = hashlib.sha256(f"{seed}\0{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def hold_out(
    samples: Sequence[T],
    fraction: float = 0.2,
    seed: int = 0,
    *,
    count: int | None = None,
    label: Callable[[T], Any] | None = lambda s: getattr(s, "label", None),
    group: Callable[[T], Any] | None = lambda s: getattr(s, "patient", None),
    ident: Callable[[T], str] = lambda s: str(getattr(s, "id", s)),
    ids: Sequence[str] | None = None,
) -> tuple[list[T], list[T]]:
    """Split ``samples`` into ``(kept, held)``; ``held`` gets about ``fraction`` of them.

    ``count`` holds out that many groups instead of a fraction. Groups (by
    ``group``; each sample alone where it returns ``None``) never straddle
    the two sides; within each label (the group's most common one, ties to
    the first in sorted order) the groups are ranked by a seeded hash of
    their key, so the choice does not depend on the samples' order (nor on
    the process). ``ids`` names the held-out samples
    explicitly (recipes that fix their validation images). Both sides keep
    the input order.
    """
    items = list(samples)
    if ids is not None:
        wanted = {str(i) for i in ids}
        unknown = wanted - {ident(s) for s in items}
        if unknown:
            raise DataError(f"hold-out ids not in the data: {', '.join(sorted(unknown)[:5])}")
        held_set = {i for i, s in enumerate(items) if ident(s) in wanted}
        return _sides(items, held_set)
    if not items or (count is None and fraction <= 0) or count == 0:
        return items, []
    if count is None and not 0 < fraction < 1:
        raise DataError(f"hold-out fraction must be between 0 and 1, got {fraction}")
    groups: dict[str, list[int]] = {}
    for i, sample in enumerate(items):
        g = group(sample) if group is not None else None
        key = f"group:{g}" if g not in (None, "") else f"id:{ident(sample)}"
        groups.setdefault(key, []).append(i)
    strata: dict[str, list[str]] = {}
    for key, members in groups.items():
        labels = [_key(label(items[i])) if label is not None else "" for i in members]
        # the most common label; a tie (copies labelled differently) goes to the first in
        # sorted order: never to set order, which changes from one process to the next
        strata.setdefault(max(sorted(set(labels)), key=labels.count), []).append(key)
    held_set: set[int] = set()
    total = len(groups)
    for name in sorted(strata):
        keys = sorted(strata[name], key=lambda k: (_rank(seed, k), k))
        share = len(keys) / total
        n = round((count * share) if count is not None else len(keys) * fraction)
        n = min(n, len(keys) - 1) if len(keys) > 1 else (n if count is not None else 0)
        for key in keys[: max(0, n)]:
            held_set.update(groups[key])
    return _sides(items, held_set)


def _sides(items: list[T], held: set[int]) -> tuple[list[T], list[T]]:
    return [s for i, s in enumerate(items) if i not in held], [
        s for i, s in enumerate(items) if i in held
    ]


def ids_sha256(ids: Sequence[str]) -> str:
    """SHA-256 of the sorted ids: names a set of images in a summary or card."""
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()


def describe(samples: Sequence[Any], split: str, rule: str) -> dict[str, Any]:
    """The record of a chosen split: name, rule, count, ids (up to 50) and their hash."""
    ids = [str(getattr(s, "id", s)) for s in samples]
    record: dict[str, Any] = {
        "split": split,
        "rule": rule,
        "count": len(ids),
        "ids_sha256": ids_sha256(ids),
    }
    if len(ids) <= 50:
        record["ids"] = sorted(ids)
    return record


def select(
    samples: Sequence[T], split: str, holdout: HoldOut | None = HoldOut()
) -> tuple[list[T], dict[str, Any]]:
    """The samples of ``split`` and a record of how they were chosen.

    Samples carry ``split`` (``train``/``val``/``test``) or ``None``. Those
    with a split are taken as the data set says (``train`` includes ``val``
    unless ``val`` is asked for). Those without one are divided by
    ``holdout``: the held part is ``test``, the rest ``train``. With
    ``holdout=None``, asking for ``test`` of data without a test split is an
    error naming ``--holdout``, and ``train`` takes everything.
    """
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r} (choose {', '.join(SPLITS)})")
    items = list(samples)
    marked = [s for s in items if getattr(s, "split", None)]
    unmarked = [s for s in items if not getattr(s, "split", None)]
    bad = sorted({str(s.split) for s in marked if s.split not in SPLITS})
    if bad:
        raise DataError(f"unknown split name(s) in the data: {', '.join(bad)} (use {SPLITS})")
    wanted = ("train", "val") if split == "train" else (split,)
    chosen = [s for s in marked if s.split in wanted]
    rules = []
    if chosen:
        rules.append("the data set's own split")
    if unmarked:
        if holdout is None:
            if split == "test":
                raise DataError(
                    f"{len(unmarked)} images have no split: evaluating them would score "
                    "training images; give the data a split column or folders, or pass "
                    "--holdout FRACTION (the same value used in training)"
                )
            chosen += unmarked if split == "train" else []
            rules.append("all images without a split (no hold-out)")
        else:
            kept, held = hold_out(unmarked, holdout.fraction, holdout.seed)
            chosen += {"train": kept, "test": held, "val": []}[split]
            rules.append(holdout.describe())
    order = {id(s): i for i, s in enumerate(items)}
    chosen.sort(key=lambda s: order[id(s)])
    if not chosen:
        raise DataError(f"no images in split {split!r} ({'; '.join(rules) or 'empty data set'})")
    return chosen, describe(chosen, split, "; ".join(rules))


def overlap(a: Sequence[Any], b: Sequence[Any]) -> set[str]:
    """Image paths present on both sides (a test that a split keeps them apart)."""
    return {str(s.image) for s in a} & {str(s.image) for s in b}


#: ``--cv`` scheme of one fold per patient.
LEAVE_ONE_OUT = "leave-one-patient-out"


@dataclass(frozen=True)
class Fold:
    """One cross-validation fold: the groups (patients, else image ids) it tests on."""

    number: int
    total: int
    scheme: str
    test_groups: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"fold {self.number} of {self.total} ({self.scheme})"


def group_of(sample: Any) -> str:
    """The group a sample's folds and hold-outs keep together: its patient, else its id."""
    patient = getattr(sample, "patient", None)
    return f"patient:{patient}" if patient not in (None, "") else f"id:{getattr(sample, 'id', '')}"


def make_folds(samples: Sequence[Any], scheme: str | int, seed: int = 0) -> list[Fold]:
    """Patient-grouped folds: one per patient (:data:`LEAVE_ONE_OUT`) or ``k`` of them.

    ``k`` folds are stratified by label: the groups of each label (a group's
    most common one) are ranked by a seeded hash and dealt out in turn, so
    the folds do not depend on the samples' order. Every group is in exactly
    one fold's test part.
    """
    groups: dict[str, list[str]] = {}
    for s in samples:
        groups.setdefault(group_of(s), []).append(_key(getattr(s, "label", None)))
    keys = sorted(groups)
    if scheme == LEAVE_ONE_OUT:
        k, name = len(keys), LEAVE_ONE_OUT
    else:
        k, name = int(scheme), f"{int(scheme)}-fold"
    if k < 2 or k > len(keys):
        raise DataError(f"cannot make {k} folds of {len(keys)} patients (or images)")
    if scheme == LEAVE_ONE_OUT:
        members = [[key] for key in keys]
    else:
        members = [[] for _ in range(k)]
        by_label: dict[str, list[str]] = {}
        for key, labels in groups.items():
            by_label.setdefault(max(sorted(set(labels)), key=labels.count), []).append(key)
        turn = 0
        for label in sorted(by_label):
            for key in sorted(by_label[label], key=lambda g: (_rank(seed, g), g)):
                members[turn % k].append(key)
                turn += 1
    return [Fold(i + 1, k, name, tuple(sorted(m))) for i, m in enumerate(members)]


def apply_fold(samples: Sequence[T], fold: Fold) -> list[T]:
    """The samples re-marked for ``fold``: ``test`` in its groups, ``train`` elsewhere.

    The data set's own split marks are replaced: in cross-validation every
    image is tested once, in the fold of its patient.
    """
    import dataclasses

    held = set(fold.test_groups)
    return [
        dataclasses.replace(s, split="test" if group_of(s) in held else "train") for s in samples
    ]
