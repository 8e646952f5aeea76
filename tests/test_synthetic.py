"""Tests for the synthetic fundus generator (eyescan.data.synthetic)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from eyescan.data.synthetic import (
    SyntheticFundus,
    make_fundus,
    write_drive_layout,
    write_folder,
)

MASKS = ("vessels", "fov", "microaneurysms", "haemorrhages", "exudates")


def _count(mask: np.ndarray) -> int:
    return int(ndimage.label(mask, structure=np.ones((3, 3), bool))[1])


def _assert_equal(a: SyntheticFundus, b: SyntheticFundus) -> None:
    np.testing.assert_array_equal(a.image, b.image)
    for name in MASKS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.disc_center == b.disc_center and a.lesion_counts == b.lesion_counts


def test_deterministic_for_seed() -> None:
    _assert_equal(make_fundus(128, seed=5), make_fundus(128, seed=5))
    _assert_equal(make_fundus(128, seed=5, severity=4), make_fundus(128, seed=5, severity=4))
    assert not np.array_equal(make_fundus(128, seed=5).image, make_fundus(128, seed=6).image)


@pytest.mark.parametrize("size, shape", [(96, (96, 96)), ((120, 150), (120, 150))])
def test_shapes_and_dtypes(size: int | tuple[int, int], shape: tuple[int, int]) -> None:
    f = make_fundus(size, seed=1, severity=2)
    assert f.image.shape == (*shape, 3) and f.image.dtype == np.uint8
    for name in MASKS:
        m = getattr(f, name)
        assert m.shape == shape and m.dtype == bool, name
    assert f.neovascular is not None and f.neovascular.shape == shape
    r, c = f.disc_center
    assert f.fov[r, c]
    assert f.severity == 2 and set(f.lesion_counts) == {
        "microaneurysms",
        "haemorrhages",
        "exudates",
        "neovascular",
    }


def test_size_too_small_and_bad_severity() -> None:
    with pytest.raises(ValueError):
        make_fundus(8)
    with pytest.raises(ValueError):
        make_fundus(64, severity=5)


def test_fov_is_centred_circle_and_background_dark() -> None:
    f = make_fundus(256, seed=2)
    area = f.fov.sum()
    assert area == pytest.approx(np.pi * (0.46 * 256) ** 2, rel=0.02)
    assert f.fov[128, 128] and not f.fov[0, 0]
    assert f.image[~f.fov].max() < 20
    bg = f.fov & ~f.vessels
    mean = f.image[bg].mean(axis=0)
    assert mean[0] > mean[1] > mean[2]  # orange-red retina


@pytest.mark.parametrize("seed", range(5))
def test_vessels(seed: int) -> None:
    f = make_fundus(256, seed=seed)
    assert f.vessels.any()
    assert not (f.vessels & ~f.fov).any()
    frac = f.vessels[f.fov].mean()
    assert 0.03 <= frac <= 0.25
    bg = f.fov & ~f.vessels
    green = f.image[..., 1].astype(float)
    assert green[f.vessels].mean() < green[bg].mean() - 10
    # Vessels are darker mostly in green: relative drop larger in G than in R.
    red = f.image[..., 0].astype(float)
    assert green[f.vessels].mean() / green[bg].mean() < red[f.vessels].mean() / red[bg].mean()


def test_vessel_mask_matches_painted_pixels() -> None:
    # Without noise-free access, compare against the neighbourhood: every vessel pixel that is
    # not on the disc is darker in green than the local non-vessel background.
    f = make_fundus(256, seed=3)
    green = f.image[..., 1].astype(float)
    bg = f.fov & ~f.vessels
    local = ndimage.uniform_filter(np.where(bg, green, 0), 9) / np.maximum(
        ndimage.uniform_filter(bg.astype(float), 9), 1e-6
    )
    dr, dc = f.disc_center
    yy, xx = np.ogrid[: green.shape[0], : green.shape[1]]
    off_disc = (yy - dr) ** 2 + (xx - dc) ** 2 > (2 * f.disc_radius) ** 2
    v = f.vessels & off_disc
    assert np.mean(green[v] < local[v]) > 0.97


def test_no_lesions_by_default() -> None:
    f = make_fundus(128, seed=0)
    assert f.severity == 0 and not any(f.lesion_counts.values())
    for name in ("microaneurysms", "haemorrhages", "exudates", "neovascular"):
        assert not getattr(f, name).any(), name


def _counts_match_masks(f: SyntheticFundus) -> None:
    """``lesion_counts`` says what the masks hold (blobs never touch, so components = lesions)."""
    assert f.lesion_counts["microaneurysms"] == _count(f.microaneurysms)
    assert f.lesion_counts["haemorrhages"] == _count(f.haemorrhages)
    assert (f.lesion_counts["exudates"] > 0) == bool(f.exudates.any())
    assert (f.lesion_counts["neovascular"] > 0) == bool(f.neovascular.any())


@pytest.mark.parametrize("severity", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("size, seed", [(96, 0), (96, 1), (192, 2), (192, 3)])
def test_severity_pattern(severity: int, size: int, seed: int) -> None:
    f = make_fundus(size, seed=seed, severity=severity)
    assert f.severity == severity
    _counts_match_masks(f)
    n_ma, n_h = _count(f.microaneurysms), _count(f.haemorrhages)
    has_ex, has_nv = bool(f.exudates.any()), bool(f.neovascular.any())
    if severity == 0:
        assert n_ma == n_h == 0 and not has_ex and not has_nv
    elif severity == 1:
        assert n_ma > 0 and n_h == 0 and not has_ex and not has_nv
    elif severity == 2:
        assert n_ma > 0 and (0 < n_h < 10 or has_ex) and n_h < 10 and not has_nv
    elif severity == 3:
        assert n_ma > 0 and n_h >= 10 and not has_nv
    else:
        assert n_ma > 0 and n_h >= 10 and has_ex and has_nv
        assert not (f.neovascular & ~f.vessels).any()


@pytest.mark.parametrize("severity", [1, 2, 3, 4])
def test_lesion_masks_disjoint_and_in_fov(severity: int) -> None:
    f = make_fundus(256, seed=7, severity=severity)
    masks = [f.vessels, f.microaneurysms, f.haemorrhages, f.exudates]
    for i, a in enumerate(masks):
        for b in masks[i + 1 :]:
            assert not (a & b).any()
    for m in masks[1:]:
        assert not (m & ~f.fov).any()
    green = f.image[..., 1].astype(float)
    bg = green[f.fov & ~f.vessels & ~f.microaneurysms & ~f.haemorrhages & ~f.exudates].mean()
    if f.haemorrhages.any():
        assert green[f.haemorrhages].mean() < bg
    if f.exudates.any():  # yellow: bright red and green, low blue
        px = f.image[f.exudates].astype(float).mean(axis=0)
        assert px[1] > bg + 60 and px[0] > px[2] + 60


def test_random_lesions_consistent() -> None:
    for seed in range(6):
        f = make_fundus(160, seed=seed, lesions=True)
        assert 1 <= f.severity <= 4
        _counts_match_masks(f)
    f = make_fundus(160, seed=3, lesions=12)
    n = _count(f.microaneurysms) + _count(f.haemorrhages)
    assert 0 < n <= 12
    _counts_match_masks(f)
    assert f.lesion_counts["neovascular"] == 0
    assert not any(make_fundus(160, seed=3, lesions=0).lesion_counts.values())


def test_write_drive_layout(tmp_path: Path) -> None:
    root = write_drive_layout(tmp_path / "DRIVE", n_train=3, n_test=2, size=80, seed=1)
    assert root == tmp_path / "DRIVE"
    expected = {
        "training/images": ["21_training.tif", "22_training.tif", "23_training.tif"],
        "training/1st_manual": ["21_manual1.gif", "22_manual1.gif", "23_manual1.gif"],
        "training/mask": ["21_training_mask.gif", "22_training_mask.gif", "23_training_mask.gif"],
        "test/images": ["01_test.tif", "02_test.tif"],
        "test/1st_manual": ["01_manual1.gif", "02_manual1.gif"],
        "test/mask": ["01_test_mask.gif", "02_test_mask.gif"],
    }
    for sub, names in expected.items():
        assert sorted(p.name for p in (root / sub).iterdir()) == names, sub
    for split, num in (("training", 21), ("test", 1)):
        d = root / split
        with Image.open(d / "images" / f"{num:02d}_{split}.tif") as im:
            assert im.mode == "RGB" and im.size == (80, 80)
            img = np.asarray(im)
        for path in (
            d / "1st_manual" / f"{num:02d}_manual1.gif",
            d / "mask" / f"{num:02d}_{split}_mask.gif",
        ):
            with Image.open(path) as im:
                assert im.size == (80, 80)
                arr = np.asarray(im.convert("L"))
                raw = np.asarray(im)
            assert set(np.unique(arr)) == {0, 255}
            np.testing.assert_array_equal(raw, arr)  # palette is identity grey
        with Image.open(d / "mask" / f"{num:02d}_{split}_mask.gif") as im:
            fov = np.asarray(im.convert("L")) > 0
        assert img[~fov].max() < 20
    # Deterministic for a seed.
    again = write_drive_layout(tmp_path / "DRIVE2", n_train=3, n_test=2, size=80, seed=1)
    a = np.asarray(Image.open(root / "test/images/02_test.tif"))
    b = np.asarray(Image.open(again / "test/images/02_test.tif"))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("ext", [".png", "jpg", ".tif"])
def test_write_folder(tmp_path: Path, ext: str) -> None:
    paths = write_folder(tmp_path / "imgs", n=3, size=64, seed=2, ext=ext)
    assert len(paths) == 3 and len(set(paths)) == 3
    for p in paths:
        assert p.exists() and p.suffix == ("." + ext.lstrip("."))
        with Image.open(p) as im:
            assert im.mode == "RGB" and im.size == (64, 64)


def test_speed_584() -> None:
    make_fundus(64)  # warm imports
    t0 = time.perf_counter()
    f = make_fundus(584, seed=0)
    assert time.perf_counter() - t0 < 2.0
    assert f.image.shape == (584, 584, 3)
