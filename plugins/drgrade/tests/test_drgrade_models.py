"""Grader heads (grade, DME risk), losses (the masked DME loss), initialisation from a
local file, box-exact augmentation, the validation split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from eyescan.api import WeightsError, augment
from eyescan.api import init as init_from_file
from eyescan_drgrade.data import DrSample
from eyescan_drgrade.lesions import boxes_from_mask
from eyescan_drgrade.losses import (
    UNKNOWN,
    dme_cross_entropy,
    grade_cross_entropy,
    grade_ordinal,
    ordinal_targets,
)
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


@pytest.mark.parametrize("head", ["ordinal", "ce"])
def test_dme_head_adds_three_logits_and_leaves_the_grade_alone(head):
    torch.manual_seed(0)
    plain, both = GradeNet(head=head, image_size=64), GradeNet(head=head, image_size=64, dme=True)
    assert plain.dme_probabilities(torch.zeros(1, plain.grade_outputs)) is None  # old cards
    assert "net.classifier.1.weight" in plain.state_dict()
    grade_outputs = 4 if head == "ordinal" else 5
    logits = torch.randn(6, grade_outputs + 3)
    assert both(torch.randn(2, 3, 64, 64)).shape == (2, grade_outputs + 3)
    grade_only = logits[:, :grade_outputs]
    assert torch.equal(both.grades(logits), plain.grades(grade_only))
    assert torch.allclose(both.probabilities(logits), plain.probabilities(grade_only))
    dme = both.dme_probabilities(logits)
    assert dme.shape == (6, 3) and torch.allclose(dme.sum(1), torch.ones(6))
    assert torch.allclose(dme, torch.softmax(logits[:, -3:], 1))
    batch = {"grade": torch.tensor([0, 1, 2, 3, 4, 2])}
    loss = grade_ordinal if head == "ordinal" else grade_cross_entropy
    assert torch.allclose(loss(logits, batch), loss(grade_only, batch))  # DME columns unseen


def test_dme_loss_counts_known_risks_only_and_never_nan():
    logits = torch.randn(4, 7, requires_grad=True)
    unknown = torch.tensor([UNKNOWN] * 4)
    loss = dme_cross_entropy(logits, {"dme": unknown})  # a batch of APTOS images alone
    assert loss.item() == 0.0 and torch.isfinite(loss)
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))
    mixed = torch.tensor([2, UNKNOWN, 0, UNKNOWN])  # IDRiD and APTOS in one batch
    # Summed over the two labelled images, divided by the batch size (4): each labelled
    # image weighs as much as in the grade loss, however few a batch holds.
    mean = torch.nn.functional.cross_entropy(logits[[0, 2], -3:], torch.tensor([2, 0]))
    assert torch.allclose(dme_cross_entropy(logits, {"dme": mixed}), mean * 2 / 4)


def test_validation_is_drawn_evenly_from_split_and_held_out_data():
    """IDRiD (own train split) beside APTOS (no split: the core's hold-out took its test
    part by the plain seed): validation takes about the same share of each."""
    from eyescan.api import splits

    idrid = [DrSample(f"train/I{i}", Path(f"I{i}.jpg"), label=i % 5, split="train")
             for i in range(400)]  # fmt: skip
    aptos = [DrSample(f"A{i:04d}", Path(f"A{i}.png"), label=i % 5) for i in range(2000)]
    train, _ = splits.select(idrid + aptos, "train")
    _, val, rule = validation_split(train, 0.15, seed=0)
    share = {
        name: sum(s.id.startswith(prefix) for s in val)
        / sum(s.id.startswith(prefix) for s in train)
        for name, prefix in (("idrid", "train/"), ("aptos", "A"))
    }
    assert 0.11 < share["idrid"] < 0.19 and 0.11 < share["aptos"] < 0.19, share
    assert "drawn from seed 0" in rule
