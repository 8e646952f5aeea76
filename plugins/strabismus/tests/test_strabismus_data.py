"""Strabismus data: labelImg VOC XML, box and label CSVs, class folders, the manifest, crops."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from eyescan.api import DataError, imageio
from eyescan_strabismus.data import (
    BoxManifestReader,
    FolderReader,
    crop,
    load_sample,
    main_box,
    with_margin,
)
from eyescan_strabismus.synthetic import write_split

LABELIMG_XML = Path(__file__).parent / "data" / "patient_0001.xml"


def _image(path: Path, h: int = 120, w: int = 160) -> None:
    imageio.save_png(path, np.full((h, w, 3), 128, np.uint8))


def test_labelimg_xml_with_labels_csv(tmp_path):
    _image(tmp_path / "images" / "patient_0001.png")
    _image(tmp_path / "images" / "patient_0002.png")
    (tmp_path / "annotations").mkdir()
    shutil.copy(LABELIMG_XML, tmp_path / "annotations" / "patient_0001.xml")
    (tmp_path / "labels.csv").write_text(
        "image,label\npatient_0001.png,strabismus\npatient_0002.png,0\n"
    )
    reader = FolderReader()
    assert reader.detect(tmp_path)
    first, second = reader.read(tmp_path, "train")
    assert first.boxes == [(31.0, 42.0, 129.0, 67.0)] and first.label == 1
    assert second.boxes is None and second.label == 0  # no XML: not annotated
    loaded = load_sample(first)
    assert loaded.image.shape == (120, 160, 3)


def test_box_csv_and_class_folders(tmp_path):
    _image(tmp_path / "train" / "normal" / "a.png")
    _image(tmp_path / "train" / "strabismus" / "b.png")
    _image(tmp_path / "train" / "strabismus" / "c.png")
    (tmp_path / "train" / "boxes.csv").write_text(
        "image,label,xmin,ymin,xmax,ymax\na.png,eyes,10,20,100,40\nb.png,,,,,\n"
    )
    samples = {s.id: s for s in FolderReader().read(tmp_path, "train")}
    assert samples["normal/a"].label == 0 and samples["normal/a"].boxes == [(10, 20, 100, 40)]
    assert samples["strabismus/b"].boxes == []  # annotated: no eye region
    assert samples["strabismus/c"].boxes is None and samples["strabismus/c"].label == 1


def test_manifest_with_boxes_and_splits(tmp_path):
    _image(tmp_path / "x.png")
    _image(tmp_path / "y.png")
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "image,label,xmin,ymin,xmax,ymax,split\nx.png,1,5,6,50,30,train\ny.png,normal,,,,,test\n"
    )
    reader = BoxManifestReader()
    assert reader.detect(manifest)
    (train,) = reader.read(manifest, "train")
    assert train.label == 1 and train.boxes == [(5, 6, 50, 30)]
    (test,) = reader.read(manifest, "test")
    assert test.label == 0 and test.boxes == []


def test_bad_inputs_are_one_line_errors(tmp_path):
    _image(tmp_path / "images" / "a.png", 50, 50)
    (tmp_path / "labels.csv").write_text("image,label\na.png,maybe\n")
    with pytest.raises(DataError, match="label 'maybe'"):
        FolderReader().read(tmp_path, "train")
    (tmp_path / "labels.csv").write_text("image,label\na.png,1\n")
    (tmp_path / "boxes.csv").write_text("image,label,xmin,ymin,xmax,ymax\na.png,eyes,10,10,90,20\n")
    (sample,) = FolderReader().read(tmp_path, "train")
    with pytest.raises(DataError, match="outside the 50×50 image"):
        load_sample(sample)


def test_synthetic_split_round_trips_through_both_box_formats(tmp_path):
    write_split(tmp_path / "voc", 4, size=64, seed=3, boxes="voc", no_face_fraction=0.5)
    write_split(tmp_path / "csv", 4, size=64, seed=3, boxes="csv", no_face_fraction=0.5)
    voc = FolderReader().read(tmp_path / "voc", "train")
    csv = FolderReader().read(tmp_path / "csv", "train")
    assert [s.label for s in voc] == [s.label for s in csv]
    for a, b in zip(voc, csv):
        assert len(a.boxes) == len(b.boxes) == (a.label is not None)
        for ba, bb in zip(a.boxes, b.boxes):
            assert np.allclose(ba, bb, atol=0.51)  # VOC stores whole pixels


def test_crop_margin_and_size():
    image = np.zeros((100, 200, 3), np.uint8)
    assert with_margin((50, 40, 150, 60), image.shape, 0.1) == (40, 30, 160, 70)
    assert with_margin((0, 0, 200, 100), image.shape, 0.1) == (0, 0, 200, 100)  # clipped
    assert crop(image, (50, 40, 150, 60), 32).shape == (32, 32, 3)
    assert main_box(None, image.shape) == (0, 0, 200, 100)
    assert main_box([(0, 0, 10, 10), (0, 0, 50, 20)], image.shape) == (0, 0, 50, 20)
