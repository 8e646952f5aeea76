"""The pixel limit, exercised: checked on the header before decoding, configurable with
``EYESCAN_MAX_PIXELS``, and a photo just under it processed within the stated memory
budget (``imageio.PHOTO_BYTES_PER_PIXEL``), measured as a child process's peak RSS
(``eyescan.testing.eyescan_peak_memory``: the child's own high-water mark).

The limit is set low here (a few megapixels) so that the photo "near the limit"
costs seconds; the budget is per pixel, so it is the same claim at any limit.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from eyescan.errors import EyescanError, ImageReadError
from eyescan.imaging import imageio
from eyescan.testing import eyescan_peak_memory, invoke_cli, json_lines

from . import figures

#: The limit of these tests and the photos under it (pixels).
LIMIT = 6_000_000
#: The run the budget is checked on: the hungriest single task per pixel (measured
#: 36.6 B/px; all five tasks in one run 45.0, but slower).
TASK = "strabismus"


def _photo(path: Path, width: int, height: int) -> Path:
    """A fundus-like photograph (a textured disc on black) of ``width``×``height``."""
    from eyescan.data.synthetic import make_fundus

    small = Image.fromarray(make_fundus(256, seed=4).image)
    small.resize((width, height), Image.BILINEAR).save(path, quality=90)
    return path


def test_limit_is_configurable_and_checked_before_decoding(tmp_path, monkeypatch):
    from PIL import ImageFile

    over = _photo(tmp_path / "over.png", 2500, 2500)  # 6.25 Mpx of real pixels
    under = _photo(tmp_path / "under.jpg", 2400, 2400)  # 5.76 Mpx
    monkeypatch.setenv(imageio.MAX_PIXELS_ENV, str(LIMIT))
    assert imageio.max_pixels() == LIMIT
    decoded = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(
        ImageFile.ImageFile, "load", lambda self: decoded.append(self) or real_load(self)
    )
    with pytest.raises(ImageReadError, match=r"image too large \(2500x2500 pixels, limit 6,000,0"):
        imageio.read_image(over)
    assert decoded == []  # refused from the header: not a pixel decoded
    assert imageio.read_image(under).shape == (2400, 2400, 3) and decoded
    count = len(decoded)
    # the report's thumbnails apply the same limit
    from eyescan.reports.report_html import embed_image

    assert embed_image(over).problem.startswith("image too large (2500x2500 pixels")
    assert len(decoded) == count
    # through predict: one record, code unreadable_image, the limit and how to set it
    result = invoke_cli("predict", "strabismus", over, "--out", tmp_path / "o", "--json")
    assert result.exit_code == 1
    (record,) = json_lines(result.stdout)
    assert record["error"]["code"] == "unreadable_image"
    assert "EYESCAN_MAX_PIXELS" in record["error"]["message"]
    # the default, and a bad value refused in one line
    monkeypatch.delenv(imageio.MAX_PIXELS_ENV)
    assert imageio.max_pixels() == imageio.MAX_PIXELS == 80_000_000
    monkeypatch.setenv(imageio.MAX_PIXELS_ENV, "lots")
    with pytest.raises(EyescanError, match="EYESCAN_MAX_PIXELS='lots': give a positive"):
        imageio.max_pixels()
    bad = invoke_cli("predict", "strabismus", under, "--out", tmp_path / "p")
    assert bad.exit_code == 1 and "EYESCAN_MAX_PIXELS" in bad.stderr
    assert "Traceback" not in bad.output


def test_photo_near_the_limit_stays_within_the_memory_budget(tmp_path, capsys):
    """Peak RSS of ``predict strabismus`` on a photo just under the limit, against a small one:
    the difference per pixel stays under the stated budget per pixel."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", imageio.MAX_PIXELS_ENV: str(LIMIT)}
    side = int(LIMIT**0.5) - 8  # 2441² = 5.96 Mpx: just under the limit
    near = _photo(tmp_path / "near.jpg", side, side)
    small = _photo(tmp_path / "small.jpg", 500, 500)
    peaks = {}
    for name, path in (("small", small), ("near", near)):
        peaks[name], code, stdout = eyescan_peak_memory(
            "predict", TASK, path, "--out", tmp_path / name, "--json", env=env
        )
        assert code == 0, stdout[-2000:]
        (record,) = json_lines(stdout)
        assert record["ok"], record
    per_pixel = (peaks["near"] - peaks["small"]) / (side * side - 500 * 500)
    figures.record(
        capsys,
        f"memory: {TASK} photo near the limit",
        pixels=side * side,
        limit=LIMIT,
        peak_mib=round(peaks["near"] / 2**20),
        small_photo_peak_mib=round(peaks["small"] / 2**20),
        bytes_per_pixel=round(per_pixel, 1),
        budget_bytes_per_pixel=imageio.PHOTO_BYTES_PER_PIXEL,
    )
    assert per_pixel <= imageio.PHOTO_BYTES_PER_PIXEL
