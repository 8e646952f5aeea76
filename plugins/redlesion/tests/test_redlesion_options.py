"""Core predict options on the redlesion task: --threshold, --prob16, --fov."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eyescan.api import DataError, EyescanError, get_registry, imageio, models
from eyescan_redlesion.data import LESIONS
from eyescan_redlesion.lesions import card_thresholds
from eyescan_redlesion.task import RedLesionTask

PHOTO = Path(__file__).resolve().parents[3] / "examples" / "idrid_008_dr2_dme2.jpg"


@pytest.fixture(scope="module")
def run():
    model = models.load(get_registry(), "redlesion")
    image = imageio.read_image(PHOTO)
    task = RedLesionTask()
    item = task.preprocess(image, str(PHOTO), provided={})
    (default,) = task.configured({}).predict(model, [item])
    return task, model, image, item, default


def test_one_threshold_overrides_both_lesion_thresholds_and_is_recorded(run):
    task, model, _, item, default = run
    assert default.values["thresholds"] == card_thresholds(model.card)
    (low,) = task.configured({"threshold": 0.05}).predict(model, [item])
    (high,) = task.configured({"threshold": 0.95}).predict(model, [item])
    assert low.values["thresholds"] == {name: 0.05 for name in LESIONS}
    assert high.values["thresholds"] == {name: 0.95 for name in LESIONS}
    for name in LESIONS:
        area = [p.values[f"{name}_area_px"] for p in (low, default, high)]
        assert area[0] >= area[1] >= area[2]
        assert (high.arrays[f"{name}_mask"] <= low.arrays[f"{name}_mask"]).all()
        present = low.values[f"{name}_score"] >= 0.05
        assert low.values[f"{name}_present"] == present
    assert sum(low.values[f"{n}_area_px"] for n in LESIONS) > sum(
        high.values[f"{n}_area_px"] for n in LESIONS
    )


def test_a_threshold_outside_zero_one_is_refused(run):
    task, model, _, item, _ = run
    with pytest.raises(EyescanError, match=r"--threshold must be in \(0, 1\)"):
        task.configured({"threshold": 1.5}).predict(model, [item])


def test_prob16_writes_16_bit_lesion_maps(run, tmp_path):
    task, _, _, _, prediction = run
    files8 = task.configured({}).report(prediction, tmp_path / "a", "p")
    files16 = task.configured({"prob16": True}).report(prediction, tmp_path / "b", "p")
    for name in LESIONS:
        key = f"{name}_probability"
        with (
            Image.open(tmp_path / "a" / files8[key]) as im8,
            Image.open(tmp_path / "b" / files16[key]) as im16,
        ):
            assert (im8.mode, im16.mode) == ("L", "I;16")
            p8 = np.asarray(im8, np.float64) / 255
            p16 = np.asarray(im16).astype(np.float64) / 65535
        assert np.abs(p16 - p8).max() <= 1 / 255
        old = tmp_path / f"old_{name}.png"  # the default file is today's
        imageio.save_png(old, imageio.probability_to_uint8(prediction.arrays[name]))
        assert old.read_bytes() == (tmp_path / "a" / files8[key]).read_bytes()


def test_a_given_fov_bounds_the_lesions(run):
    task, model, image, _, default = run
    width = image.shape[1]
    half = np.zeros(image.shape[:2], bool)
    half[:, : width // 2] = True
    item = task.preprocess(image, str(PHOTO), provided={"fov": half})
    np.testing.assert_array_equal(item["fov"], half)
    (pred,) = task.configured({"threshold": 0.05}).predict(model, [item])
    assert pred.values["fov_pixels"] == int(half.sum()) and pred.values["fov_source"] == "given"
    assert "fov_source" not in default.values
    found = False
    for name in LESIONS:
        mask = pred.arrays[f"{name}_mask"]
        assert not mask[:, width // 2 :].any()
        found |= bool(mask.any())
    assert found
    with pytest.raises(DataError, match="the given FOV mask"):
        task.preprocess(image, "x.jpg", provided={"fov": half[:-1]})
