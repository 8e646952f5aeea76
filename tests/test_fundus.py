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


def _disc(shape: tuple[int, int], centre: tuple[float, float], radius: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy + 0.5 - centre[0]) ** 2 + (xx + 0.5 - centre[1]) ** 2 <= radius**2


@pytest.mark.parametrize("shape", [(200, 300), (300, 200), (240, 240)])
def test_square_fov_keeps_a_rectangular_photographs_circle_round(shape):
    sample = make_fundus(shape, seed=1)
    square, frame = fundus.square_fov(sample.image, margin=0.05, size=96)
    assert square.shape == (96, 96, 3) and not frame.whole_image
    rows = np.flatnonzero(sample.fov.any(axis=1))
    diameter = rows[-1] - rows[0] + 1
    side = min(diameter * 1.1, max(shape))  # the FOV plus 5 % each side, within the image
    assert frame.side == pytest.approx(side, abs=2)
    seen = fundus.fov_mask(square)
    height, width = np.ptp(np.flatnonzero(seen.any(axis=1))), np.ptp(np.flatnonzero(seen.any(0)))
    assert abs(height - width) <= 2 and height == pytest.approx(96 * diameter / side, abs=3)


def test_square_fov_of_a_circle_cut_at_top_and_bottom_is_not_stretched():
    """The IDRiD shape: a 3:2 frame whose FOV circle is cut by the top and bottom edges."""
    shape, radius = (120, 200), 70.0
    disc = _disc(shape, (60, 100), radius)
    image = np.where(disc[..., None], np.uint8(150), np.uint8(0)).repeat(3, axis=2)
    square, frame = fundus.square_fov(image, margin=0.0, mask=disc, size=100)
    assert (frame.top, frame.bottom, frame.right - frame.left) == (0, 120, 140)
    scale = 100 / 140
    expected = _disc((100, 100), (50, 50), radius * scale)
    expected[: round(frame.pad_top * scale)] = expected[100 - round(frame.pad_top * scale) :] = 0
    assert iou(square[..., 0] > 75, expected) > 0.97


def test_square_fov_without_a_detectable_fov_pads_the_whole_image():
    for image in (
        np.zeros((30, 40, 3), np.uint8),  # black: nothing found
        np.random.default_rng(0).integers(0, 256, (30, 40, 3)).astype(np.uint8),  # noise
        make_fundus(128, seed=2).image[40:90, 30:100],  # inside the fundus: no background
    ):
        square, frame = fundus.square_fov(image, margin=0.1)
        h, w = image.shape[:2]
        assert frame.whole_image and (frame.top, frame.left, frame.bottom, frame.right) == (
            0,
            0,
            h,
            w,
        )
        assert square.shape == (max(h, w), max(h, w), 3)
        assert (square[frame.pad_top : frame.pad_top + h, frame.pad_left : frame.pad_left + w]
                == image).all()  # fmt: skip
    speck = np.zeros((100, 100, 3), np.uint8)
    speck[40:44, 40:44] = 255  # 0.16 % of the image: not a field of view
    assert fundus.fov_box(speck) is None and fundus.square_fov(speck)[1].whole_image


def test_square_frame_maps_boxes_and_heat_maps_back():
    sample = make_fundus((128, 192), seed=5)
    square, frame = fundus.square_fov(sample.image, margin=0.03)
    boxes = np.array([[60.0, 20.0, 80.0, 35.0], [100.0, 90.0, 101.0, 91.0]])
    there = frame.to_square(boxes, 256)
    assert np.allclose(frame.to_original(there, 256), boxes)
    x0, y0, x1, y1 = (frame.to_square(boxes[:1], frame.side)[0]).round().astype(int)
    assert (square[y0:y1, x0:x1] == sample.image[20:35, 60:80]).all()
    back = frame.heat_to_original(np.ones((64, 64), np.float32), sample.image.shape[:2])
    assert back.shape == sample.fov.shape and back[sample.fov].min() > 0.99


def test_fov_of_a_large_photograph_is_estimated_on_a_shrunk_copy(monkeypatch):
    import cv2

    sample = make_fundus((300, 450), seed=5)
    large = cv2.resize(sample.image, (2700, 1800), interpolation=cv2.INTER_CUBIC)
    assert max(large.shape[:2]) > fundus.FOV_MAX_SIDE
    fast = fundus.fov_mask(large)
    exact = fundus._fov_mask(large, None)  # the estimate at full resolution
    assert fast.shape == large.shape[:2] and fast.dtype == bool
    iou = (fast & exact).sum() / (fast | exact).sum()
    assert iou > 0.995, iou
    box, exact_box = fundus.crop_box(fast), fundus.crop_box(exact)
    assert np.abs(np.subtract(box, exact_box)).max() <= 3  # pixels of a 2700-px photo
    shrunk = []
    monkeypatch.setattr(fundus, "_fov_mask", lambda a, t: shrunk.append(a.shape) or exact)
    fundus.fov_mask(large)
    assert shrunk == [(853, 1280, 3)]
