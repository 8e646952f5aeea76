"""The fundus quality gate on the CC0 example photograph and on odd inputs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from eyescan.imaging import quality
from eyescan.imaging.imageio import read_image
from eyescan.testing import load_script

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "haggstrom_fundus_left_584.jpg"
SCRIPT = ROOT / "scripts" / "quality_calibrate.py"


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return read_image(EXAMPLE)


@pytest.fixture(scope="module")
def calibrate():
    return load_script(SCRIPT)


def test_example_is_gradable(photo):
    result = quality.assess(photo)
    assert result.gradable, result
    assert result.reasons == ()
    assert set(result.to_json()) == {"gradable", "reasons", "measures"}
    json.dumps(result.to_json())


@pytest.mark.parametrize(
    "kind, level, reason",
    [
        ("blur", 0.02, "blurred"),
        ("dim", "gamma2.5_gain0.3", "underexposed"),
        ("overexposed", "gain4", "overexposed"),
        pytest.param(
            "uneven",
            "gradient_0.05",
            "uneven_illumination",
            marks=pytest.mark.xfail(reason="the illumination measure is weak (docs/quality.md)"),
        ),
        ("no_fov", "black_frame", "no_field_of_view"),
        ("no_fov", "outside_crop", "no_field_of_view"),
        ("no_fov", "small_fov", "small_field_of_view"),
    ],
)
def test_degraded_versions_get_their_reason(photo, calibrate, kind, level, reason):
    diameter = quality.measure(photo)["fov_diameter_px"]
    result = quality.assess(calibrate.degrade(photo, kind, level, diameter, seed=1))
    assert not result.gradable
    assert reason in result.reasons, result


def test_user_fov_is_used(photo):
    mask = np.zeros(photo.shape[:2], bool)
    mask[200:260, 200:260] = True
    result = quality.assess(photo, fov=mask)
    assert "small_field_of_view" in result.reasons
    assert quality.assess(photo, fov=mask[:10]).reasons == ("invalid_image",)


@pytest.mark.parametrize(
    "array",
    [
        np.zeros((300, 300, 3), np.uint8),
        np.full((300, 300, 3), 255, np.uint8),
        np.zeros((1, 5, 3), np.uint8),
        np.full((3, 4000, 3), 200, np.uint8),
        np.zeros((5,), np.uint8),
        np.zeros((0, 0, 3), np.uint8),
        np.random.default_rng(0).random((40, 50)),
    ],
)
def test_odd_inputs_do_not_crash(array):
    result = quality.assess(array)
    assert not result.gradable and result.reasons
    json.dumps(result.to_json())


def test_large_photo_is_measured_like_the_small_one(photo):
    import cv2

    big = cv2.resize(photo, (photo.shape[1] * 5, photo.shape[0] * 5))
    assert quality.assess(big).gradable


def test_thresholds_json_loads():
    record = json.loads(Path(quality.__file__).with_name("quality_thresholds.json").read_text())
    defaults = quality.Thresholds()
    assert defaults.to_dict() == {k: float(v) for k, v in record["thresholds"].items()}
    assert quality.Thresholds(min_sharpness=0.5).min_sharpness == 0.5


def test_calibration_script_on_a_fake_drive(tmp_path, calibrate, photo):
    import cv2

    images = tmp_path / "data" / "DRIVE" / "training" / "images"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(4):
        noisy = np.clip(photo + rng.normal(0, 2, photo.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(images / f"{21 + i}_training.tif"), noisy[..., ::-1])
    summary = calibrate.main(
        ["--data", str(tmp_path / "data"), "--out", str(tmp_path / "out"), "--limit", "4"]
    )
    assert summary["data"]["good_photos"] == {"DRIVE": 4}
    assert (tmp_path / "out" / "quality.md").exists()
    assert summary["results"]["false_reject"]["all"]["n"] == 2
    assert set(summary["thresholds"]) == {f.name for f in dataclasses.fields(quality.Thresholds)}
