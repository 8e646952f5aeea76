"""Red-Seg's losses against hand-computed values, and the λ schedule."""

from __future__ import annotations

import math

import pytest
import torch

from eyescan_redlesion.losses import (
    DeepSupervision,
    LambdaSchedule,
    TopKBalancedBCE,
    make_topk,
    probability_mse,
    topk_balanced_bce,
)


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


LOGITS = torch.tensor([[[[0.0, 2.0], [-1.0, 1.0]]]])  # 1×1×2×2
TARGET = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])


def test_topk_balanced_bce_by_hand():
    # negatives' losses −log(1−p) = softplus(z): 2.1269 (z=2), 0.3133 (z=−1), 1.3133 (z=1)
    # λ = 0.5 of N− = 3 → k = ⌈1.5⌉ = 2 hardest: z=2 and z=1; β = k/(k+N+) = 2/3
    positive = softplus(-0.0)  # −log p at z = 0
    top = softplus(2.0) + softplus(1.0)
    expected = (2 / 3 * positive + 1 / 3 * top) / 4  # divided by N = 4 pixels
    got = topk_balanced_bce(LOGITS, TARGET, fraction=0.5)
    assert float(got) == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(0.40226, abs=1e-4)


def test_topk_keeps_only_the_hardest_negative_and_ignores_invalid_pixels():
    # λ = 0.2 of 3 → k = 1 (z = 2); β = 1/2
    expected = (0.5 * softplus(0.0) + 0.5 * softplus(2.0)) / 4
    assert float(topk_balanced_bce(LOGITS, TARGET, 0.2)) == pytest.approx(expected, rel=1e-6)
    # the z = 2 pixel marked invalid: negatives z=−1, z=1; k = ⌈0.2·2⌉ = 1 → z = 1; N = 3
    valid = torch.tensor([[[[1.0, 0.0], [1.0, 1.0]]]])
    expected = (0.5 * softplus(0.0) + 0.5 * softplus(1.0)) / 3
    got = topk_balanced_bce(LOGITS, TARGET, 0.2, valid)
    assert float(got) == pytest.approx(expected, rel=1e-6)


def test_topk_batch_is_the_mean_of_images_and_no_lesion_image_counts_zero():
    logits = torch.cat([LOGITS, LOGITS])
    target = torch.cat([TARGET, torch.zeros_like(TARGET)])
    single = float(topk_balanced_bce(LOGITS, TARGET, 0.5))
    # without positives β = k/(k+0) = 1: the negative term's weight 1−β is 0 (as in the seed)
    assert float(topk_balanced_bce(logits, target, 0.5)) == pytest.approx(single / 2, rel=1e-6)


def test_probability_mse_is_fn_plus_fp_over_n():
    p = torch.sigmoid(LOGITS).flatten().tolist()
    y = TARGET.flatten().tolist()
    fn = sum(t * (1 - q) ** 2 for t, q in zip(y, p))
    fp = sum((1 - t) * q**2 for t, q in zip(y, p))
    assert float(probability_mse(LOGITS, TARGET)) == pytest.approx((fn + fp) / 4, rel=1e-6)
    # by hand: p = 0.5, 0.8808, 0.2689, 0.7311
    assert (fn + fp) / 4 == pytest.approx((0.25 + 0.7758 + 0.0723 + 0.5345) / 4, abs=1e-3)


def test_lambda_schedule_follows_the_seed_formula():
    schedule = LambdaSchedule(lambda0=0.14, period=10_000, total=97_200)
    assert schedule(1) == schedule(9_999) == pytest.approx(0.14)
    assert schedule(10_000) == schedule(19_999) == pytest.approx(0.14 * (1 - 1 / 9.72))
    assert schedule(95_000) == pytest.approx(0.14 - 0.14 / 9.72 * 9)
    small = LambdaSchedule(lambda0=0.2, period=2, total=8)  # four steps of 0.05
    assert [round(small(r), 6) for r in range(1, 9)] == [0.2, 0.15, 0.15, 0.1, 0.1, 0.05, 0.05, 0]


