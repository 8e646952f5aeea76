"""The plus-disease vascular severity: drawn vessel maps, resolution, the task without vessels."""

from __future__ import annotations

import numpy as np
import pytest

from eyescan_rop.fov import InfantFov, infant_fov
from eyescan_rop.severity import vascular_severity
from eyescan_rop.task import NO_VESSELS, RopTask, severity_of


def drawn(size: int, wiggle: float, width: float, spokes: int = 8) -> tuple[np.ndarray, InfantFov]:
    """A vessel probability map: ``spokes`` vessels from the centre, sinusoidal by ``wiggle``
    (amplitude, fraction of the size) and ``width`` wide (fraction of the size)."""
    from skimage.draw import disk

    prob = np.zeros((size, size), np.float32)
    yy, xx = np.mgrid[:size, :size]
    fov = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 <= (size / 2 - 2) ** 2
    t = np.linspace(0, 0.45 * size, 600)
    offset = wiggle * size * np.sin(t / (0.04 * size) * np.pi)
    for k in range(spokes):
        angle = 2 * np.pi * k / spokes
        xs = size / 2 + t * np.cos(angle) - offset * np.sin(angle)
        ys = size / 2 + t * np.sin(angle) + offset * np.cos(angle)
        for x, y in zip(xs, ys, strict=True):
            prob[disk((y, x), width * size / 2, shape=prob.shape)] = 1.0
    return prob * fov, InfantFov(fov, float(size), False)


def score(size: int, wiggle: float, width: float) -> dict:
    result = vascular_severity(*drawn(size, wiggle, width))
    assert result["vascular"]["status"] == "ok", result
    return result


def test_tortuous_and_wide_vessels_score_higher():
    straight = score(400, 0.0, 0.008)
    tortuous = score(400, 0.01, 0.008)
    wide = score(400, 0.0, 0.016)
    assert tortuous["vascular"]["tortuosity"] > 0.1 > 0.01 > straight["vascular"]["tortuosity"]
    assert wide["vascular"]["width_fraction"] == pytest.approx(0.016, rel=0.15)
    assert straight["vascular"]["width_fraction"] == pytest.approx(0.008, rel=0.2)
    assert tortuous["vascular_severity"] > wide["vascular_severity"] > straight["vascular_severity"]


@pytest.mark.parametrize("wiggle", [0.0, 0.005])
def test_the_score_does_not_follow_the_resolution(wiggle):
    """The same picture resized (as a 640×480 and a 1600×1200 camera would see it)."""
    from eyescan.api import fundus

    prob, fov = drawn(1200, wiggle, 0.012)
    scores = []
    for side in (400, 800, 1200):
        small = InfantFov(fundus.resize(fov.mask, side), float(side), False)
        scores.append(vascular_severity(fundus.resize(prob, side), small)["vascular_severity"])
    assert max(scores) - min(scores) < 0.1 * max(scores) + 0.05


def test_pole_is_found_where_the_vessels_converge():
    prob, fov = drawn(400, 0.0, 0.01)
    shifted = np.zeros_like(prob)
    shifted[:, 60:] = prob[:, :-60]  # the tree's centre moves 60 px right
    x, y = vascular_severity(shifted, fov)["vascular"]["pole_centre_xy"]
    assert abs(x - 260) < 15 and abs(y - 200) < 15


def test_no_vessels_no_score():
    fov = InfantFov(np.ones((200, 200), bool), 200.0, True)
    result = vascular_severity(np.zeros((200, 200), np.float32), fov)
    assert result["vascular_severity"] is None and result["vascular"]["status"] == "too few vessels"


def test_rop_asks_for_a_vessel_map_and_works_without_one():
    assert [n.name for n in RopTask.needs] == ["vessel_probability"]
    assert not RopTask.needs[0].required  # no vessels plugin: the cascade still runs
    image = np.zeros((120, 160, 3), np.uint8)
    image[10:110, 30:130] = 120
    item = RopTask().preprocess(image, "x.png")  # no provided inputs at all
    assert item["vessels"] is None
    assert severity_of(item) == {"vascular_severity": None, "vascular": {"status": NO_VESSELS}}


def test_infant_fov_is_the_circle_even_when_clipped():
    yy, xx = np.mgrid[:480, :640]
    image = np.zeros((480, 640, 3), np.uint8)
    image[(yy - 240) ** 2 + (xx - 320) ** 2 <= 310**2] = (200, 150, 120)  # cut at top and bottom
    fov = infant_fov(image)
    assert fov.diameter == pytest.approx(620, abs=6) and not fov.whole_frame
