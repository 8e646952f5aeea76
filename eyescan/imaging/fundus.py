"""Fundus-photograph helpers: field of view, cropping, padding, resizing, CLAHE."""

from __future__ import annotations

import numpy as np


def fov_mask(image: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """Estimate the field-of-view (the bright disc of the photograph) as a bool mask.

    Thresholds the red channel (at 8 % of its 99th percentile unless given),
    then cleans up with morphology: largest connected component, holes filled.
    """
    from scipy import ndimage

    red = np.asarray(image)[..., 0].astype(np.float32)
    if threshold is None:
        threshold = max(8.0, 0.08 * float(np.percentile(red, 99)))
    mask = red > threshold
    radius = max(1, min(mask.shape) // 200)
    mask = ndimage.binary_opening(mask, structure=np.ones((2 * radius + 1,) * 2, bool))
    labels, count = ndimage.label(mask)
    if count == 0:
        return np.ones(mask.shape, dtype=bool)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    mask = labels == int(np.argmax(sizes))
    mask = ndimage.binary_fill_holes(mask)
    return mask.astype(bool)


def crop_box(mask: np.ndarray, margin: int = 0) -> tuple[int, int, int, int]:
    """Bounding box ``(top, left, bottom, right)`` of a mask, with a margin, clipped."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return 0, 0, mask.shape[0], mask.shape[1]
    top = max(0, int(rows[0]) - margin)
    left = max(0, int(cols[0]) - margin)
    bottom = min(mask.shape[0], int(rows[-1]) + 1 + margin)
    right = min(mask.shape[1], int(cols[-1]) + 1 + margin)
    return top, left, bottom, right


def crop_to_fov(image: np.ndarray, mask: np.ndarray | None = None, margin: int = 0) -> np.ndarray:
    """Crop an image to its field of view (estimated when ``mask`` is None)."""
    if mask is None:
        mask = fov_mask(image)
    top, left, bottom, right = crop_box(mask, margin)
    return image[top:bottom, left:right]


def pad_to_square(image: np.ndarray, value: int = 0) -> np.ndarray:
    """Pad the short side symmetrically so the image is square (no distortion)."""
    h, w = image.shape[:2]
    size = max(h, w)
    top, left = (size - h) // 2, (size - w) // 2
    pad = [(top, size - h - top), (left, size - w - left)] + [(0, 0)] * (image.ndim - 2)
    return np.pad(image, pad, mode="constant", constant_values=value)


def pad_to_multiple(array: np.ndarray, multiple: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Pad H and W (bottom/right, reflect) up to a multiple; returns the array and (H, W)."""
    h, w = array.shape[:2]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return array, (h, w)
    pad = [(0, ph), (0, pw)] + [(0, 0)] * (array.ndim - 2)
    mode = "reflect" if h > ph and w > pw else "edge"
    return np.pad(array, pad, mode=mode), (h, w)


def resize(image: np.ndarray, size: tuple[int, int] | int, nearest: bool = False) -> np.ndarray:
    """Resize to ``(height, width)`` (or a square side) with Pillow; keeps dtype."""
    from PIL import Image

    if isinstance(size, int):
        size = (size, size)
    array = np.asarray(image)
    if array.dtype == bool:
        out = Image.fromarray(array.astype(np.uint8) * 255).resize(
            (size[1], size[0]), Image.NEAREST
        )
        return np.asarray(out) > 127
    method = Image.NEAREST if nearest else Image.BILINEAR
    if array.dtype == np.uint8:
        return np.asarray(Image.fromarray(array).resize((size[1], size[0]), method))
    channels = array[..., None] if array.ndim == 2 else array
    out = np.stack(
        [
            np.asarray(
                Image.fromarray(channels[..., c].astype(np.float32), mode="F").resize(
                    (size[1], size[0]), method
                )
            )
            for c in range(channels.shape[2])
        ],
        axis=-1,
    )
    return out[..., 0] if array.ndim == 2 else out


def clahe(
    image: np.ndarray, clip_limit: float = 0.01, kernel_size: int | None = None
) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation (scikit-image), per channel.

    Returns ``float32`` in [0, 1] with the input's shape.
    """
    from skimage import exposure

    array = np.asarray(image)
    if array.ndim == 2:
        return exposure.equalize_adapthist(array, kernel_size, clip_limit).astype(np.float32)
    channels = [
        exposure.equalize_adapthist(array[..., c], kernel_size, clip_limit)
        for c in range(array.shape[2])
    ]
    return np.stack(channels, axis=-1).astype(np.float32)
