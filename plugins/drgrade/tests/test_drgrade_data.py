"""Readers (labelImg VOC XML, grade and box tables: all samples, marked with their split
and patient), boxes from masks, the square view, the synthetic set's grading rule."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from eyescan.api import DataError, imageio, read_voc_xml, synthetic
from eyescan_drgrade.data import (
    BoxTableReader,
    GradeTableReader,
    VocFolderReader,
    square_fundus,
    write_voc_xml,
)
from eyescan_drgrade.lesions import (
    boxes_from_mask,
    canonical_label,
    combine_grades,
    grade_from_lesions,
    lesion_summary,
)

LABELIMG_XML = Path(__file__).parent / "data" / "labelimg_IM000421.xml"


def test_reads_a_labelimg_file():
    annotation = read_voc_xml(LABELIMG_XML)
    assert annotation.filename == "IM000421.jpg"
    assert (annotation.width, annotation.height) == (192, 128)
    assert annotation.labels == ["MA", "haemorrhage", "hard exudate"]
    assert annotation.boxes[1] == (102.0, 70.0, 113.0, 79.0)
    assert [canonical_label(n) for n in annotation.labels] == [
        "microaneurysm",
        "haemorrhage",
        "hard_exudate",
    ]


def test_written_xml_has_labelimg_layout(tmp_path):
    original = read_voc_xml(LABELIMG_XML)
    image = tmp_path / "DR_grade4" / "IM000421.jpg"
    written = write_voc_xml(tmp_path / "out.xml", original, image)
    text = written.read_text()
    assert text.startswith("<annotation>\n\t<folder>DR_grade4</folder>\n\t<filename>")
    assert "\t\t<bndbox>\n\t\t\t<xmin>61</xmin>" in text
    again = read_voc_xml(written)
    assert again.labels == original.labels and again.boxes == original.boxes


def test_voc_folder_reader_with_labelimg_annotations(tmp_path):
    (tmp_path / "Annotations").mkdir()
    shutil.copy(LABELIMG_XML, tmp_path / "Annotations" / "IM000421.xml")
    imageio.save_png(tmp_path / "images" / "IM000421.png", np.zeros((128, 192, 3), np.uint8))
    (tmp_path / "images" / "IM000421.png").rename(tmp_path / "images" / "IM000421.jpg")
    reader = VocFolderReader()
    assert reader.detect(tmp_path)
    (sample,) = reader.read(tmp_path)
    assert sample.id == "IM000421" and sample.label is None and sample.split is None
    assert sample.image == tmp_path / "images" / "IM000421.jpg"
    assert len(sample.boxes.boxes) == 3


def _image(path: Path) -> None:
    imageio.save_png(path, np.full((8, 8, 3), 40, np.uint8))


def test_grade_table_aliases_aptos_and_idrid(tmp_path):
    (tmp_path / "train_images").mkdir()
    _image(tmp_path / "train_images" / "000c1434d8d7.png")
    aptos = tmp_path / "train.csv"
    aptos.write_text("id_code,diagnosis\n000c1434d8d7,2\n")
    assert GradeTableReader().detect(aptos)
    (sample,) = GradeTableReader().read(aptos)
    assert sample.label == 2 and sample.image.name == "000c1434d8d7.png"
    assert sample.split is None and sample.patient is None  # no split column: held out later

    _image(tmp_path / "IDRiD_001.jpg")
    idrid = tmp_path / "idrid.csv"
    idrid.write_text("Image name,Retinopathy grade,Risk of macular edema \nIDRiD_001,4,2\n")
    (sample,) = GradeTableReader().read(idrid)
    assert sample.label == 4


def test_grade_table_errors_name_the_file_and_line(tmp_path):
    _image(tmp_path / "a.png")
    bad = tmp_path / "grades.csv"
    bad.write_text("image,grade\na.png,7\n")
    with pytest.raises(DataError, match=r"grades.csv:2: grade 7"):
        GradeTableReader().read(bad)
    bad.write_text("image,grade\nmissing.png,1\n")
    with pytest.raises(DataError, match="missing.png"):
        GradeTableReader().read(bad)
    bad.write_text("image,grade,split\na.png,1,holdout\n")
    with pytest.raises(DataError, match=r"grades.csv:2: split 'holdout'"):
        GradeTableReader().read(bad)
    bad.write_text("picture,severity\na.png,1\n")
    with pytest.raises(DataError, match="--columns"):
        GradeTableReader().read(bad)


def test_box_table_with_split(tmp_path):
    _image(tmp_path / "a.png")
    _image(tmp_path / "b.png")
    boxes = tmp_path / "boxes.csv"
    boxes.write_text(
        "image,label,xmin,ymin,xmax,ymax,split\n"
        "a.png,MA,1,1,3,3,train\na.png,EX,4,4,6,6,train\nb.png,,,,,,test\n"
    )
    assert BoxTableReader().detect(boxes) and not GradeTableReader().detect(boxes)
    train, test = BoxTableReader().read(boxes)
    assert (train.id, train.split, train.boxes.labels) == ("a", "train", ["MA", "EX"])
    assert (test.id, test.split, test.boxes.labels) == ("b", "test", [])


def test_grade_table_marks_splits_and_patients_and_maps_columns(tmp_path):
    for name in ("l1", "r1", "l2"):
        _image(tmp_path / f"{name}.png")
    table = tmp_path / "mine.csv"
    table.write_text(
        "Image,Grade,Split,Patient\nl1.png,0,train,p1\nr1.png,2,validation,p1\nl2,4,test,p2\n"
    )
    samples = GradeTableReader().read(table)
    assert [(s.id, s.label, s.split, s.patient) for s in samples] == [
        ("l1", 0, "train", "p1"),
        ("r1", 2, "val", "p1"),
        ("l2", 4, "test", "p2"),
    ]
    own = tmp_path / "own.csv"
    own.write_text("file,severity,person\nl1.png,1,a\nr1.png,3,a\n")
    assert not GradeTableReader().detect(own)  # unknown names: map them
    columns = {"image": "file", "label": "severity", "patient": "person"}
    samples = GradeTableReader().read(own, columns)
    assert [(s.label, s.split, s.patient) for s in samples] == [(1, None, "a"), (3, None, "a")]
    assert [
        s.label for s in GradeTableReader().read(own, {"image": "file", "grade": "severity"})
    ] == [1, 3]


def test_voc_folder_marks_splits_from_image_sets(tmp_path):
    from eyescan_drgrade.synthetic_set import write_synthetic_set

    root = write_synthetic_set(tmp_path / "set", n_train=3, n_test=2, size=64, seed=1)
    (root / "grades.csv").unlink()  # splits now come from ImageSets/Main/*.txt
    samples = VocFolderReader().read(root)
    assert [s.split for s in samples] == ["train"] * 3 + ["test"] * 2
    assert all(s.boxes is not None for s in samples)


def test_plain_table_is_held_out_not_scored_whole(tmp_path):
    """No split column: read_split keeps the hold-out apart; train and test never meet."""
    from eyescan.api import get_registry, read_split, splits

    rows = ["image,grade,patient"]
    for i in range(20):
        _image(tmp_path / f"e{i}.png")
        rows.append(f"e{i}.png,{i % 5},p{i // 2}")  # two eyes per patient
    table = tmp_path / "grades.csv"
    table.write_text("\n".join(rows) + "\n")
    registry = get_registry()
    train = read_split(registry, "drgrade", table, "train")
    test = read_split(registry, "drgrade", table, "test")
    assert train.reader == "grades" and test.samples and train.samples
    assert not splits.overlap(train.samples, test.samples)
    assert len(train.samples) + len(test.samples) == 20
    patients = {s.patient for s in train.samples}
    assert not patients & {s.patient for s in test.samples}  # eyes stay with their patient
    assert "hold-out" in test.info["rule"] and test.info["count"] == len(test.samples)
    with pytest.raises(DataError, match="--holdout"):
        read_split(registry, "drgrade", table, "test", holdout=False)


def test_boxes_from_synthetic_masks_one_per_lesion():
    fundus = synthetic.make_fundus(128, seed=3, severity=3)
    boxes = boxes_from_mask(fundus.haemorrhages)
    from scipy import ndimage

    _, count = ndimage.label(fundus.haemorrhages, structure=np.ones((3, 3)))
    assert len(boxes) == count >= 10
    mask = fundus.haemorrhages
    for x0, y0, x1, y1 in boxes:  # tight: every edge row and column touches the lesion
        assert mask[y0, x0:x1].any() and mask[y1 - 1, x0:x1].any()
        assert mask[y0:y1, x0].any() and mask[y0:y1, x1 - 1].any()


def test_square_view_keeps_a_wide_fundus_round_and_maps_boxes_back():
    fundus = synthetic.make_fundus((128, 192), seed=5, severity=3)
    square, frame = square_fundus(fundus.image)
    assert square.shape[0] == square.shape[1]
    rows = np.flatnonzero(fundus.fov.any(axis=1))
    cols = np.flatnonzero(fundus.fov.any(axis=0))
    # the FOV circle fills the square both ways: nothing was squashed
    assert abs((rows[-1] - rows[0]) - (cols[-1] - cols[0])) <= 2
    assert abs(square.shape[0] - (cols[-1] - cols[0] + 1)) <= 3
    boxes = np.array(boxes_from_mask(fundus.haemorrhages), float)
    there = frame.to_square(boxes, 256)
    assert np.allclose(frame.to_original(there, 256), boxes)
    heat = np.ones((64, 64), np.float32)
    back = frame.heat_to_original(heat, fundus.image.shape[:2])
    assert back.shape == fundus.fov.shape and back[fundus.fov].min() > 0.99


def test_lesion_rule_and_combination():
    counts = {"microaneurysm": 0, "haemorrhage": 0, "hard_exudate": 0}
    assert grade_from_lesions(counts) == 0
    assert grade_from_lesions({**counts, "microaneurysm": 3}) == 1
    assert grade_from_lesions({**counts, "hard_exudate": 1}) == 2
    assert grade_from_lesions({**counts, "haemorrhage": 10}) == 3
    assert grade_from_lesions({**counts, "haemorrhage": 10}, severe_haemorrhages=20) == 2
    # A count threshold for moderate DR (CODRAS haemorrhage boxes also hold microaneurysms).
    few = {**counts, "haemorrhage": 2, "hard_exudate": 1}
    assert grade_from_lesions(few, moderate_lesions=4) == 1
    assert grade_from_lesions(few, moderate_lesions=3) == 2
    assert grade_from_lesions(counts, moderate_lesions=4) == 0
    assert combine_grades(4, 2) == 4 and combine_grades(0, 2) == 2
    assert combine_grades(0, 2, "classifier") == 0 and combine_grades(None, 1) == 1
    summary = lesion_summary(["haemorrhage", "microaneurysm"], [[0, 0, 4, 5], [1, 1, 3, 3]])
    assert summary["counts"]["haemorrhage"] == 1 and summary["areas"]["haemorrhage"] == 20.0


def test_class_folders_named_by_grade(tmp_path):
    from eyescan_drgrade.data import class_folder_reader

    for grade in (0, 3):
        _image(tmp_path / "train" / str(grade) / f"eye{grade}.png")
    reader = class_folder_reader()
    assert reader.detect(tmp_path)
    samples = reader.read(tmp_path)
    assert sorted((s.image.name, s.label, s.split) for s in samples) == [
        ("eye0.png", 0, "train"),
        ("eye3.png", 3, "train"),
    ]


def test_synthetic_grading_rule():
    from eyescan_drgrade.synthetic_set import reaches, synthetic_grade

    none = {"microaneurysms": 0, "haemorrhages": 0, "exudates": 0, "neovascular": 0}
    assert synthetic_grade(none) == 0
    assert synthetic_grade({**none, "microaneurysms": 3}) == 1
    assert synthetic_grade({**none, "microaneurysms": 3, "haemorrhages": 2}) == 2
    assert synthetic_grade({**none, "microaneurysms": 3, "exudates": 4}) == 2
    assert synthetic_grade({**none, "microaneurysms": 3, "haemorrhages": 10}) == 3
    assert synthetic_grade({**none, "haemorrhages": 12, "exudates": 5, "neovascular": 1}) == 4
    assert not reaches({**none, "neovascular": 1}, 4)  # new vessels alone: incomplete


@pytest.mark.parametrize("grade", range(5))
def test_synthetic_images_reach_their_grade(grade):
    from scipy import ndimage

    from eyescan_drgrade.synthetic_set import synthetic_grade, synthetic_image

    made = synthetic_image(96, grade, seed=grade, wide=grade % 2 == 1)
    assert synthetic_grade(made.lesion_counts) == grade
    count = ndimage.label(made.haemorrhages, structure=np.ones((3, 3)))[1]
    assert made.lesion_counts["haemorrhages"] == count
