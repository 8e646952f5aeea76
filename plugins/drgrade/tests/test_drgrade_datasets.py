"""Readers of published layouts: IDRiD part B (both labels, official split, CODRAS YOLO
boxes, byte-identical copies) and Kaggle APTOS 2019 / EyePACS; made-up layouts in
tmp_path and, where present, the real copies in ../shared/data."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from eyescan.api import DataError, find_reader, get_registry, imageio, read_split, splits
from eyescan_drgrade.datasets import IdridGradingReader, KaggleGradingReader

SHARED = Path(__file__).resolve().parents[4] / "shared" / "data"
IDRID = SHARED / "IDRiD" / "B. Disease Grading"
APTOS = SHARED / "APTOS2019"
TRAIN_CSV = "a. IDRiD_Disease Grading_Training Labels.csv"
TEST_CSV = "b. IDRiD_Disease Grading_Testing Labels.csv"


def _image(path: Path, shade: int, size: tuple[int, int] = (16, 24)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    imageio.save_png(path, np.full((*size, 3), shade, np.uint8))
    return path


def _idrid(root: Path, boxes: bool = True) -> Path:
    """Official names; train 001-003, test 001-002; train 003 = test 002 byte for byte."""
    part = root / "B. Disease Grading"
    images = part / "1. Original Images"
    for n, shade in ((1, 10), (2, 20), (3, 99)):
        _image(images / "a. Training Set" / f"IDRiD_00{n}.jpg", shade)
    for n, shade in ((1, 40), (2, 99)):
        _image(images / "b. Testing Set" / f"IDRiD_00{n}.jpg", shade)
    truths = part / "2. Groundtruths"
    truths.mkdir()
    (truths / TRAIN_CSV).write_text(
        "Image name,Retinopathy grade,Risk of macular edema ,,,\n"
        "IDRiD_001,3,2,,,\nIDRiD_002,0,0 ,,,\nIDRiD_003,0,1,,,\n"
    )
    (truths / TEST_CSV).write_text(
        "Image name,Retinopathy grade,Risk of macular edema \nIDRiD_001,4,1\nIDRiD_002,2,1\n"
    )
    if boxes:
        yolo = part / "3. Lesion boxes (CODRAS, YOLO)"
        (yolo / "a. Training Set").mkdir(parents=True)
        (yolo / "b. Testing Set").mkdir()
        (yolo / "classes.txt").write_text("optic_disc\nhard_exudates\nhaemorrhage\n")
        (yolo / "a. Training Set" / "IDRiD_001.txt").write_text(
            "0 0.5 0.5 0.25 0.5\n2 0.25 0.25 0.5 0.5\n"
        )
        (yolo / "a. Training Set" / "IDRiD_002.txt").write_text("")  # annotated, no lesions
        (yolo / "b. Testing Set" / "IDRiD_001.txt").write_text("1 0.5 0.5 0.5 0.5\n")
    return part


def test_idrid_layout_both_labels_split_boxes_and_duplicates(tmp_path):
    root = _idrid(tmp_path)
    reader = IdridGradingReader()
    assert reader.detect(root) and reader.detect(tmp_path)  # the part B folder or its parent
    samples = {s.id: s for s in reader.read(tmp_path)}
    # train/IDRiD_003 is a copy of test/IDRiD_002: the train copy goes, the test copy stays
    assert sorted(samples) == ["test/IDRiD_001", "test/IDRiD_002", "train/IDRiD_001",
                               "train/IDRiD_002"]  # fmt: skip
    first = samples["train/IDRiD_001"]
    assert (first.label, first.dme, first.split, first.patient) == (3, 2, "train", None)
    assert first.image == root / "1. Original Images" / "a. Training Set" / "IDRiD_001.jpg"
    assert (samples["test/IDRiD_001"].label, samples["test/IDRiD_001"].dme) == (4, 1)
    assert samples["train/IDRiD_002"].dme == 0  # "0 " read as 0
    assert first.boxes.labels == ["optic_disc", "haemorrhage"]
    assert first.boxes.boxes == [(9.0, 4.0, 15.0, 12.0), (0.0, 0.0, 12.0, 8.0)]  # 24x16 px
    assert samples["train/IDRiD_002"].boxes.boxes == []  # empty file: no lesions
    assert samples["test/IDRiD_002"].boxes is None  # no label file: not annotated
    (note,) = samples["test/IDRiD_002"].notes
    assert note.startswith(
        "byte-identical images test/IDRiD_002 (IDRiD_002.jpg: grade 2, DME 1) = "
        "train/IDRiD_003 (IDRiD_003.jpg: grade 0, DME 1); labels differ; "
        "kept test/IDRiD_002, dropped train/IDRiD_003"
    )
    assert all(s.boxes is None for s in IdridGradingReader().read(_idrid(tmp_path / "b", False)))


def test_idrid_is_read_by_the_official_split_and_the_notes_reach_the_info(tmp_path):
    root = _idrid(tmp_path)
    registry = get_registry()
    assert find_reader(registry, "drgrade", root)[0] == "idrid"
    train = read_split(registry, "drgrade", root, "train")
    test = read_split(registry, "drgrade", root, "test")
    assert [s.id for s in test.samples] == ["test/IDRiD_001", "test/IDRiD_002"]
    assert not splits.overlap(train.samples, test.samples)
    assert test.info["rule"] == "the data set's own split" and len(test.info["notes"]) == 1


@pytest.mark.parametrize(
    ("csv", "text", "message"),
    [
        (TRAIN_CSV, "Image name,Retinopathy grade\nIDRiD_001,3\n",
         "Training Labels.csv: IDRiD grading table lacks column.s. 'Risk of macular edema'"),
        (TRAIN_CSV, "Image name,Retinopathy grade,Risk of macular edema\nIDRiD_001,5,0\n",
         r"Training Labels.csv:2: retinopathy grade 5 is outside 0-4"),
        (TEST_CSV, "Image name,Retinopathy grade,Risk of macular edema\nIDRiD_001,1,3\n",
         r"Testing Labels.csv:2: risk of macular edema 3 is outside 0-2"),
        (TEST_CSV, "Image name,Retinopathy grade,Risk of macular edema\nIDRiD_009,1,0\n",
         r"Testing Labels.csv:2: image 'IDRiD_009' not found"),
        (TEST_CSV, "Image name,Retinopathy grade,Risk of macular edema\nIDRiD_001,1,0\n"
         "IDRiD_001,1,0\n", "'IDRiD_001' is listed twice"),
    ],
)  # fmt: skip
def test_idrid_errors_name_the_file_and_line(tmp_path, csv, text, message):
    root = _idrid(tmp_path)
    (root / "2. Groundtruths" / csv).write_text(text)
    with pytest.raises(DataError, match=message):
        IdridGradingReader().read(root)


def test_idrid_malformed_box_file_names_the_file_and_line(tmp_path):
    root = _idrid(tmp_path)
    label = root / "3. Lesion boxes (CODRAS, YOLO)" / "b. Testing Set" / "IDRiD_001.txt"
    label.write_text("1 0.5 0.5 0.5 0.5\n7 0.5 0.5 0.1 0.1\n")
    with pytest.raises(DataError, match=r"IDRiD_001.txt:2: class 7 has no name"):
        IdridGradingReader().read(root)


def _kaggle(root: Path, eyepacs: bool, n: int = 20) -> Path:
    """``n`` images, grades 0-4 in turn; EyePACS: both eyes of n/2 patients."""
    if eyepacs:
        names = [f"{10 + i // 2}_{('left', 'right')[i % 2]}" for i in range(n)]
        table, header, folder, suffixes = "trainLabels.csv", "image,level", "train", [".jpeg"]
    else:
        names = [f"{i:03d}c1434d8d7" for i in range(n)]
        table, header, folder = "train.csv", "id_code,diagnosis", "train_images"
        suffixes = [".png", ".jpg", ".tif", ".jpeg"]  # any image extension, mixed
    for i, name in enumerate(names):
        _image(root / folder / f"{name}{suffixes[i % len(suffixes)]}", 10 * i)
    rows = [f"{name},{i % 5}" for i, name in enumerate(names)]
    (root / table).write_text("\n".join([header, *rows]) + "\n")
    return root


@pytest.mark.parametrize("eyepacs", [False, True])
def test_kaggle_layouts_any_extension_no_split(tmp_path, eyepacs):
    root = _kaggle(tmp_path, eyepacs)
    assert find_reader(get_registry(), "drgrade", root)[0] == "kaggle"
    samples = KaggleGradingReader().read(root)
    assert [s.label for s in samples] == [i % 5 for i in range(20)]
    assert all(s.split is None for s in samples)
    if eyepacs:
        assert [s.patient for s in samples][:4] == ["10", "10", "11", "11"]
        assert samples[0].image.name == "10_left.jpeg" and samples[0].id == "10_left"
    else:
        assert all(s.patient is None for s in samples)  # APTOS names no patient
        assert [s.image.suffix for s in samples][:4] == [".png", ".jpg", ".tif", ".jpeg"]
    train = read_split(get_registry(), "drgrade", root, "train").samples
    test = read_split(get_registry(), "drgrade", root, "test").samples
    assert train and test and not splits.overlap(train, test)
    assert not {s.patient for s in train} & {s.patient for s in test} - {None}


def test_kaggle_errors_and_copies(tmp_path):
    root = _kaggle(tmp_path, eyepacs=False, n=2)
    table = root / "train.csv"
    table.write_text("id_code,diagnosis\n000c1434d8d7,2\nmissing,1\n")
    with pytest.raises(DataError, match=r"train.csv:3: image 'missing' not found in"):
        KaggleGradingReader().read(root)
    table.write_text("id_code,diagnosis\n000c1434d8d7,two\n")
    with pytest.raises(DataError, match=r"train.csv:2: grade 'two' is not a number"):
        KaggleGradingReader().read(root)
    _image(root / "train_images" / "000c1434d8d7.tif", 1)  # .png and .tif: which one?
    table.write_text("id_code,diagnosis\n000c1434d8d7,2\n")
    with pytest.raises(DataError, match="several files .* named '000c1434d8d7'"):
        KaggleGradingReader().read(root)
    copy = (root / "train_images" / "001c1434d8d7.jpg").read_bytes()
    (root / "train_images" / "copy.png").write_bytes(copy)
    table.write_text("id_code,diagnosis\n001c1434d8d7,2\ncopy,3\n")
    first, second = KaggleGradingReader().read(root)
    assert first.patient == second.patient and first.patient.startswith("identical:")
    assert "labels differ" in first.notes[0] and "copy (copy.png: grade 3)" in first.notes[0]


@pytest.mark.skipif(not IDRID.exists(), reason="IDRiD not found at ../shared/data/IDRiD")
def test_real_idrid_part_b():
    samples = IdridGradingReader().read(IDRID)
    ids = [s.id for s in samples]
    assert len(ids) == len(set(ids)) == 413 + 103 - 1  # train/IDRiD_118 = test/IDRiD_064
    assert "train/IDRiD_118" not in ids and "test/IDRiD_064" in ids
    by_split = Counter(s.split for s in samples)
    assert by_split == {"train": 412, "test": 103}
    test_grades = Counter(s.label for s in samples if s.split == "test")
    assert test_grades == {0: 34, 1: 5, 2: 32, 3: 19, 4: 13}  # as SOURCE.txt counts
    assert Counter(s.dme for s in samples if s.split == "test") == {0: 45, 1: 10, 2: 48}
    notes = sorted({n for s in samples for n in s.notes})
    assert len(notes) == 6 and sum("labels differ" in n for n in notes) == 4
    assert any("test/IDRiD_064" in n and "dropped train/IDRiD_118" in n for n in notes)
    boxed = [s for s in samples if s.boxes is not None]
    assert len(boxed) == 502  # CODRAS has no boxes for the 13 other images (copies, two gaps)
    assert {n for s in boxed for n in s.boxes.labels} == {
        "optic_disc",
        "hard_exudates",
        "haemorrhage",
    }
    for s in boxed:
        b = np.asarray(s.boxes.boxes).reshape(-1, 4)
        assert (s.boxes.width, s.boxes.height) == (1072, 712)
        assert (b[:, 2:] > b[:, :2]).all() and b[:, 2].max() <= 1072 and b[:, 3].max() <= 712


@pytest.mark.skipif(not APTOS.exists(), reason="APTOS 2019 not found at ../shared/data/APTOS2019")
def test_real_aptos():
    registry = get_registry()
    assert find_reader(registry, "drgrade", APTOS)[0] == "kaggle"
    samples = KaggleGradingReader().read(APTOS)
    assert len(samples) == 3000 and all(s.split is None and s.image.is_file() for s in samples)
    assert Counter(s.label for s in samples) == {0: 1479, 1: 303, 2: 818, 3: 158, 4: 242}
    test = read_split(registry, "drgrade", APTOS, "test")
    assert "hold-out 0.2" in test.info["rule"] and 550 <= test.info["count"] <= 650
