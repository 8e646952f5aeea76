"""Grader heads, losses, initialisation from a local file, box-exact augmentation,
the validation split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from eyescan.api import WeightsError, augment
from eyescan.api import init as init_from_file
from eyescan_drgrade.data import DrSample
from eyescan_drgrade.lesions import boxes_from_mask
from eyescan_drgrade.losses import grade_ordinal, ordinal_targets
from eyescan_drgrade.models import GradeNet, LesionDetector
from eyescan_drgrade.training import GRADER_RECIPE, flip_boxes, init_spec, validation_split


@pytest.mark.parametrize("head", ["ordinal", "ce"])
def test_grader_outputs(head):
    model = GradeNet(head=head, image_size=64).eval()
    with torch.no_grad():
        logits = model(torch.randn(3, 3, 64, 64))
    assert logits.shape == (3, 4 if head == "ordinal" else 5)
    probs = model.probabilities(logits)
    assert torch.allclose(probs.sum(1), torch.ones(3), atol=1e-6) and (probs >= 0).all()
    assert model.grades(logits).shape == (3,)
    assert torch.allclose(model.referable_probability(logits), probs[:, 2:].sum(1))


def test_ordinal_decoding_and_loss():
    model = GradeNet(head="ordinal", image_size=64)
    logits = torch.tensor([[5.0, 5.0, -5.0, -5.0], [-5.0, 5.0, 5.0, 5.0]])
    # cumulative probabilities are made monotone: the second row passes no threshold
    assert model.grades(logits).tolist() == [2, 0]
    assert ordinal_targets(torch.tensor([0, 2, 4]), 4).tolist() == [
        [0, 0, 0, 0],
        [1, 1, 0, 0],
        [1, 1, 1, 1],
    ]
    good = grade_ordinal(torch.tensor([[9.0, 9.0, -9.0, -9.0]]), {"grade": torch.tensor([2])})
    bad = grade_ordinal(torch.tensor([[9.0, 9.0, -9.0, -9.0]]), {"grade": torch.tensor([4])})
    assert good < 0.01 < bad


def test_init_from_a_local_imagenet_file(tmp_path):
    """The recipe's ``init``: a bare file is a torchvision backbone state dict, loaded
    into the grader's ``net`` or the detector's trunk; nothing from torch's cache."""
    from torchvision.models import mobilenet_v3_small

    assert GRADER_RECIPE["init"] == "none" and init_spec("none", "grader") == "none"
    reference = mobilenet_v3_small(weights=None)
    with torch.no_grad():
        reference.features[0][0].weight.fill_(0.5)
    path = tmp_path / "mobilenet_v3_small-imagenet.pth"
    torch.save(reference.state_dict(), path)
    grader = GradeNet(image_size=64)
    (done,) = init_from_file.initialise(grader, init_spec(str(path), "grader"))
    assert done["tensors_loaded"] == len(reference.features.state_dict())  # new head left alone
    assert done["into"] == "net" and len(done["sha256"]) == 64
    assert torch.all(grader.net.features[0][0].weight == 0.5)
    detector = LesionDetector(image_size=128)
    (done,) = init_from_file.initialise(detector, init_spec(str(path), "detector"))
    assert done["tensors_loaded"] > 0
    assert torch.all(detector.backbone.body["0"][0].weight == 0.5)
    with pytest.raises(WeightsError, match="not found"):
        init_from_file.initialise(grader, init_spec(str(tmp_path / "absent.pth"), "grader"))


def test_flips_and_transpose_keep_boxes_exact():
    mask = np.zeros((32, 32), bool)
    mask[3:7, 20:29] = True
    image = torch.from_numpy(mask[None].astype(np.float32))
    boxes = torch.tensor(boxes_from_mask(mask), dtype=torch.float32)
    config = augment.AugmentConfig()
    for bits in range(8):
        flips = torch.tensor([0.0 if bits & (1 << k) else 1.0 for k in range(3)])
        moved, moved_boxes = flip_boxes(image, boxes, config, flips)
        assert moved_boxes.tolist() == [list(map(float, b)) for b in boxes_from_mask(moved[0] > 0)]


def test_validation_split_groups_patients_and_keeps_grades():
    items = [
        DrSample(f"e{i}", Path(f"e{i}.png"), label=(i // 2) % 5, patient=f"p{i // 2}")
        for i in range(100)
    ]
    train, val, rule = validation_split(items, 0.2, seed=0)
    assert "patient" in rule and 15 <= len(val) <= 25
    assert sorted({s.label for s in val}) == [0, 1, 2, 3, 4]  # stratified by grade
    assert not {s.patient for s in train} & {s.patient for s in val}  # both eyes together
    again = validation_split(items[::-1], 0.2, seed=0)[1]  # any order, same images
    assert {s.id for s in val} == {s.id for s in again}
    items[3].split = "val"
    train, val, rule = validation_split(items, 0.2, seed=0)
    assert [s.id for s in val] == ["e3"] and rule == "the data set's val split"
