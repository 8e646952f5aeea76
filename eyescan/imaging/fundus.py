"""Fundus-photograph helpers: field of view, cropping, padding, resizing, CLAHE, and the
square, undistorted FOV view (:func:`square_fov`) of a photograph of any aspect ratio."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Background red level below which the red channel alone separates the FOV (dark backgrounds).
DARK_BACKGROUND = 40.0
#: An FOV estimate covering less of the image than this is not trusted (:func:`fov_box`).
MIN_FOV_FRACTION = 0.05
#: A photograph whose longer side exceeds this (pixels) has its FOV estimated on a copy
#: shrunk to it (area average) and the mask enlarged back: the estimate then costs what a
#: 1.3-MP photo costs (8 MP: 350 -> 40 ms, 1 GB less memory; docs/performance.md). Every
#: data set the shipped models were measured on is smaller (DRIVE, CHASE_DB1, IDRiD copies).
FOV_MAX_SIDE = 1280


def fov_mask(image: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """Estimate the field-of-view (the bright disc of the photograph) as a bool mask.

    Photographs larger than :data:`FOV_MAX_SIDE` are measured on a shrunk copy (see there).

    The background colour is read from the image corners. On a dark background
    (red below :data:`DARK_BACKGROUND`, the usual case) the FOV is where the red
    channel rises above the background's red; on a bright, grey or coloured
    background it is where the colour differs from the background's (largest
    channel difference). Corners that look like fundus (the photograph fills the
    frame) mean no background: the red channel alone. The threshold on that
    difference is 8 % of its 99th percentile, at least 8 and above the corners'
    noise, unless given; then morphology cleans up: an opening, the largest
    connected component, holes filled. A bright-background result smaller than
    a tenth of the image means the corners were not background: the whole image.
    """
    array = np.asarray(image)
    h, w = array.shape[:2]
    if max(h, w) <= FOV_MAX_SIDE:
        return _fov_mask(array, threshold)
    import cv2

    factor = FOV_MAX_SIDE / max(h, w)
    small = cv2.resize(
        np.ascontiguousarray(array[..., :3] if array.ndim == 3 else array),
        (max(1, round(w * factor)), max(1, round(h * factor))),
        interpolation=cv2.INTER_AREA,
    )
    mask = _fov_mask(small, threshold).astype(np.uint8) * 255
    return cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR) > 127


def _fov_mask(array: np.ndarray, threshold: float | None) -> np.ndarray:
    rgb = (array[..., None] if array.ndim == 2 else array[..., :3]).astype(np.float32)
    background, noise = _background(rgb)
    bright = background is not None and background[0] >= DARK_BACKGROUND
    if bright:
        difference = np.abs(rgb - background).max(axis=-1)
    else:
        difference = rgb[..., 0] - (background[0] if background is not None else 0.0)
    if threshold is None:
        threshold = max(8.0, 0.08 * float(np.percentile(difference, 99)), noise + 8.0)
    shape = difference.shape
    mask = _open(difference > threshold, max(1, min(shape) // 200))
    largest = _largest_component(mask)
    if largest is None:
        return np.ones(shape, dtype=bool)
    mask = _fill_holes(largest)
    if bright and mask.mean() < 0.1:
        return np.ones(shape, dtype=bool)
    return mask


def _background(rgb: np.ndarray) -> tuple[np.ndarray | None, float]:
    """Background colour (median of the most typical corner) and its noise, from the corners.

    ``(None, 0)`` when the corners look like fundus (reddish and not dark) or the
    image is too small to have corners.
    """
    h, w = rgb.shape[:2]
    side = max(2, min(h, w) // 16)
    if min(h, w) < 4 * side:
        return None, 0.0
    patches = [
        rgb[rows, cols].reshape(-1, rgb.shape[2])
        for rows in (slice(0, side), slice(h - side, h))
        for cols in (slice(0, side), slice(w - side, w))
    ]
    colours = np.stack([np.median(patch, axis=0) for patch in patches])
    spread = np.abs(colours[:, None] - colours[None]).max(axis=-1).sum(axis=1)
    best = int(np.argmin(spread))
    colour = colours[best]
    red, rest = float(colour[0]), float(colour[1:].max()) if colour.size > 1 else 0.0
    if red >= DARK_BACKGROUND and colour.size > 1 and red >= 1.3 * rest:
        return None, 0.0
    noise = float(np.percentile(np.abs(patches[best] - colour).max(axis=-1), 99))
    return np.broadcast_to(colour, (rgb.shape[2],)).copy(), noise


def _open(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary opening with a ``(2r+1)`` square (OpenCV; outside the image counts as
    background, as in scipy's ``binary_erosion``): 30× faster than scipy's on DRIVE."""
    import cv2

    kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    border = {"borderType": cv2.BORDER_CONSTANT, "borderValue": 0}
    eroded = cv2.erode(mask.astype(np.uint8), kernel, **border)
    return cv2.dilate(eroded, kernel, **border).astype(bool)


