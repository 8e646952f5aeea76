"""Image reading: formats, conversions, EXIF, clear errors; atomic writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eyescan.errors import ImageReadError
from eyescan.imaging import imageio


def _rgb(h=6, w=4):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("ext", [".png", ".tif", ".bmp", ".jpg", ".gif"])
def test_formats_read_as_rgb(tmp_path, ext):
    path = tmp_path / f"a{ext}"
    Image.fromarray(_rgb()).save(path)
    image = imageio.read_image(path)
    assert image.dtype == np.uint8 and image.shape == (6, 4, 3)


def test_sixteen_bit_greyscale(tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(np.full((4, 4), 65535, np.uint16)).save(path)
    assert imageio.read_image(path).min() == 255


def test_rgba_and_palette(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    assert imageio.read_image(tmp_path / "a.png")[0, 0].tolist() == [200, 0, 0]
    Image.fromarray(_rgb()).convert("P").save(tmp_path / "p.png")
    assert imageio.read_image(tmp_path / "p.png").shape == (6, 4, 3)


def test_exif_orientation_is_applied(tmp_path):
    image = Image.fromarray(_rgb(6, 4))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    image.save(tmp_path / "r.jpg", exif=exif)
    assert imageio.read_image(tmp_path / "r.jpg").shape == (4, 6, 3)


def test_errors_name_the_file(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not an image")
    with pytest.raises(ImageReadError, match="empty.png: empty file"):
        imageio.read_image(tmp_path / "empty.png")
    with pytest.raises(ImageReadError, match="text.jpg: cannot decode"):
        imageio.read_image(tmp_path / "text.jpg")
    with pytest.raises(ImageReadError, match="missing.png: file not found"):
        imageio.read_image(tmp_path / "missing.png")


def test_mask_reading(tmp_path):
    mask = np.zeros((5, 5), np.uint8)
    mask[1:3, 1:3] = 255
    Image.fromarray(mask).save(tmp_path / "m.gif")
    assert imageio.read_mask(tmp_path / "m.gif").sum() == 4


def test_iter_images_recursive_sorted(tmp_path):
    (tmp_path / "b").mkdir()
    for name in ["b/2.png", "1.jpg", "notes.txt"]:
        (tmp_path / name).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p, _ in imageio.iter_images([tmp_path])]
    assert found == ["1.jpg", "b/2.png"]


def test_save_png_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    imageio.save_png(target, np.zeros((3, 3), bool))
    assert target.exists()

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_bytes", fail)
    with pytest.raises(OSError):
        imageio.save_png(tmp_path / "other.png", np.zeros((3, 3), np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12 * 7, dtype=np.uint8).reshape(12, 7),
        np.random.default_rng(0).integers(0, 256, (9, 11, 3), dtype=np.uint8),
        np.random.default_rng(1).integers(0, 256, (5, 6, 4), dtype=np.uint8),
        np.random.default_rng(2).integers(0, 65536, (8, 5), dtype=np.uint16),
        np.eye(6, dtype=bool),
    ],
)
def test_save_png_round_trips_the_pixels(tmp_path, array):
    path = imageio.save_png(tmp_path / "a.png", array)
    with Image.open(path) as image:
        back = np.asarray(image)
        mode = image.mode
    expected = array.astype(np.uint8) * 255 if array.dtype == bool else array
    channels = 1 if array.ndim == 2 else array.shape[2]
    expected_mode = "I;16" if array.dtype == np.uint16 else {1: "L", 3: "RGB", 4: "RGBA"}[channels]
    assert mode == expected_mode
    assert np.array_equal(back, expected)
