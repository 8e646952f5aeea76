"""The vectorised CLAHE gives scikit-image's numbers (the shipped vessel models were
trained on them): equal within one of its 2**14 grey levels."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import exposure

from eyescan.data.synthetic import make_fundus
from eyescan.imaging import fundus
from eyescan.imaging.clahe import equalize

#: About one of scikit-image's 2**14 grey levels (its float32 sums round differently
#: near integers; the final min-max stretch can make a level slightly larger).
TOLERANCE = 1e-4


@pytest.mark.parametrize(
    ("shape", "seed", "clip"),
    [((64, 64), 0, 0.01), ((97, 131), 1, 0.01), ((240, 180), 2, 0.03), ((300, 301), 3, 0.0)],
)
def test_equalize_matches_scikit_image(shape, seed, clip):
    image = make_fundus(shape, seed=seed).image
    for c in range(3):
        channel = np.ascontiguousarray(image[..., c])
        expected = exposure.equalize_adapthist(channel, None, clip).astype(np.float32)
        got = equalize(channel, clip)
        assert got.dtype == np.float32 and got.shape == channel.shape
        assert np.abs(got - expected).max() <= TOLERANCE


def test_equalize_of_flat_and_noisy_channels():
    flat = np.full((40, 50), 7, np.uint8)
    assert not equalize(flat).any()
    noise = np.random.default_rng(0).integers(0, 256, (80, 64), dtype=np.uint8)
    expected = exposure.equalize_adapthist(noise, None, 0.01)
    assert np.abs(equalize(noise) - expected).max() <= TOLERANCE
    with pytest.raises(ValueError):
        equalize(noise.astype(np.float32))


def test_fundus_clahe_falls_back_to_scikit_image_where_it_must():
    image = make_fundus(64, seed=4).image
    small = image[:12, :12]
    expected = np.stack(
        [exposure.equalize_adapthist(small[..., c], None, 0.01) for c in range(3)], -1
    )
    assert np.allclose(fundus.clahe(small), expected, atol=1e-6)
    with_kernel = fundus.clahe(image, kernel_size=16)
    assert with_kernel.dtype == np.float32 and with_kernel.shape == image.shape
    grey = fundus.clahe(image[..., 1])
    assert grey.shape == image.shape[:2]
