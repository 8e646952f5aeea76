"""Fundus helpers on synthetic images with known geometry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eyescan.data.synthetic import make_fundus
from eyescan.imaging import fundus, imageio

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DRIVE, CHASE = DATA / "DRIVE", DATA / "CHASE_DB1"


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def restyled(image: np.ndarray, fov: np.ndarray, style: str) -> np.ndarray:
    """The photograph on another background, or darker/brighter, as other cameras give it."""
    out = image.astype(np.float32)
    backgrounds = {
        "bright grey": (200, 200, 200),
        "white": (255, 255, 255),
        "mid grey": (128, 128, 128),
        "blue": (40, 60, 180),
        "green": (60, 140, 70),
        "lifted black": (28, 28, 28),
    }
    if style in backgrounds:
        out[~fov] = backgrounds[style]
    elif style == "dark vignetted":
        rows, cols = np.nonzero(fov)
        radius = np.sqrt(fov.sum() / np.pi)
        yy, xx = np.mgrid[: fov.shape[0], : fov.shape[1]]
        rho2 = ((yy - rows.mean()) ** 2 + (xx - cols.mean()) ** 2) / radius**2
        out *= 0.35 * (1 - 0.6 * np.clip(rho2, 0, 1))[..., None]
    elif style == "very bright":
        out *= 2.2
    elif style == "noisy grey-black":
        out += np.random.default_rng(0).normal(0, 6, out.shape)
        out[~fov] += 20
    return np.clip(out, 0, 255).astype(np.uint8)


STYLES = (
    "bright grey",
    "white",
    "mid grey",
    "blue",
    "green",
    "lifted black",
    "dark vignetted",
    "very bright",
    "noisy grey-black",
)


def test_fov_mask_matches_the_generated_field_of_view():
    sample = make_fundus(256, seed=3)
    estimated = fundus.fov_mask(sample.image)
    agreement = (estimated == sample.fov).mean()
    assert agreement > 0.98


@pytest.mark.parametrize("style", STYLES)
def test_fov_mask_holds_on_bright_dark_and_coloured_photographs(style):
    for seed in (0, 3, 7):
        sample = make_fundus((240, 256), seed=seed)
        image = restyled(sample.image, sample.fov, style)
        assert iou(fundus.fov_mask(image), sample.fov) >= 0.97, (style, seed)


def test_fov_mask_is_the_whole_frame_when_the_photograph_fills_it():
    sample = make_fundus(256, seed=1)
    inside = sample.image[80:176, 80:176]
    assert fundus.fov_mask(inside).mean() > 0.99
    assert fundus.fov_mask(restyled(sample.image, sample.fov, "white")[80:176, 80:176]).all()


def test_fov_mask_of_a_grey_level_photograph():
    sample = make_fundus(200, seed=4)
    grey = sample.image.mean(axis=-1).astype(np.uint8)
    assert iou(fundus.fov_mask(grey), sample.fov) >= 0.97


def _drive_images() -> list[tuple[Path, Path]]:
    pairs = []
    for part in ("training", "test"):
        for image in sorted((DRIVE / part / "images").glob("*.tif")):
            pairs.append((image, DRIVE / part / "mask" / f"{image.stem}_mask.gif"))
    return pairs


@pytest.mark.skipif(not DRIVE.exists(), reason="DRIVE not found at ../shared/data/DRIVE")
def test_fov_mask_matches_every_drive_mask():
    pairs = _drive_images()
    assert len(pairs) == 40
    scores = {
        image.name: iou(fundus.fov_mask(imageio.read_image(image)), imageio.read_mask(mask))
        for image, mask in pairs
    }
    assert min(scores.values()) >= 0.97, {k: v for k, v in scores.items() if v < 0.97}


@pytest.mark.skipif(not DRIVE.exists(), reason="DRIVE not found at ../shared/data/DRIVE")
@pytest.mark.parametrize("style", STYLES)
def test_fov_mask_holds_on_restyled_drive_photographs(style):
    for image, mask in _drive_images()[::8]:
        truth = imageio.read_mask(mask)
        photo = restyled(imageio.read_image(image), truth, style)
        assert iou(fundus.fov_mask(photo), truth) >= 0.97, (style, image.name)


@pytest.mark.skipif(not CHASE.exists(), reason="CHASE_DB1 not found at ../shared/data/CHASE_DB1")
def test_fov_mask_agrees_with_the_unofficial_chase_masks():
    """A sanity check only: CHASE_DB1's FOV masks are not part of the official release."""
    images = sorted((CHASE / "images").glob("*.jpg"))
    assert len(images) == 28
    for image in images:
        truth = imageio.read_mask(CHASE / "fov_mask_unofficial" / f"{image.stem}.png")
        assert iou(fundus.fov_mask(imageio.read_image(image)), truth) >= 0.97, image.name


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
