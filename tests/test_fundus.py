"""Fundus helpers on synthetic images with known geometry."""

from __future__ import annotations

import numpy as np

from eyescan.data.synthetic import make_fundus
from eyescan.imaging import fundus


def test_fov_mask_matches_the_generated_field_of_view():
    sample = make_fundus(256, seed=3)
    estimated = fundus.fov_mask(sample.image)
    agreement = (estimated == sample.fov).mean()
    assert agreement > 0.98


def test_crop_and_pad_keep_aspect():
    sample = make_fundus((200, 300), seed=1)
    cropped = fundus.crop_to_fov(sample.image)
    assert cropped.shape[0] <= 200 and cropped.shape[1] < 300
    square = fundus.pad_to_square(np.zeros((20, 30, 3), np.uint8))
    assert square.shape == (30, 30, 3)


def test_pad_to_multiple():
    padded, (h, w) = fundus.pad_to_multiple(np.ones((17, 33)), 16)
    assert padded.shape == (32, 48) and (h, w) == (17, 33)


def test_resize_and_clahe_ranges():
    image = make_fundus(128, seed=2).image
    assert fundus.resize(image, (64, 32)).shape == (64, 32, 3)
    assert fundus.resize(np.ones((10, 10), bool), 5).dtype == bool
    enhanced = fundus.clahe(image)
    assert enhanced.dtype == np.float32 and 0 <= enhanced.min() and enhanced.max() <= 1
    assert enhanced.shape == image.shape
