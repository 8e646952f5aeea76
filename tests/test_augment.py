"""The camera-like augmentations: gamma, blur, resolution loss, JPEG and patch zoom."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from eyescan.imaging.augment import AugmentConfig, augment_patch, photometric

#: Every augmentation off: geometry and colour untouched.
OFF = {
    "rotation": 0.0,
    "hflip": False,
    "vflip": False,
    "transpose": False,
    "brightness": 0.0,
    "contrast": 0.0,
    "saturation": 0.0,
    "noise_std": 0.0,
}


def _config(**values) -> AugmentConfig:
    return AugmentConfig.from_dict({**OFF, **values})


def _checkerboard(size: int = 64) -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    board = ((x + y) % 2).float()
    return torch.stack([board, 0.5 * board, 0.25 + 0.5 * board])


def test_new_augmentations_are_off_by_default_and_draw_no_random_number():
    image = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(1))
    generator = torch.Generator().manual_seed(0)
    before = generator.get_state()
    out = photometric(image, _config(), generator)
    assert torch.equal(out, image)
    assert torch.equal(generator.get_state(), before)  # older recipes train exactly as before


def test_lists_from_a_recipe_become_ranges():
    config = AugmentConfig.from_dict({"resample": [0.5, 1.0], "jpeg_quality": [40, 90]})
    assert config.resample == (0.5, 1.0) and config.jpeg_quality == (40, 90)


def test_gamma_stays_in_its_log_range():
    image = torch.full((3, 8, 8), 0.5)
    values = [
        float(photometric(image, _config(gamma=0.5), torch.Generator().manual_seed(s))[0, 0, 0])
        for s in range(40)
    ]
    low, high = 0.5 ** math.exp(0.5), 0.5 ** math.exp(-0.5)
    assert all(low - 1e-6 <= v <= high + 1e-6 for v in values)
    assert max(values) - min(values) > 0.2  # it does vary: brighter and darker


def test_blur_and_resolution_loss_remove_fine_detail_and_keep_the_size():
    board = _checkerboard()
    for config in (_config(blur=2.0), _config(resample=(0.5, 0.5))):
        outs = [photometric(board, config, torch.Generator().manual_seed(s)) for s in range(10)]
        assert all(out.shape == board.shape for out in outs)
        smoothed = [float(out[0].std()) < 0.5 * float(board[0].std()) for out in outs]
        assert sum(smoothed) >= 7  # blur: σ uniform in [0, 2], none below 0.3


def test_jpeg_round_trip_changes_a_noisy_image_within_range():
    image = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(2))
    out = photometric(image, _config(jpeg=1.0, jpeg_quality=(30, 30)), torch.Generator())
    assert out.shape == image.shape and out.dtype == image.dtype
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    assert float((out - image).abs().mean()) > 0.02
    never = photometric(image, _config(jpeg=0.0), torch.Generator())
    assert torch.equal(never, image)


@pytest.mark.parametrize("zoom", [0.5, 2.0])
def test_patch_zoom_scales_vessels_and_keeps_masks_binary(zoom):
    image = torch.zeros(3, 200, 200)
    masks = torch.zeros(2, 200, 200)
    image[:, :, 96:104] = 1.0  # one 8-px-wide vertical vessel
    masks[0, :, 96:104] = 1.0
    masks[1] = 1.0
    config = _config(scale=(zoom, zoom))
    found = False
    for seed in range(30):
        img, msk = augment_patch(image, masks, 48, config, torch.Generator().manual_seed(seed))
        assert img.shape == (3, 48, 48) and msk.shape == (2, 48, 48)
        assert set(msk.unique().tolist()) <= {0.0, 1.0}
        widths = msk[0].sum(dim=1)
        if 0 < widths[24] and msk[0, :, 0].sum() == 0 and msk[0, :, -1].sum() == 0:
            assert float(widths[24]) == pytest.approx(8 * zoom, abs=1.0)
            found = True
    assert found


def test_blur_and_resampling_probabilities():
    board = _checkerboard()
    never = _config(blur=2.0, blur_p=0.0, resample=(0.5, 0.5), resample_p=0.0)
    generator = torch.Generator().manual_seed(0)
    before = generator.get_state()
    assert torch.equal(photometric(board, never, generator), board)
    assert torch.equal(generator.get_state(), before)
    some = _config(resample=(0.5, 0.5), resample_p=0.5)
    changed = [
        not torch.equal(photometric(board, some, torch.Generator().manual_seed(s)), board)
        for s in range(40)
    ]
    assert 8 < sum(changed) < 32  # about half


def test_photo_variants_are_seeded_degraded_copies_of_the_photo():
    from eyescan.imaging.augment import PhotoVariants

    rng = np.random.default_rng(0)
    photo = (rng.random((60, 80, 3)) * 255).astype(np.uint8)
    variants = PhotoVariants.from_dict({"copies": 4, "jpeg": [20, 40], "resample": [0.5, 0.5]})
    copies = variants.make(photo, seed=3)
    assert len(copies) == 4
    assert all(c.shape == photo.shape and c.dtype == np.uint8 for c in copies)
    assert all(np.abs(c.astype(int) - photo).mean() > 5 for c in copies)  # each one degraded
    again = variants.make(photo, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(copies, again))
    assert PhotoVariants().make(photo, seed=0) == []  # off by default
    with pytest.raises(ValueError, match="photo_variants"):
        PhotoVariants.from_dict({"copy": 2})
