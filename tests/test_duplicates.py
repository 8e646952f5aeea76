"""Byte-identical images: found by SHA-256, the test copy kept, copies grouped as one
patient, conflicting labels named in the notes that read_split passes on."""

from __future__ import annotations

import hashlib
from pathlib import Path

from eyescan.api import (
    Sample,
    file_sha256,
    find_identical,
    read_split,
    resolve_duplicates,
    splits,
)


def _file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _samples(tmp_path: Path) -> list[Sample]:
    """a = d (train/test, labels differ), b = c (train/train), e = f (unsplit), g alone
    (g has the size of a but other bytes)."""
    files = {
        "a": b"photo-1",
        "b": b"photo-22",
        "c": b"photo-22",
        "d": b"photo-1",
        "e": b"photo-333",
        "f": b"photo-333",
        "g": b"photo-9",
    }
    splits_ = {"a": "train", "b": "train", "c": "train", "d": "test"}
    labels = {"a": 0, "d": 3, "b": 1, "c": 1, "e": 2, "f": 2, "g": 2}
    return [
        Sample(
            name, _file(tmp_path / f"{name}.png", data), label=labels[name], split=splits_.get(name)
        )  # fmt: skip
        for name, data in files.items()
    ]


def test_hash_and_groups(tmp_path):
    samples = _samples(tmp_path)
    assert file_sha256(samples[0].image) == hashlib.sha256(b"photo-1").hexdigest()
    groups = find_identical(samples)
    assert [[s.id for s in g] for g in groups.values()] == [["a", "d"], ["b", "c"], ["e", "f"]]
    assert list(groups)[0] == hashlib.sha256(b"photo-1").hexdigest()


def test_the_rule_keeps_the_test_copy_and_groups_the_rest(tmp_path):
    kept, report = resolve_duplicates(_samples(tmp_path))
    assert [s.id for s in kept] == ["b", "c", "d", "e", "f", "g"]  # train copy of a = d dropped
    across, twins, unsplit = report
    assert (across.kept, across.dropped, across.conflict) == (["d"], ["a"], True)
    assert (twins.kept, twins.dropped, twins.conflict) == (["b", "c"], [], False)
    by_id = {s.id: s for s in kept}
    assert by_id["b"].patient == by_id["c"].patient == f"identical:{twins.sha256[:12]}"
    assert by_id["e"].patient == by_id["f"].patient and by_id["g"].patient is None
    note = across.note()
    assert note.startswith("byte-identical images d (d.png: label 3) = a (a.png: label 0)")
    assert "labels differ; kept d, dropped a" in note and "\n" not in note
    assert by_id["d"].notes == [note] and "labels differ" not in twins.note()


def test_grouped_copies_never_straddle_the_hold_out(tmp_path):
    samples = []
    for i in range(40):
        data = f"image-{i // 2}".encode()  # every image twice, no split, no patient
        samples.append(Sample(f"im{i}", _file(tmp_path / f"im{i}.png", data), label=i % 2))
    kept, report = resolve_duplicates(samples)
    assert len(kept) == 40 and len(report) == 20
    train, test = splits.hold_out(kept, 0.3, seed=1)
    assert train and test
    sides = {s.image.read_bytes(): "train" for s in train}
    assert all(s.image.read_bytes() not in sides for s in test)


def test_named_patients_of_copies_are_joined(tmp_path):
    a = Sample("a", _file(tmp_path / "a.png", b"same"), patient="p2")
    b = Sample("b", _file(tmp_path / "b.png", b"same"), patient="p1")
    other = Sample("c", _file(tmp_path / "c.png", b"other eye of p2"), patient="p2")
    kept, _ = resolve_duplicates([a, b, other])
    assert [s.patient for s in kept] == ["p1", "p1", "p1"]  # p2's other eye follows


def test_read_split_records_the_notes(tmp_path):
    class Reader:
        description = "test"

        def detect(self, path):
            return True

        def read(self, path, columns=None):
            return resolve_duplicates(_samples(tmp_path))[0]

    class Entry:
        name, reader = "dup", Reader()

    class Registry:
        def reader(self, task, name):
            return Entry()

    chosen = read_split(Registry(), "t", tmp_path, "test", reader="dup")
    assert [s.id for s in chosen.samples if s.split == "test"] == ["d"]
    (note,) = [n for n in chosen.info["notes"] if "labels differ" in n]
    assert "d (d.png: label 3) = a (a.png: label 0)" in note and len(chosen.info["notes"]) == 3
