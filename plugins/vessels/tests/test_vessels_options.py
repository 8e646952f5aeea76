"""Core predict options on the vessels task: --threshold, --prob16, --fov, provides."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eyescan.api import DataError, EyescanError, get_registry, imageio, models
from eyescan_vessels.task import THRESHOLD, VesselsTask

PHOTO = Path(__file__).resolve().parents[3] / "examples" / "haggstrom_fundus_left_584.jpg"


@pytest.fixture(scope="module")
def run():
    """The shipped model, the photo, and the probability of the photo (one network run)."""
    model = models.load(get_registry(), "vessels")
    image = imageio.read_image(PHOTO)
    task = VesselsTask()
    task.prepare(model)
    item = task.configured({}).preprocess(image, str(PHOTO), provided={})
    (default,) = task.configured({}).predict(model, [item])
    return task, model, image, item, default


def test_the_threshold_moves_the_mask_and_is_recorded(run):
    task, model, _, item, default = run
    assert default.values["threshold"] == THRESHOLD
    (low,) = task.configured({"threshold": 0.2}).predict(model, [item])
    (high,) = task.configured({"threshold": 0.8}).predict(model, [item])
    assert low.values["threshold"] == 0.2 and high.values["threshold"] == 0.8
    pixels = [p.values["vessel_pixels"] for p in (low, default, high)]
    assert pixels[0] > pixels[1] > pixels[2] > 0
    assert (high.arrays["mask"] <= default.arrays["mask"]).all()
    np.testing.assert_array_equal(low.arrays["probability"], default.arrays["probability"])


@pytest.mark.parametrize("value", [0.0, 1.0, -0.5, 2, "x"])
def test_a_threshold_outside_zero_one_is_refused(run, value):
    task, model, _, item, _ = run
    with pytest.raises(EyescanError, match="--threshold"):
        task.configured({"threshold": value}).predict(model, [item])


def test_prob16_writes_a_16_bit_map_matching_the_8_bit_one(run, tmp_path):
    task, _, _, _, prediction = run
    files8 = task.configured({}).report(prediction, tmp_path / "a", "photo")
    files16 = task.configured({"prob16": True}).report(prediction, tmp_path / "b", "photo")
    assert files8 == files16
    with Image.open(tmp_path / "a" / files8["probability"]) as im8:
        assert im8.mode == "L"
        p8 = np.asarray(im8, np.float64) / 255
    with Image.open(tmp_path / "b" / files16["probability"]) as im16:
        assert im16.mode == "I;16"
        raw = np.asarray(im16)
    p16 = raw.astype(np.float64) / 65535
    assert raw.max() > 255  # really 16-bit levels
    assert np.abs(p16 - p8).max() <= 1 / 255
    # the default file is today's: the 8-bit map as save_png wrote it
    imageio.save_png(
        tmp_path / "old.png", imageio.probability_to_uint8(prediction.arrays["probability"])
    )
    assert (tmp_path / "old.png").read_bytes() == (
        tmp_path / "a" / files8["probability"]
    ).read_bytes()
    for name in ("mask", "overlay"):  # the other files do not change
        assert (tmp_path / "a" / files8[name]).read_bytes() == (
            tmp_path / "b" / files16[name]
        ).read_bytes()


def test_a_given_fov_is_used_instead_of_the_estimate(run):
    task, model, image, item, default = run
    half = np.zeros(image.shape[:2], bool)
    half[:, : image.shape[1] // 2] = True
    given = task.configured({}).preprocess(image, str(PHOTO), provided={"fov": half})
    np.testing.assert_array_equal(given["fov"], half)
    (pred,) = task.configured({}).predict(model, [given])
    mask = pred.arrays["mask"]
    assert mask[:, : image.shape[1] // 2].any() and not mask[:, image.shape[1] // 2 :].any()
    assert pred.values["fov_pixels"] == int(half.sum())
    assert pred.values["fov_source"] == "given" and "fov_source" not in default.values


def test_a_fov_of_another_size_is_a_one_line_error(run):
    task, _, image, _, _ = run
    with pytest.raises(DataError, match=r"photo\.jpg: the given FOV mask is 10x20 pixels") as info:
        task.preprocess(image, "photo.jpg", provided={"fov": np.ones((20, 10), bool)})
    assert "\n" not in str(info.value)


def test_the_provided_vessel_probability_is_at_the_photo_size(run):
    task, _, image, _, prediction = run
    assert task.needs[0].name == "fov" and task.fundus
    key = task.provides["vessel_probability"]
    prob = prediction.arrays[key]
    assert prob.shape == image.shape[:2] and prob.dtype == np.float32
    assert 0 <= prob.min() and prob.max() <= 1


def test_save_probability_levels_and_non_finite_values(tmp_path):
    prob = np.array([[0.0, 0.5, 1.0], [np.nan, np.inf, -np.inf]], np.float32)
    with Image.open(imageio.save_probability(tmp_path / "a.png", prob, bits=16)) as im:
        assert im.mode == "I;16"
        assert np.asarray(im).tolist() == [[0, 32768, 65535], [0, 0, 0]]
    with Image.open(imageio.save_probability(tmp_path / "b.png", prob)) as im:
        assert im.mode == "L" and np.asarray(im).tolist() == [[0, 128, 255], [0, 0, 0]]
    with pytest.raises(ValueError, match="bits"):
        imageio.save_probability(tmp_path / "c.png", prob, bits=12)
