"""ROP data: readers, splits, preprocessing, rotation balancing, folds, the synthetic generator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from eyescan.api import DataError, get_registry, parse_columns, read_split, splits
from eyescan_rop.data import (
    RopManifestReader,
    balance_by_rotation,
    enhance,
    grouped_folds,
    load_data,
    stage_targets,
    validation_split,
)
from eyescan_rop.synthetic import class_counts, make_rop_fundus, write_rop_dataset

DRAGON = Path("/work/shared/data/ROP-DRAGON/labels.csv")


def test_rotation_balancing_adds_90_then_180_degree_copies():
    pairs = balance_by_rotation(np.array([0] * 10 + [1] * 3))
    turns = [k for i, k in pairs if i >= 10]
    assert sorted(turns) == [0, 0, 0, 1, 1, 1, 2, 2, 2]  # at most three times the minority
    pairs = balance_by_rotation(np.array([1] * 10 + [0] * 6))
    copies = [(i, k) for i, k in pairs if k]
    assert len(copies) == 4 and all(i >= 10 and k == 1 for i, k in copies)  # 1:1 exactly


def test_stage_targets():
    labels = np.array([0, 1, 2, 0, 2])
    assert stage_targets(labels, 1)[1].tolist() == [0, 1, 1, 0, 1]
    index, y = stage_targets(labels, 2)
    assert index.tolist() == [1, 2, 4] and y.tolist() == [0, 1, 1]
    with pytest.raises(DataError):
        stage_targets(labels, 3)


def test_folds_never_split_a_patient():
    labels = np.repeat([0, 0, 0, 1, 2, 0, 2, 1, 0, 2, 0, 0], 2)
    groups = [f"p{i // 2}" for i in range(len(labels))]
    folds = grouped_folds(labels, groups, 3, seed=1)
    held = np.concatenate([test for _, test in folds])
    assert sorted(held.tolist()) == list(range(len(labels)))
    for train, test in folds:
        assert not {groups[i] for i in train} & {groups[i] for i in test}


def test_manifest_reader_marks_splits_and_patients(tmp_path):
    (tmp_path / "m.csv").write_text(
        "image,label,patient,split\na.png,normal,p1,train\nb.png,TR-ROP,p1,Train\n"
        "c.png,1,,test\nd.png,rop,p2,\ne.png,2,p3,val\n"
    )
    samples = RopManifestReader().read(tmp_path / "m.csv")
    assert [(s.id, s.label, s.patient, s.split) for s in samples] == [
        ("a", 0, "p1", "train"),
        ("b", 2, "p1", "train"),
        ("c", 1, None, "test"),
        ("d", 1, "p2", None),
        ("e", 2, "p3", "val"),
    ]
    (tmp_path / "bad.csv").write_text("image,label\na.png,maybe\n")
    with pytest.raises(DataError, match=r"bad.csv:2: label 'maybe'"):
        RopManifestReader().read(tmp_path / "bad.csv")
    (tmp_path / "split.csv").write_text("image,label,split\na.png,rop,later\n")
    with pytest.raises(DataError, match=r"split.csv:2: split 'later'"):
        RopManifestReader().read(tmp_path / "split.csv")
    (tmp_path / "same.csv").write_text("image,label\nx/a.png,rop\ny/a.png,rop\n")
    assert [s.id for s in RopManifestReader().read(tmp_path / "same.csv")] == ["x/a", "y/a"]


def test_dragon_style_table_reads_with_a_column_mapping(dragon_table, dragon_columns):
    table = dragon_table
    with pytest.raises(DataError, match="needs 'image' and 'label' columns"):
        RopManifestReader().read(table)
    columns = parse_columns(dragon_columns)
    samples = RopManifestReader().read(table, columns)
    assert len(samples) == 12 and {s.label for s in samples} == {1, 2}
    assert {s.split for s in samples} == {"train", "test"}
    assert {s.patient for s in samples if s.split == "test"} == {"A-3", "A-4"}
    train = read_split(get_registry(), "rop", table, "train", None, columns)
    test = read_split(get_registry(), "rop", table, "test", None, columns)
    assert train.info["rule"] == test.info["rule"] == "the data set's own split"
    assert train.info["count"] == test.info["count"] == 6
    assert not splits.overlap(train.samples, test.samples)
    data = load_data(table, "test", 32, {"columns": columns})
    assert data.images.shape == (6, 3, 32, 32) and sorted(set(data.groups)) == ["A-3", "A-4"]


@pytest.mark.skipif(not DRAGON.exists(), reason="ROP-DRAGON not available")
def test_rop_dragon_labels_read_as_they_are(dragon_columns):
    samples = RopManifestReader().read(DRAGON, parse_columns(dragon_columns))
    assert len(samples) == 63 and all(s.image.exists() for s in samples)
    by_split = {k: [s for s in samples if s.split == k] for k in ("train", "test")}
    assert len(by_split["train"]) == 36 and len(by_split["test"]) == 27
    assert len({s.patient for s in samples}) == 4
    assert not {s.patient for s in by_split["train"]} & {s.patient for s in by_split["test"]}
    assert {s.label for s in samples} == {1, 2}  # Not-Treated ROP, treatment-requiring ROP


def test_unsplit_data_holds_out_patients_for_test_and_validation(tmp_path):
    manifest = write_rop_dataset(tmp_path, n_patients=20, photos_per_patient=2, size=32)
    registry = get_registry()
    train = read_split(registry, "rop", manifest, "train")
    test = read_split(registry, "rop", manifest, "test")
    assert not splits.overlap(train.samples, test.samples)
    assert not {s.patient for s in train.samples} & {s.patient for s in test.samples}
    assert train.info["count"] + test.info["count"] == 40 and "hold-out" in test.info["rule"]
    data = load_data(manifest, "train", 16, {})
    kept, val = validation_split(data, np.arange(len(data.labels)), 0.25, seed=0)
    assert len(val) and len(kept) + len(val) == len(data.labels)
    assert not {data.groups[i] for i in kept} & {data.groups[i] for i in val}
    assert validation_split(data, np.arange(4), 0.0)[1].size == 0


def test_images_marked_val_are_the_validation_set(tmp_path):
    manifest = write_rop_dataset(tmp_path, n_patients=6, photos_per_patient=1, size=32)
    lines = manifest.read_text().splitlines()
    marks = ["split"] + ["val" if i < 2 else "train" for i in range(len(lines) - 1)]
    manifest.write_text("\n".join(f"{a},{b}" for a, b in zip(lines, marks)) + "\n")
    data = load_data(manifest, "train", 16, {})
    kept, val = validation_split(data, np.arange(len(data.labels)), 0.5)
    assert [data.splits[i] for i in val] == ["val", "val"] and len(kept) == 4


def test_enhance_pads_square_and_scales():
    image = np.random.default_rng(0).integers(0, 256, (600, 800, 3), dtype=np.uint8)
    out = enhance(image)
    assert out.shape == (512, 512, 3) and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0


def test_recipe_augmentation_is_the_seeds():
    from eyescan.api import augment
    from eyescan_rop.training import recipe_of

    config = augment.AugmentConfig.from_dict(recipe_of({})["augment"])
    assert (config.rotation, config.translate, config.scale, config.shear) == (
        30.0,
        0.05,
        (0.9, 1.1),
        5.0,
    )
    assert not (config.brightness or config.contrast or config.saturation or config.noise_std)
    assert config.hflip and config.vflip and not config.transpose
    x = torch.rand(3, 32, 32)
    y = augment.augment_image(x, config, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and not torch.equal(x, y)


def test_recipe_layers_and_the_retired_imagenet_key():
    from eyescan.api import WeightsError
    from eyescan_rop.training import recipe_of

    config = {"lr": 0.01, "teacher": {"epochs": 3}, "augment": {"rotation": 10}}
    teacher = recipe_of({"config": config}, "teacher")
    student = recipe_of({"config": config, "batch_size": 4}, "student")
    assert (teacher["batch_size"], teacher["epochs"], teacher["lr"]) == (8, 3, 0.01)
    assert (student["batch_size"], student["epochs"]) == (4, 200)
    assert teacher["augment"]["rotation"] == 10 and teacher["augment"]["shear"] == 5.0
    assert "teacher" not in teacher and "student" not in student
    assert "imagenet" not in recipe_of({"config": {"imagenet": False}})
    with pytest.raises(WeightsError, match="'init'"):
        recipe_of({"config": {"imagenet": True}})


def test_synthetic_ridges_by_class():
    normal, rop, tr = (make_rop_fundus(96, seed=4, label=k) for k in (0, 1, 2))
    assert not normal.ridge.any() and rop.ridge.any() and tr.ridge.any()
    # The TR ridge is stronger: brighter than the faint ROP one against the same fundus.
    gain = [f.image[f.ridge].mean() - normal.image[f.ridge].mean() for f in (rop, tr)]
    assert 0 < gain[0] < gain[1]
    assert np.array_equal(make_rop_fundus(96, seed=4, label=1).image, rop.image)


def test_synthetic_dataset(tmp_path):
    assert class_counts(10) == [6, 1, 3] and sum(class_counts(7)) == 7
    manifest = write_rop_dataset(tmp_path, n_patients=5, photos_per_patient=2, size=48)
    samples = RopManifestReader().read(manifest)
    assert (
        len(samples) == 10
        and all(s.split is None for s in samples)
        and len({s.patient for s in samples}) == 5
    )
    assert {s.label for s in samples} == {0, 1, 2}
    test = write_rop_dataset(
        tmp_path / "t", n_patients=3, photos_per_patient=1, size=32, split="test"
    )
    assert {s.split for s in RopManifestReader().read(test)} == {"test"}
