"""Strabismus data: labelImg VOC XML, box and label CSVs, class folders, the manifest, crops;
every reader marks each sample with its split (or none) and its patient."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from eyescan.api import DataError, get_registry, imageio, read_split, splits
from eyescan_strabismus.data import (
    BoxManifestReader,
    FolderReader,
    crop,
    load_sample,
    main_box,
    with_margin,
)
from eyescan_strabismus.synthetic import write_dataset, write_split

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
    first, second = reader.read(tmp_path)
    assert first.split is None and first.id == "images/patient_0001"
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
    samples = {s.id: s for s in FolderReader().read(tmp_path)}
    a, b, c = (
        samples["train/normal/a"],
        samples["train/strabismus/b"],
        samples["train/strabismus/c"],
    )
    assert a.label == 0 and a.boxes == [(10, 20, 100, 40)] and a.split == "train"
    assert b.boxes == []  # annotated: no eye region
    assert c.boxes is None and c.label == 1


def test_manifest_with_boxes_and_splits(tmp_path):
    _image(tmp_path / "x.png")
    _image(tmp_path / "y.png")
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "image,label,xmin,ymin,xmax,ymax,split\nx.png,1,5,6,50,30,train\ny.png,normal,,,,,test\n"
    )
    reader = BoxManifestReader()
    assert reader.detect(manifest)
    train, test = reader.read(manifest)
    assert train.split == "train" and train.label == 1 and train.boxes == [(5, 6, 50, 30)]
    assert test.split == "test" and test.label == 0 and test.boxes == []


def test_bad_inputs_are_one_line_errors(tmp_path):
    _image(tmp_path / "images" / "a.png", 50, 50)
    (tmp_path / "labels.csv").write_text("image,label\na.png,maybe\n")
    with pytest.raises(DataError, match="label 'maybe'"):
        FolderReader().read(tmp_path)
    (tmp_path / "labels.csv").write_text("image,label\na.png,1\n")
    (tmp_path / "boxes.csv").write_text("image,label,xmin,ymin,xmax,ymax\na.png,eyes,10,10,90,20\n")
    (sample,) = FolderReader().read(tmp_path)
    with pytest.raises(DataError, match="outside the 50×50 image"):
        load_sample(sample)


def test_synthetic_split_round_trips_through_both_box_formats(tmp_path):
    write_split(tmp_path / "voc", 4, size=64, seed=3, boxes="voc", no_face_fraction=0.5)
    write_split(tmp_path / "csv", 4, size=64, seed=3, boxes="csv", no_face_fraction=0.5)
    voc = FolderReader().read(tmp_path / "voc")
    csv = FolderReader().read(tmp_path / "csv")
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


def test_folders_mark_their_split_and_read_split_keeps_them_apart(tmp_path):
    write_dataset(tmp_path, n_train=6, n_test=4, size=48, seed=2)
    samples = FolderReader().read(tmp_path)
    assert {s.split for s in samples} == {"train", "test"}
    assert sum(s.split == "test" for s in samples) == 4
    assert len({s.id for s in samples}) == len(samples)  # ids carry the split
    registry = get_registry()
    train = read_split(registry, "strabismus", tmp_path, "train")
    test = read_split(registry, "strabismus", tmp_path, "test")
    assert train.reader == "folders" and len(train.samples) == 6 and len(test.samples) == 4
    assert not splits.overlap(train.samples, test.samples)
    assert test.info["rule"] == "the data set's own split" and test.info["count"] == 4


def test_unsplit_data_is_held_out_by_patient_never_scored_whole(tmp_path):
    names = [f"p{i // 2}_{i % 2}.png" for i in range(20)]  # two photos per patient
    for name in names:
        _image(tmp_path / "images" / name, 24, 32)
    rows = [f"{n},{i % 4 // 2},pat{i // 2}" for i, n in enumerate(names)]
    (tmp_path / "labels.csv").write_text("file,diagnosis,who\n" + "\n".join(rows) + "\n")
    columns = {"image": "file", "label": "diagnosis", "patient": "who"}
    samples = FolderReader().read(tmp_path, columns)
    assert all(s.split is None for s in samples)
    assert samples[2].patient == "pat1" and samples[2].label == 1
    registry = get_registry()
    train = read_split(registry, "strabismus", tmp_path, "train", columns=columns)
    test = read_split(registry, "strabismus", tmp_path, "test", columns=columns)
    assert test.samples and len(train.samples) + len(test.samples) == len(names)
    assert not splits.overlap(train.samples, test.samples)
    assert not {s.patient for s in train.samples} & {s.patient for s in test.samples}
    assert "hold-out" in test.info["rule"]
    with pytest.raises(DataError, match="--holdout"):
        read_split(registry, "strabismus", tmp_path, "test", columns=columns, holdout=False)


def test_manifest_maps_columns_and_marks_split_and_patient(tmp_path):
    _image(tmp_path / "a.jpg")
    _image(tmp_path / "b.jpg")
    manifest = tmp_path / "labels.csv"
    manifest.write_text("path,split,binary,infant\na.jpg,Train,strabismus,x1\nb.jpg,,normal,x2\n")
    a, b = BoxManifestReader().read(
        manifest, {"image": "path", "label": "binary", "patient": "infant"}
    )
    assert (a.split, a.label, a.patient, a.boxes) == ("train", 1, "x1", None)
    assert (b.split, b.label, b.patient) == (None, 0, "x2")
    with pytest.raises(DataError, match="--columns"):
        BoxManifestReader().read(manifest, {"image": "file"})
    manifest.write_text("image,label,split\na.jpg,1,holdout\n")
    with pytest.raises(DataError, match="split 'holdout'"):
        BoxManifestReader().read(manifest)