def _largest_component(mask: np.ndarray) -> np.ndarray | None:
    """The largest 4-connected component of a mask (None when the mask is empty)."""
    import cv2

    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        mask.astype(np.uint8), connectivity=4
    )
    if count <= 1:
        return None
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """The mask with its holes filled: background not 4-connected to the image's edge
    (scipy's ``binary_fill_holes``), by one flood fill from a one-pixel frame."""
    import cv2

    framed = np.pad(mask.astype(np.uint8), 1)
    cv2.floodFill(framed, None, (0, 0), 2, flags=4)
    return (framed != 2)[1:-1, 1:-1]


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


def fov_box(
    image: np.ndarray, mask: np.ndarray | None = None, min_fraction: float = MIN_FOV_FRACTION
) -> tuple[int, int, int, int] | None:
    """Bounding box ``(top, left, bottom, right)`` of the field of view, or None.

    ``mask`` is the FOV (estimated by :func:`fov_mask` when None). None means no
    FOV to crop to: the mask is the whole frame (no background was found, or the
    photograph fills it) or covers less than ``min_fraction`` of the image (a
    speck in a dark picture, not a fundus).
    """
    mask = fov_mask(image) if mask is None else np.asarray(mask, bool)
    if mask.all() or mask.mean() < min_fraction:
        return None
    return crop_box(mask)


@dataclass(frozen=True)
class SquareFrame:
    """Where the square FOV view of :func:`square_fov` sits in the original photograph.

    The original was cropped to ``top:bottom, left:right`` and the crop placed at
    ``(pad_top, pad_left)`` of a black ``side`` × ``side`` square; nothing was
    stretched. ``whole_image`` is True when no FOV was found and the whole image
    was padded instead.
    """

    top: int
    left: int
    bottom: int
    right: int
    pad_top: int
    pad_left: int
    side: int
    whole_image: bool = False

    def _shift(self) -> np.ndarray:
        return np.array([self.pad_left - self.left, self.pad_top - self.top] * 2, float)

    def to_square(self, boxes: np.ndarray, size: int) -> np.ndarray:
        """Boxes (N×4 ``x0, y0, x1, y1``, original pixels) in a ``size``² resize of the square."""
        return (np.asarray(boxes, float).reshape(-1, 4) + self._shift()) * (size / self.side)

    def to_original(self, boxes: np.ndarray, size: int) -> np.ndarray:
        """Boxes (N×4) of a ``size`` × ``size`` square back in original pixels."""
        return np.asarray(boxes, float).reshape(-1, 4) * (self.side / size) - self._shift()

    def heat_to_original(self, heat: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """A square map (any size) placed back into an image of ``shape`` (zeros outside)."""
        full = resize(np.asarray(heat, np.float32), self.side)
        out = np.zeros(shape, np.float32)
        h, w = self.bottom - self.top, self.right - self.left
        out[self.top : self.bottom, self.left : self.right] = full[
            self.pad_top : self.pad_top + h, self.pad_left : self.pad_left + w
        ]
        return out


def square_fov(
    image: np.ndarray,
    margin: float = 0.0,
    mask: np.ndarray | None = None,
    size: int | None = None,
) -> tuple[np.ndarray, SquareFrame]:
    """The photograph cropped to its field of view, padded to a square, without distortion.

    The crop is the FOV's bounding box (:func:`fov_box`; ``mask`` estimated when
    None) grown by ``margin`` × its longer side on every side (clipped to the
    image); the short side is padded with black, centred. Without an FOV
    (:func:`fov_box` None) the whole image is padded and ``frame.whole_image``
    says so. ``size`` resizes the square to ``size``² (the frame stays that of
    the unresized square: pass ``size`` to its methods). A circle stays a circle.
    """
    array = np.asarray(image)
    h, w = array.shape[:2]
    box = fov_box(array, mask)
    if box is None:
        top, left, bottom, right = 0, 0, h, w
    else:
        top, left, bottom, right = box
        grow = int(round(margin * max(bottom - top, right - left)))
        top, left = max(0, top - grow), max(0, left - grow)
        bottom, right = min(h, bottom + grow), min(w, right + grow)
    square = pad_to_square(array[top:bottom, left:right])
    side = square.shape[0]
    frame = SquareFrame(
        top,
        left,
        bottom,
        right,
        (side - (bottom - top)) // 2,
        (side - (right - left)) // 2,
        side,
        box is None,
    )
    return (resize(square, size) if size and size != side else square), frame


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
    """Contrast-limited adaptive histogram equalisation, per channel (scikit-image's).

    Returns ``float32`` in [0, 1] with the input's shape. ``uint8`` images with the
    default kernel (1/8 of each side) go through :func:`eyescan.imaging.clahe.equalize`,
    the same numbers about 3-4× faster; other inputs through scikit-image itself.
    """
    array = np.asarray(image)
    channels = [array] if array.ndim == 2 else [array[..., c] for c in range(array.shape[2])]
    if array.dtype == np.uint8 and kernel_size is None and min(array.shape[:2]) >= 16:
        from eyescan.imaging.clahe import equalize

        done = [equalize(c, clip_limit) for c in channels]
    else:
        from skimage import exposure

        done = [
            exposure.equalize_adapthist(c, kernel_size, clip_limit).astype(np.float32)
            for c in channels
        ]
    return done[0] if array.ndim == 2 else np.stack(done, axis=-1)
