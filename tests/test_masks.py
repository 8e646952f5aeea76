"""One mask reader for every form masks come in."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from eyescan.imaging.imageio import read_mask

TRUTH = np.zeros((16, 16), bool)
TRUTH[4:12, 6:10] = True


def _save(path, image):
    image.save(path)
    return path


@pytest.mark.parametrize(
    "name,make",
    [
        ("zero-one.png", lambda: Image.fromarray(TRUTH.astype(np.uint8))),
        ("zero-255.png", lambda: Image.fromarray(TRUTH.astype(np.uint8) * 255)),
        ("zero-128.png", lambda: Image.fromarray(TRUTH.astype(np.uint8) * 128)),
        ("one-bit.png", lambda: Image.fromarray(TRUTH).convert("1")),
        ("one-bit.tif", lambda: Image.fromarray(TRUTH).convert("1")),
        ("sixteen.png", lambda: Image.fromarray(TRUTH.astype(np.uint16) * 65535)),
        ("rgb.png", lambda: Image.fromarray(np.stack([TRUTH * 255] * 3, -1).astype(np.uint8))),
        (
            "red.png",
            lambda: Image.fromarray(
                np.stack([TRUTH * 255, TRUTH * 0, TRUTH * 0], -1).astype(np.uint8)
            ),
        ),
        ("drive.gif", lambda: Image.fromarray(TRUTH.astype(np.uint8) * 255)),
    ],
)
def test_binary_forms(tmp_path, name, make):
    mask = read_mask(_save(tmp_path / name, make()))
    assert np.array_equal(mask, TRUTH)
    # canonical booleans: NumPy's view of a 1-bit image stores True as 255
    assert set(np.unique(mask.view(np.uint8)).tolist()) <= {0, 1}


def test_auc_of_masks_with_byte_255_booleans_counts_every_vessel_pixel():
    """A 1-bit mask as NumPy sees it, pooled with a 0/1 one: sklearn's label encoder saw
    three values and dropped the 255 pixels' class (pooled DRIVE + CHASE_DB1 AUC 0.95
    instead of 0.978); every metric now reads truths as non-zero."""
    from eyescan.evaluation import bootstrap, metrics

    rng = np.random.default_rng(0)
    truth = rng.random(4000) < 0.2
    score = np.clip(truth * 0.6 + rng.random(4000) * 0.5, 0, 1)
    odd = truth.copy()
    odd[2000:].view(np.uint8)[odd[2000:]] = 255  # the second "image" as a 1-bit PNG reads
    assert int(odd.view(np.uint8).max()) == 255
    expected = metrics.rank_auc(truth, score)
    assert metrics.auc_roc(odd, score) == pytest.approx(expected)
    assert metrics.binary_metrics(odd, score)["auc_roc"] == pytest.approx(expected)
    assert metrics.binary_metrics(odd, score)["auc_pr"] == pytest.approx(
        metrics.binary_metrics(truth, score)["auc_pr"]
    )
    stats = bootstrap.pooled_pixel_stats(score, odd, 0.5)
    assert np.array_equal(stats, bootstrap.pooled_pixel_stats(score, truth, 0.5))


def test_palette_index_not_colour(tmp_path):
    image = Image.fromarray(TRUTH.astype(np.uint8), mode="P")
    image.putpalette([255, 255, 255, 0, 0, 0] + [0] * 762)  # index 1 drawn black
    assert np.array_equal(read_mask(_save(tmp_path / "p.png", image)), TRUTH)


def test_grey_levels_with_jpeg_artefacts_need_their_threshold(tmp_path):
    rng = np.random.default_rng(0)
    grey = np.where(TRUTH, 60, 0) + rng.integers(0, 12, TRUTH.shape)
    path = _save(tmp_path / "g.png", Image.fromarray(grey.astype(np.uint8)))
    assert not read_mask(path).any()  # auto: many levels -> > 127
    assert np.array_equal(read_mask(path, threshold=30), TRUTH)


def test_anti_aliased_edges(tmp_path):
    soft = TRUTH.astype(np.float32) * 255
    soft[3, 6:10] = 100  # an anti-aliased row below half
    soft[12, 6:10] = 200  # and one above
    path = _save(tmp_path / "aa.png", Image.fromarray(soft.astype(np.uint8)))
    mask = read_mask(path)
    assert mask[12, 6:10].all() and not mask[3, 6:10].any()