def test_loss_object_uses_its_iteration_and_a_batch_can_fix_lambda():
    loss = TopKBalancedBCE(lambda0=0.5, period=1, total=2)  # λ: 0.5 at r = 0, 0.25 at r = 1
    loss.iteration = 0
    assert loss.fraction == pytest.approx(0.5)
    half = float(topk_balanced_bce(LOGITS, TARGET, 0.5))
    assert float(loss(LOGITS, TARGET)) == pytest.approx(half)
    loss.iteration = 1
    assert loss.fraction == pytest.approx(0.25)
    assert float(loss(LOGITS, TARGET, fraction=0.5)) == pytest.approx(half)
    loss.iteration = 10  # past M: λ would be negative; one negative pixel stays
    assert loss.fraction == 0.0
    assert float(loss(LOGITS, TARGET)) == pytest.approx(
        float(topk_balanced_bce(LOGITS, TARGET, 0.2))
    )


def test_deep_supervision_sums_one_loss_per_map():
    outputs = {"ma/conv2": LOGITS, "ma/fused": LOGITS * 2, "he/conv3": LOGITS, "he/fused": LOGITS}
    batch = {"ma": TARGET, "he": torch.zeros_like(TARGET)}
    supervision = DeepSupervision(probability_mse)
    expected = (
        2 * float(probability_mse(LOGITS, TARGET))
        + float(probability_mse(LOGITS * 2, TARGET))
        + float(probability_mse(LOGITS, torch.zeros_like(TARGET)))
    )
    assert float(supervision(outputs, batch)) == pytest.approx(expected, rel=1e-6)
    assert float(supervision.term("he/fused")(outputs, batch)) == pytest.approx(
        float(probability_mse(LOGITS, torch.zeros_like(TARGET)))
    )
    topk = make_topk(lambda0=0.5, period=10, total=20)
    assert float(topk(outputs, {**batch, "topk_fraction": 0.5})) > 0


def test_random_crops_keep_image_and_masks_aligned():
    from eyescan_redlesion.training import random_crop

    image = torch.arange(2 * 30 * 40, dtype=torch.float32).reshape(2, 30, 40).repeat(1, 1, 1)
    image = torch.cat([image, image[:1]])  # 3 channels
    masks = image[:2].clone()
    generator = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(5):
        crop_image, crop_masks = random_crop(image, masks, 16, generator)
        assert crop_image.shape == (3, 16, 16) and torch.equal(crop_masks, crop_image[:2])
        seen.add(int(crop_image[0, 0, 0]))
    assert len(seen) > 1  # the window moves
    small, _ = random_crop(image, masks, 64, generator)  # larger than the image: all of it
    assert small.shape == (3, 30, 40)


def test_weighted_bce_weights_lesion_pixels_and_ignores_padding():
    from eyescan_redlesion.losses import weighted_bce

    logits = torch.tensor([[[[0.0, 2.0, -1.0, 5.0]]]])
    target = torch.tensor([[[[1.0, 0.0, 0.0, 1.0]]]])
    valid = torch.tensor([[[[1.0, 1.0, 1.0, 0.0]]]])  # the last pixel is padding
    expected = (20 * math.log(2) + math.log(1 + math.exp(2.0)) + math.log(1 + math.exp(-1.0))) / 3
    assert weighted_bce(logits, target, valid, 20.0).item() == pytest.approx(expected, rel=1e-5)


def test_an_unknown_stage_one_loss_is_refused():
    from eyescan.api import DataError
    from eyescan_redlesion.training import _pixel_loss, recipe_for

    with pytest.raises(DataError, match="recipe loss must be one of topk, weighted-bce"):
        recipe_for({"config": {"stage": 1, "loss": "dice"}})
    recipe = recipe_for({"config": {"stage": 1, "loss": "weighted-bce", "pos_weight": 5}})
    assert _pixel_loss(recipe, 10).keywords == {"pos_weight": 5.0}
