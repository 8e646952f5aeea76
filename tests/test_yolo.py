"""YOLO box labels: class names (classes.txt, data.yaml without a YAML library), boxes in
pixels as read_voc_xml gives them, not-annotated vs no boxes, one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eyescan.api import (
    DataError,
    find_yolo_names,
    imageio,
    read_voc_xml,
    read_yolo_boxes,
    read_yolo_names,
    yolo_annotation,
)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text",
    [
        "names:\n- MA\n- HE\n- EX\nnc: 3\ntrain: ../images/train\n",  # ultralytics' own dump
        "path: .\nnames:\n  - MA  # microaneurysms\n  - 'HE'\n  - \"EX\"\n",
        "nc: 3\nnames: [MA, 'HE', \"EX\"]  # a comment\n",
        "names: [MA,\n  HE, EX]\n",
        "names:\n  0: MA\n  2: EX\n  1: HE\nval: x\n",
        "names: {0: MA, 1: 'HE', 2: EX}\n",
    ],
)
def test_names_from_data_yaml_styles(tmp_path, text):
    assert read_yolo_names(_write(tmp_path / "data.yaml", text)) == ["MA", "HE", "EX"]


def test_names_from_classes_txt_and_where_they_are_found(tmp_path):
    assert find_yolo_names(tmp_path) is None
    _write(tmp_path / "retinal.names", "optic_disc\n")
    assert find_yolo_names(tmp_path) == tmp_path / "retinal.names"
    classes = _write(tmp_path / "classes.txt", "optic_disc\nhard_exudates\n\nhaemorrhage\n")
    assert find_yolo_names(tmp_path) == classes
    assert read_yolo_names(classes) == ["optic_disc", "hard_exudates", "haemorrhage"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nc: 2\n", "no top-level 'names:'"),
        ("names:\n  0: a\n  2: b\n", "without gaps"),
        ("names:\n  a: x\n", "class indices"),
        ("names: [a, b\n", "not closed"),
        ("names: a\n", "a list or a mapping"),
    ],
)
def test_bad_data_yaml_is_one_line_naming_the_file(tmp_path, text, message):
    with pytest.raises(DataError, match=message) as caught:
        read_yolo_names(_write(tmp_path / "data.yaml", text))
    assert str(caught.value).startswith(str(tmp_path / "data.yaml")) and "\n" not in str(
        caught.value
    )


def test_boxes_are_pixel_corners_equal_to_the_voc_annotation(tmp_path):
    label = _write(tmp_path / "im.txt", "1 0.25 0.5 0.1 0.2\n\n0 0.995 0.5 0.02 0.1\n")
    ann = read_yolo_boxes(label, 200, 100, ["disc", "lesion"], "im.jpg")
    voc = _write(
        tmp_path / "im.xml",
        "<annotation><filename>im.jpg</filename><size><width>200</width><height>100</height>"
        "</size><object><name>lesion</name><bndbox><xmin>40</xmin><ymin>40</ymin>"
        "<xmax>60</xmax><ymax>60</ymax></bndbox></object><object><name>disc</name><bndbox>"
        "<xmin>197</xmin><ymin>45</ymin><xmax>200</xmax><ymax>55</ymax></bndbox></object>"
        "</annotation>",
    )
    expected = read_voc_xml(voc)  # the second box is clipped at the image's right edge
    assert (ann.filename, ann.width, ann.height, ann.labels) == (
        expected.filename,
        expected.width,
        expected.height,
        expected.labels,
    )
    assert np.allclose(ann.boxes, expected.boxes)
    assert read_yolo_boxes(label, 200, 100).labels == ["1", "0"]  # no names: the numbers


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("0 0.5 0.5 0.1", "expected 'class x_centre y_centre width height', got 4 fields"),
        ("0 0.5 0.5 0.1 0.1 0.3", "got 6 fields"),  # a polygon, not a box
        ("a 0.5 0.5 0.1 0.1", "not an integer class and 4 numbers"),
        ("0 0.5 x 0.1 0.1", "not an integer class and 4 numbers"),
        ("3 0.5 0.5 0.1 0.1", r"class 3 has no name \(classes 0-2\)"),
        ("0 50 60 10 10", "normalised to 0..1"),
        ("0 0.5 0.5 0 0.1", "must be > 0"),
    ],
)
def test_malformed_lines_name_the_file_and_line(tmp_path, line, message):
    label = _write(tmp_path / "im.txt", f"0 0.5 0.5 0.2 0.2\n{line}\n")
    with pytest.raises(DataError, match=message) as caught:
        read_yolo_boxes(label, 64, 64, ["a", "b", "c"])
    assert str(caught.value).startswith(f"{label}:2: ")


def test_no_label_file_is_not_annotated_an_empty_one_has_no_boxes(tmp_path):
    image = tmp_path / "im.png"
    imageio.save_png(image, np.zeros((30, 40, 3), np.uint8))
    assert yolo_annotation(image, tmp_path / "im.txt") is None
    empty = yolo_annotation(image, _write(tmp_path / "im.txt", ""), ["a"])
    assert empty is not None and empty.boxes == [] and (empty.width, empty.height) == (40, 30)
    boxed = yolo_annotation(image, _write(tmp_path / "im.txt", "0 0.5 0.5 0.5 0.5\n"), ["a"])
    assert boxed.filename == "im.png" and boxed.boxes == [(10.0, 7.5, 30.0, 22.5)]


def test_image_size_follows_exif_rotation_as_read_image_does(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90°: the stored 40x30 is shown 30x40
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(path, exif=exif)
    assert imageio.image_size(path) == (30, 40)
    assert imageio.read_image(path).shape[:2] == (40, 30)
