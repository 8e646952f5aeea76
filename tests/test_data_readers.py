"""Readers return every sample with the split the data set gives it; CSVs read as they are."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eyescan.data import readers
from eyescan.data.readers import ClassFolderReader, ManifestReader, Sample
from eyescan.errors import DataError


def _image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)
    return path


def test_class_folders_without_splits_carry_none(tmp_path):
    for c in ("a", "b"):
        for i in range(3):
            _image(tmp_path / c / f"{i}.png")
    samples = ClassFolderReader().read(tmp_path)
    assert len(samples) == 6 and {s.split for s in samples} == {None}
    assert sorted({s.label for s in samples}) == [0, 1]


def test_class_folders_with_splits_carry_them(tmp_path):
    for split in ("train", "test"):
        for c in ("a", "b"):
            _image(tmp_path / split / c / "x.png")
    samples = ClassFolderReader().read(tmp_path)
    assert sorted(s.split for s in samples) == ["test", "test", "train", "train"]
    assert len({s.id for s in samples}) == 4  # ids unique across splits


def test_manifest_reads_split_patient_and_a_column_mapping(tmp_path):
    _image(tmp_path / "x.png")
    _image(tmp_path / "y.png")
    (tmp_path / "m.csv").write_text(
        "\ufeffpath , grade,who,part,\nx.png,1,A,Train,\ny.png,0,B,test,\n", encoding="utf-8"
    )
    columns = readers.parse_columns("image=path,label=grade,patient=who,split=part")
    samples = ManifestReader().read(tmp_path / "m.csv", columns=columns)
    assert [(s.label, s.patient, s.split) for s in samples] == [(1, "A", "train"), (0, "B", "test")]


def test_csv_errors_name_the_file_and_the_option(tmp_path):
    (tmp_path / "m.csv").write_text("path,grade\nx.png,1\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"m\.csv: table needs 'image' column.*--columns"):
        readers.read_csv_rows(tmp_path / "m.csv", ("image",))
    with pytest.raises(DataError, match="not in the file"):
        readers.read_csv_rows(tmp_path / "m.csv", columns={"image": "file"})
    with pytest.raises(DataError, match="NAME=COLUMN"):
        readers.parse_columns("image")
    (tmp_path / "s.csv").write_text("image,split\nx.png,dev\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"s\.csv:2: split 'dev'"):
        ManifestReader().read(tmp_path / "s.csv")


class _OldReader:
    """A contract-1 reader: ``read(path, split)``, everything in every split."""

    description = "old"

    def __init__(self, split_aware: bool):
        self.split_aware = split_aware

    def detect(self, path):
        return True

    def read(self, path, split):
        names = ["a", "b", "c", "d"]
        if self.split_aware:
            names = names[:3] if split == "train" else names[3:]
        return [Sample(n, Path(f"/d/{n}.png")) for n in names]


def test_old_protocol_readers_are_marked_honestly():
    unsplit = readers.read_samples(_OldReader(False), Path("/d"))
    assert len(unsplit) == 4 and {s.split for s in unsplit} == {None}
    split = readers.read_samples(_OldReader(True), Path("/d"))
    assert [s.split for s in split] == ["train", "train", "train", "test"]


def test_read_split_never_scores_training_images(tmp_path):
    """Every reader's train and test sides are disjoint (own splits or the hold-out)."""
    from eyescan.plugins import get_registry

    registry = get_registry()
    for c in ("a", "b"):
        for i in range(10):
            _image(tmp_path / "folders" / c / f"{i}.png")
    (tmp_path / "folders.csv").write_text(
        "image,label\n" + "".join(f"folders/a/{i}.png,{i % 2}\n" for i in range(10)),
        encoding="utf-8",
    )
    checked = 0
    for task in sorted(registry.tasks):
        for entry in registry.readers_for(task):
            for data in (tmp_path / "folders", tmp_path / "folders.csv"):
                if not entry.reader.detect(data):
                    continue
                try:
                    train = readers.read_split(registry, task, data, "train", entry.name).samples
                    test = readers.read_split(registry, task, data, "test", entry.name).samples
                except DataError:
                    continue  # layout not this reader's after all
                checked += 1
                assert not {str(s.image) for s in train} & {str(s.image) for s in test}, (
                    task,
                    entry.name,
                    data,
                )
    assert checked >= 2  # at least the generic folder and CSV readers of some tasks


class _TwoObservers:
    description = "two observers"

    def detect(self, path):
        return True

    def read(self, path, columns=None, annotator=None):
        return [Sample("a", Path(f"/d/a_{annotator or 1}.png"), split="train")]


def test_annotator_reaches_readers_that_take_it():
    assert readers.read_samples(_TwoObservers(), Path("/d"), annotator=2)[0].image.name == "a_2.png"
    with pytest.raises(DataError, match="one set of labels"):
        readers.read_samples(_OldReader(True), Path("/d"), annotator=2)
