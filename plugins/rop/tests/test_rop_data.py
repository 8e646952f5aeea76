"""ROP data: readers, preprocessing, rotation balancing, grouped folds, the synthetic generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eyescan.api import DataError
from eyescan_rop.data import (
    AugmentConfig,
    RopManifestReader,
    augment,
    balance_by_rotation,
    enhance,
    grouped_folds,
    stage_targets,
)
from eyescan_rop.synthetic import class_counts, make_rop_fundus, write_rop_dataset


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


def test_manifest_reader(tmp_path):
    (tmp_path / "m.csv").write_text(
        "image,label,patient,split\na.png,normal,p1,train\nb.png,TR-ROP,p1,train\n"
        "c.png,1,,test\nd.png,rop,p2,\n"
    )
    samples = RopManifestReader().read(tmp_path / "m.csv", "train")
    assert [(s.id, s.label, s.patient) for s in samples] == [
        ("a", 0, "p1"),
        ("b", 2, "p1"),
        ("d", 1, "p2"),
    ]
    (tmp_path / "bad.csv").write_text("image,label\na.png,maybe\n")
    with pytest.raises(DataError, match=r"bad.csv:2: label 'maybe'"):
        RopManifestReader().read(tmp_path / "bad.csv", "train")


def test_enhance_pads_square_and_scales():
    image = np.random.default_rng(0).integers(0, 256, (600, 800, 3), dtype=np.uint8)
    out = enhance(image)
    assert out.shape == (512, 512, 3) and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0


def test_augment_keeps_shape():
    x = torch.rand(3, 32, 32)
    y = augment(x, AugmentConfig(), torch.Generator().manual_seed(0))
    assert y.shape == x.shape and not torch.equal(x, y)


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
    samples = RopManifestReader().read(manifest, "train")
    assert len(samples) == 10 and len({s.patient for s in samples}) == 5
    assert {s.label for s in samples} == {0, 1, 2}
