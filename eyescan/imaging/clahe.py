"""Contrast-limited adaptive histogram equalisation: scikit-image's algorithm, vectorised.

:func:`equalize` gives, for a ``uint8`` channel, the numbers of
``skimage.exposure.equalize_adapthist(channel, kernel_size=None, clip_limit, nbins)``
(scikit-image 0.22-0.26, Zuiderveld's CLAHE) to within one of its 2**14 grey
levels (max difference 6.2e-5 on the DRIVE test photographs, from float
rounding before its cast to ``uint16``), about 3-4× faster, in float32: the
per-region histograms come from one ``bincount``, the lookup tables are
interpolated with a precomputed index per pixel instead of scikit-image's
block reshapes in float64.

Why not OpenCV's ``createCLAHE`` (5-10× faster still): it redistributes the
clipped excess over every histogram bin, the clipped ones included, while
scikit-image tops up only the bins under the limit; with its tiles and clip
limit matched to scikit-image's the result still differs by 0.012 on average
(0.04 at the 99th percentile) on DRIVE, and the shipped vessel models were
trained on scikit-image's numbers (``docs/performance.md``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

#: Grey levels scikit-image works at (``NR_OF_GRAY``).
LEVELS = 2**14


@lru_cache(maxsize=16)
def _geometry(h: int, w: int, nbins: int) -> tuple:
    """Contextual regions of an ``h`` × ``w`` image, as scikit-image lays them out
    (kernel 1/8 of each side; the image reflect-padded by half a kernel before and up
    to a whole number of kernels after), and each pixel's region index and weights."""
    kh, kw = max(h // 8, 1), max(w // 8, 1)
    top, left = kh // 2, kw // 2
    bottom = (kh - h % kh) % kh + -(-kh // 2)
    right = (kw - w % kw) % kw + -(-kw // 2)
    nh, nw = (h + top + bottom) // kh - 1, (w + left + right) // kw - 1
    rows, cols = np.arange(top, top + h), np.arange(left, left + w)
    stride = (nw + 2) * nbins  # one row of the edge-padded maps
    base = ((rows // kh)[:, None] * stride + (cols // kw)[None, :] * nbins).astype(np.int32)
    weight_r = ((rows % kh) / kh).astype(np.float32)[:, None]
    weight_c = ((cols % kw) / kw).astype(np.float32)[None, :]
    region = (np.arange(nh * kh) // kh)[:, None] * nw + (np.arange(nw * kw) // kw)[None, :]
    for array in (base, weight_r, weight_c, region):
        array.flags.writeable = False
    pads = (top, bottom, left, right)
    return kh, kw, nh, nw, pads, stride, base, weight_r, weight_c, (region * nbins).astype(np.int32)


def clip_histograms(hist: np.ndarray, limit: int) -> np.ndarray:
    """Clip every histogram (rows of ``hist``, modified) at ``limit`` and redistribute each
    one's excess over its bins under the limit: scikit-image's ``clip_histogram`` (BSD-3),
    the same steps, the first ones done for all rows at once."""
    excess = np.maximum(hist - limit, 0).sum(axis=1)
    np.minimum(hist, limit, out=hist)
    increment = excess // hist.shape[1]
    upper = (limit - increment)[:, None]
    low = hist < upper
    excess -= low.sum(axis=1) * increment
    hist += low * increment[:, None]
    mid = (hist >= upper) & (hist < limit)
    excess += (hist * mid).sum(axis=1) - mid.sum(axis=1) * limit
    hist[mid] = limit
    rows = np.flatnonzero(excess > 0)
    if rows.size:  # the rest one bin in every `step`: the first pass for all rows at once
        part, left = hist[rows], excess[rows]
        before = left.copy()
        under = part < limit
        step = np.maximum(1, under.sum(axis=1) // left)
        hit = under & (np.arange(hist.shape[1])[None, :] % step[:, None] == 0)
        part += hit
        left -= hit.sum(axis=1)
        hist[rows] = part
        for row, rest, start in zip(rows, left, before):
            if rest > 0:  # rare: scikit-image's loop from its second pass on
                _spread(hist[row], int(rest), limit, first=1, before=int(start))
    return hist


def _spread(hist: np.ndarray, excess: int, limit: int, first: int = 0, before: int = 0) -> None:
    """scikit-image's redistribution loop on one histogram, from pass ``first`` of its
    first round (``before``: the excess when that round began)."""
    while excess > 0:
        for index in range(first, hist.size):
            under = hist < limit
            step = max(1, int(np.count_nonzero(under)) // excess)
            under = under[index::step]
            hist[index::step][under] += 1
            excess -= int(np.count_nonzero(under))
            if excess <= 0:
                break
        if before == excess:
            break
        first, before = 0, excess


def equalize(channel: np.ndarray, clip_limit: float = 0.01, nbins: int = 256) -> np.ndarray:
    """CLAHE of one ``uint8`` H×W channel: float32 in [0, 1], kernel 1/8 of each side."""
    a = np.asarray(channel)
    if a.dtype != np.uint8 or a.ndim != 2:
        raise ValueError(f"equalize takes a uint8 H×W channel, not {a.dtype} {a.shape}")
    h, w = a.shape
    kh, kw, nh, nw, pads, stride, base, weight_r, weight_c, region = _geometry(h, w, nbins)
    top, bottom, left, right = pads
    # scikit-image: img_as_uint, stretch min..max to 0..LEVELS-1, round, bin; as one lookup
    lo, hi = int(a.min()), int(a.max())
    levels = np.arange(256, dtype=np.float64) * 257
    fraction = np.clip((levels - lo * 257) / max((hi - lo) * 257, 1), 0, 1)
    stretched = np.round(fraction * (LEVELS - 1))
    binned = (stretched.astype(np.int64) // (1 + LEVELS // nbins)).astype(np.uint8)[a]
    padded = np.pad(binned, [(top, bottom), (left, right)], mode="reflect")
    inside = padded[top : top + nh * kh, left : left + nw * kw]
    hist = np.bincount((region + inside).ravel(), minlength=nh * nw * nbins)
    hist = hist.reshape(nh * nw, nbins)
    pixels = kh * kw
    if clip_limit > 0:
        clip_histograms(hist, int(max(clip_limit * pixels, 1)))
    lut = np.cumsum(hist, axis=-1) * ((LEVELS - 1) / pixels)
    np.clip(lut, None, LEVELS - 1, out=lut)
    maps = lut.astype(np.int64).reshape(nh, nw, nbins)
    maps = np.pad(maps, [(1, 1), (1, 1), (0, 0)], mode="edge").astype(np.float32).ravel()
    # bilinear interpolation between the four nearest regions' mappings
    index = base + binned
    upper = maps[index]
    upper += weight_c * (maps[index + nbins] - upper)
    index += stride
    lower = maps[index]
    lower += weight_c * (maps[index + nbins] - lower)
    lower -= upper
    lower *= weight_r
    upper += lower
    out = np.floor(upper + np.float32(1e-3))  # scikit-image casts its float32 sum to uint16
    lo_out, hi_out = float(out.min()), float(out.max())
    if hi_out <= lo_out:
        return np.zeros(out.shape, np.float32)
    out -= np.float32(lo_out)
    out *= np.float32(1.0 / (hi_out - lo_out))
    return out
