"""Grader heads, losses, ImageNet loading from a local file, box-exact augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eyescan.api import WeightsError, augment
from eyescan_drgrade.lesions import boxes_from_mask
from eyescan_drgrade.losses import grade_ordinal, ordinal_targets
from eyescan_drgrade.models import GradeNet, LesionDetector, imagenet_file, load_imagenet
from eyescan_drgrade.training import flip_boxes, hold_out


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


def test_imagenet_weights_only_from_a_local_file(tmp_path):
    from torchvision.models import mobilenet_v3_small

    assert imagenet_file("mobilenet_v3_small").name.startswith("mobilenet_v3_small-")
    reference = mobilenet_v3_small(weights=None)
    with torch.no_grad():
        reference.features[0][0].weight.fill_(0.5)
    path = tmp_path / "mobilenet_v3_small-imagenet.pth"
    torch.save(reference.state_dict(), path)
    grader = GradeNet(image_size=64)
    copied = load_imagenet(grader.net, path)
    assert copied == len(reference.features.state_dict())  # the new head is left alone
    assert torch.all(grader.net.features[0][0].weight == 0.5)
    detector = LesionDetector(image_size=128)
    assert load_imagenet(detector.backbone.body, path, "features.", "") > 0
    assert torch.all(detector.backbone.body["0"][0].weight == 0.5)
    with pytest.raises(WeightsError, match="not found"):
        load_imagenet(grader.net, tmp_path / "absent.pth")


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


def test_hold_out_is_stratified_and_deterministic():
    items = list(range(100))
    train, val = hold_out(items, 0.2, seed=0, key=lambda i: i % 5)
    assert len(val) == 20 and sorted({i % 5 for i in val}) == [0, 1, 2, 3, 4]
    assert (train, val) == hold_out(items, 0.2, seed=0, key=lambda i: i % 5)
    assert not set(train) & set(val)
