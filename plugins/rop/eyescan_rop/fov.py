"""The field of view of an infant wide-field photograph (RetCam-style).

Infant photographs show a circular field whose periphery is pale (avascular
retina), often with a bright reflection ring at its rim; some fill the frame
with no black border, and some (640×480 RetCam) cut the circle at the top
and bottom. :func:`infant_fov` returns the mask (the core's estimate,
``eyescan.api.fundus.fov_mask``, which reads the background from the
corners and takes the whole frame when there is none), and the circle's
diameter: the longer side of the mask's bounding box, which stays the
diameter when the circle is clipped on the other axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from eyescan.api import fundus


@dataclass(frozen=True)
class InfantFov:
    """FOV mask (bool, photo size), its circle's diameter in pixels, and whether it is the frame."""

    mask: np.ndarray
    diameter: float
    whole_frame: bool


def infant_fov(image: np.ndarray) -> InfantFov:
    """The FOV of an infant photograph (see the module docstring)."""
    mask = fundus.fov_mask(np.asarray(image))
    if not mask.any():
        mask = np.ones(mask.shape, bool)
    top, left, bottom, right = fundus.crop_box(mask)
    diameter = float(max(bottom - top, right - left))
    return InfantFov(mask, diameter, bool(mask.all()))


def square_view(image: np.ndarray, fov: InfantFov) -> tuple[np.ndarray, fundus.SquareFrame]:
    """The photo with black outside the FOV, cropped to the FOV and padded to a square."""
    array = np.asarray(image)
    if not fov.whole_frame:
        array = np.where(fov.mask[..., None], array, 0).astype(array.dtype)
    return fundus.square_fov(array, mask=fov.mask)
