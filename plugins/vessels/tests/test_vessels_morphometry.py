"""Skeleton-based vessel length, density and width (predict --morphometry)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from eyescan.api import imageio
from eyescan.testing import invoke_cli, json_lines
from eyescan_vessels.morphometry import ORTHOGONAL_STEP, measure, skeleton, skeleton_length

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
SHIPPED = Path(__file__).resolve().parents[1] / "eyescan_vessels" / "weights"


def test_length_of_straight_and_diagonal_lines():
    line = np.zeros((20, 40), bool)
    line[10, 5:35] = True  # 30 pixels: 29 unit steps
    assert skeleton_length(line) == pytest.approx(29 * ORTHOGONAL_STEP)
    assert skeleton_length(line) == pytest.approx(29, rel=0.06)  # Kulpa: −5.2 % at 0°
    diagonal = np.eye(30, dtype=bool)  # 29 diagonal steps
    assert skeleton_length(diagonal) == pytest.approx(29 * math.sqrt(2), rel=0.06)


def test_an_l_corner_is_not_counted_twice():
    corner = np.zeros((5, 5), bool)
    corner[1, 1:4] = True
    corner[1:4, 3] = True  # 2 steps right, 2 steps down through the corner pixel
    assert skeleton_length(corner) == pytest.approx(4 * ORTHOGONAL_STEP)


def test_thick_bar_measures_its_centre_line_and_width():
    mask = np.zeros((60, 220), bool)
    mask[25:32, 10:210] = True  # 200 px long, 7 px wide
    fov = np.ones_like(mask)
    values, skel = measure(mask, fov)
    assert skel.sum() <= 205 and (skel.sum(axis=0) <= 1).all()  # one pixel wide
    # thinning shortens the ends a little; Kulpa's orthogonal step is 0.948 px
    assert 0.94 * 190 <= values["vessel_length_px"] <= 200
    assert values["mean_vessel_width_px"] == pytest.approx(7, rel=0.1)
    assert values["skeleton_density"] == pytest.approx(skel.sum() / fov.size)


def test_ring_length_is_its_circumference():
    yy, xx = np.mgrid[:200, :200]
    radius = np.hypot(yy - 100, xx - 100)
    mask = (radius >= 57) & (radius <= 63)  # centre line at r = 60
    length = skeleton_length(skeleton(mask))
    assert length == pytest.approx(2 * math.pi * 60, rel=0.02)  # every direction: unbiased


def test_vessels_outside_the_fov_are_not_measured():
    mask = np.zeros((40, 80), bool)
    mask[18:21, 5:75] = True
    fov = np.zeros_like(mask)
    fov[:, :40] = True
    values, skel = measure(mask, fov)
    assert not skel[:, 40:].any()
    assert values["vessel_length_px"] < 40


def test_morphometry_is_a_declared_predict_option_of_a_run_copy():
    """``task.configured({"morphometry": True})`` measures; the registered task does not."""
    from types import SimpleNamespace

    import torch

    from eyescan.api import get_registry, synthetic
    from eyescan_vessels.models import unet

    task = get_registry().task("vessels")
    assert [o.name for o in task.predict_options] == ["morphometry"]
    assert task.predict_options[0].help and task.predict_options[0].default is False
    torch.manual_seed(0)
    model = SimpleNamespace(module=unet(width=2, depth=2).eval())
    item = task.preprocess(synthetic.make_fundus(64, seed=1).image, "x")
    run = task.configured({"morphometry": True})
    measured = run.predict(model, [item])[0]
    plain = task.predict(model, [item])[0]
    assert "vessel_length_px" in measured.values and "skeleton" in measured.arrays
    assert "vessel_length_px" not in plain.values and "skeleton" not in plain.arrays
    assert not task.options.get("morphometry")  # the registered task is untouched


def test_predict_morphometry_outputs_and_resume(tmp_path):
    """Through the CLI on the bundled photographs, with the shipped weights."""
    if not (SHIPPED / "unet.safetensors").exists():
        pytest.skip("no shipped weights")
    out = tmp_path / "out"
    plain = invoke_cli("predict", "vessels", EXAMPLES, "--out", out, "--json")
    assert plain.exit_code == 0, plain.output
    assert all("vessel_length_px" not in r["outputs"] for r in json_lines(plain.stdout))
    args = ["predict", "vessels", EXAMPLES, "--out", out, "--json", "--resume", "--morphometry"]
    measured = invoke_cli(*args)
    assert measured.exit_code == 0, measured.output
    records = json_lines(measured.stdout)
    for record in records:  # earlier records lacked the measurements: not reused
        assert not record.get("resumed") and record["requested"] == ["morphometry"]
        values = record["outputs"]
        assert values["vessel_length_px"] > 1000  # a fundus photograph's vessel tree
        assert 2 < values["mean_vessel_width_px"] < 10
        skel = imageio.read_image(out / record["files"]["skeleton"])
        assert skel.shape[:2] == (values["height"], values["width"])
        assert np.count_nonzero(skel[..., 0]) == values["skeleton_pixels"]
    again = json_lines(invoke_cli(*args).stdout)
    assert all(r["resumed"] for r in again)
