"""Image reading and writing shared by every task.

Reads JPEG/PNG/TIFF/GIF/BMP into ``uint8`` RGB arrays, applying EXIF
orientation and converting 16-bit, palette, greyscale, RGBA and CMYK images.
Writes PNGs atomically (temporary file + rename) so an interrupted run never
leaves a half-written output.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from eyescan.errors import EyescanError, ImageReadError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".gif", ".bmp", ".ppm"}
#: Peak memory per pixel of one photo through the hungriest run, rounded up: measured
#: 45.0 B/px for all five tasks in one run, 36.6 strabismus, 35.4 redlesion, 29.8 rop
#: (with its vessel map), 14.6 drgrade, 12.2 vessels (scripts/measure_memory.py,
#: docs/reliability.md "Memory").
PHOTO_BYTES_PER_PIXEL = 48
#: Photos a run holds at once, counted at the worst task's peak (decoded ahead, being
#: preprocessed, being written; default --workers 2 and --batch-size 1): measured 1.6 to 2.8.
PHOTOS_IN_FLIGHT = 4
#: Memory the photos of one run may take: 16 GiB of a 24 GB machine (the rest for the
#: interpreter and models, about 1 GiB, the system and other programs).
MEMORY_BUDGET = 16 * 2**30
#: Default pixel limit: images with more pixels are refused from their header, before
#: any pixel is decoded (decompression bombs, and photos a 24 GB machine could not
#: process). 16 GiB / (4 × 48 B/px) = 89.5 Mpx, rounded down to 80 Mpx (8 944² pixels).
MAX_PIXELS = MEMORY_BUDGET // (PHOTOS_IN_FLIGHT * PHOTO_BYTES_PER_PIXEL) // 10**7 * 10**7
#: Environment variable that sets another pixel limit (a positive integer).
MAX_PIXELS_ENV = "EYESCAN_MAX_PIXELS"


def max_pixels() -> int:
    """The pixel limit in force: ``EYESCAN_MAX_PIXELS`` when set, else :data:`MAX_PIXELS`."""
    text = os.environ.get(MAX_PIXELS_ENV, "").strip().replace("_", "")
    if not text:
        return MAX_PIXELS
    try:
        value = int(float(text))
    except ValueError:
        value = 0
    if value < 1:
        raise EyescanError(f"{MAX_PIXELS_ENV}={text!r}: give a positive number of pixels")
    return value


def _check_file(path: Path) -> None:
    """Refuse what is not a readable, non-empty regular file (FIFOs would block)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ImageReadError(f"{path}: file not found") from None
    except PermissionError:
        raise ImageReadError(f"{path}: permission denied") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ImageReadError(f"{path}: symbolic link loop") from None
        raise ImageReadError(f"{path}: cannot access ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageReadError(f"{path}: is a directory")
    if not stat.S_ISREG(st.st_mode):
        raise ImageReadError(f"{path}: not a regular file")
    if st.st_size == 0:
        raise ImageReadError(f"{path}: empty file")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _configure_pil(limit: int) -> None:
    """Use our pixel limit and silence PIL's warnings about bad files.

    Both are redundant here: the pixel limit is checked on the header, and a
    corrupt file either decodes or becomes one :class:`ImageReadError` line.
    """
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = limit
    ours = r"PIL\."
    if not any(
        f[0] == "ignore" and getattr(f[3], "pattern", None) == ours for f in warnings.filters
    ):
        warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=ours)


def open_image(path: str | Path):
    """Open an image lazily (a PIL image; no pixel decoded yet) after the checks that
    need no pixels: a readable, non-empty regular file (never a FIFO: opening one blocks)
    whose header declares at most :func:`max_pixels` pixels. Raises :class:`ImageReadError`.
    """
    from PIL import Image

    path = Path(path)
    limit = max_pixels()
    _configure_pil(limit)
    _check_file(path)
    try:
        image = Image.open(path)
    except Image.DecompressionBombError:  # PIL's own check: over twice the limit
        raise ImageReadError(
            f"{path}: image too large (over {2 * limit:,} pixels; possible decompression bomb)"
        ) from None
    except Exception as exc:
        raise _decode_error(path, exc) from None
    width, height = image.size
    if width * height > limit:  # checked on the header, before decoding pixels
        image.close()
        raise ImageReadError(
            f"{path}: image too large ({width}x{height} pixels, limit {limit:,}; "
            f"possible decompression bomb; {MAX_PIXELS_ENV} sets the limit)"
        )
    return image


def _open(path: Path):
    image = open_image(path)
    try:
        image.load()
    except Exception as exc:
        image.close()
        raise _decode_error(path, exc) from None
    return image


def _decode_error(path: Path, exc: Exception) -> ImageReadError:
    """The one-line error for an image that cannot be opened or decoded."""
    if isinstance(exc, PermissionError):
        return ImageReadError(f"{path}: permission denied")
    return ImageReadError(f"{path}: cannot decode image ({_first_line(exc)})")


def read_image(path: str | Path) -> np.ndarray:
    """Read an image as ``uint8`` RGB (H×W×3), EXIF-rotated upright."""
    from PIL import ImageOps

    path = Path(path)
    image = _open(path)
    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # broken EXIF must not lose the image
        pass
    try:
        return to_rgb_array(image, path)
    except ImageReadError:
        raise
    except Exception as exc:  # exotic modes (LAB, HSV, …) PIL cannot convert
        raise ImageReadError(
            f"{path}: unsupported image mode {image.mode} ({_first_line(exc)})"
        ) from None


def image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` of an image as :func:`read_image` returns it (EXIF-rotated),
    from its header only (no pixels decoded)."""
    from PIL import Image

    path = Path(path)
    _configure_pil(max_pixels())
    _check_file(path)
    try:
        with Image.open(path) as image:
            width, height = image.size
            try:
                orientation = image.getexif().get(0x0112, 1)
            except Exception:  # broken EXIF: read_image ignores it too
                orientation = 1
    except Exception as exc:
        raise ImageReadError(f"{path}: cannot read image header ({_first_line(exc)})") from None
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def to_rgb_array(image, path: Path | str = "<image>") -> np.ndarray:
    """Convert a PIL image of any common mode to ``uint8`` RGB."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.nan_to_num(np.asarray(image, dtype=np.float64), posinf=0.0, neginf=0.0)
        top = 65535.0 if mode.startswith("I;16") or array.max() > 255 else 255.0
        array = np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(array[..., None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        from PIL import Image

        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, rgba)
    # an RGB image is read as it is: convert("RGB") would copy it first (4 bytes a pixel)
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    array = np.asarray(rgb, dtype=np.uint8)
    if array.ndim != 3 or array.shape[2] != 3 or min(array.shape[:2]) < 1:
        raise ImageReadError(f"{path}: unsupported image layout {array.shape}")
    return array


def read_mask(path: str | Path, threshold: int | None = None) -> np.ndarray:
    """Read a mask image of any common form as a boolean H×W array.

    Handles 0/1 and 0/255 grey masks, 1-bit images, palette images (any
    non-zero index is foreground, whatever its colour), 16-bit and float
    masks, RGB(A) masks (any channel) and grey levels with anti-aliasing or
    JPEG artefacts. ``threshold`` is on the 0–255 scale (16-bit values are
    scaled); ``None`` picks by content: ``> 0`` for masks whose values are
    only 0 and one other level (0/1, 0/255, 0/128 …), else ``> 127``.
    Readers set it per data set where the masks need it (the 512-px IDRiD
    copies: about 30).
    """
    path = Path(path)
    image = _open(path)
    mode = image.mode
    if mode == "1":  # NumPy's view of a 1-bit image stores True as byte 255, not 1: such
        # non-canonical booleans break == and label encoders (sklearn's AUC on mixed masks)
        return np.asarray(image.convert("L")) > 0
    if mode == "P":  # palette: the index is the class, the colours are only a picture
        return np.asarray(image) > 0
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.nan_to_num(np.asarray(image, dtype=np.float64))
        if array.max() > 255:
            array = array / 257.0
    elif mode in ("RGB", "RGBA", "CMYK", "YCbCr", "LA", "PA"):
        rgb = np.asarray(image.convert("RGB"))
        array = rgb.max(axis=2)
    else:
        array = np.asarray(image.convert("L"))
    if threshold is None:
        levels = np.unique(array) if array.size <= 1 << 26 else np.unique(array[::7, ::7])
        threshold = 0 if len(levels) <= 2 else 127
    return array > threshold


def iter_images(
    inputs: list[Path],
    exclude: Path | None = None,
    prune: Callable[[Path], bool] | None = None,
) -> Iterator[tuple[Path, Path]]:
    """Yield ``(image path, root)`` for files and (recursively) folders, sorted.

    ``root`` is the folder given on the command line (or the file's parent),
    used to name outputs by their path relative to it. Symlink loops and
    unreadable folders are skipped, and so is the folder ``exclude`` (the
    output folder, so a rerun never takes its own outputs for inputs) and any
    subfolder for which ``prune(folder)`` is true.
    """
    skip = folder_key(exclude) if exclude is not None else None
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            for path in sorted(_walk(item, skip, prune)):
                yield path, item
        else:
            yield item, item.parent


def folder_key(folder: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(folder)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _walk(
    folder: Path,
    skip: tuple[int, int] | None = None,
    prune: Callable[[Path], bool] | None = None,
) -> Iterator[Path]:
    seen: set[tuple[int, int]] = set()
    if skip is not None and skip != folder_key(folder):
        seen.add(skip)
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True, onerror=None):
        try:
            st = os.stat(dirpath)
        except OSError:
            dirnames[:] = []
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen:  # symlink loop
            dirnames[:] = []
            continue
        seen.add(key)
        dirnames.sort()
        if prune is not None:
            dirnames[:] = [d for d in dirnames if not prune(Path(dirpath) / d)]
        for name in filenames:
            if Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                yield Path(dirpath) / name


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; rename it to ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


#: The name :func:`atomic_path` gives a temporary file: ``.NAME.XXXXXXXX.SUFFIX`` (mkstemp).
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}(?P<suffix>\.[^.]+)?$")


def remove_temporaries(folder: Path) -> int:
    """Delete the temporary files a killed writer left in ``folder`` (recursively); returns
    how many. Only safe while no one else writes there (a run holding the --out lock)."""
    removed = 0
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            match = _TEMPORARY.match(name)
            if match and (match["suffix"] or "") == Path(match["name"]).suffix:
                try:
                    (Path(dirpath) / name).unlink()
                    removed += 1
                except OSError:
                    pass
    return removed


def write_text(path: Path, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


#: zlib level of written PNGs (level 1: writing is on predict's path, files stay small).
PNG_COMPRESS_LEVEL = 1


def encode_png(array: np.ndarray) -> bytes:
    """PNG bytes of a ``uint8``/``uint16``/bool array (H×W, H×W×3 RGB or H×W×4 RGBA).

    OpenCV's encoder (libpng) at zlib level 1 with the Sub filter and run-length
    strategy: about twice as fast as Pillow's ``compress_level=1`` and smaller files
    (DRIVE-size overlay 17 ms / 430 kB against 35 ms / 462 kB, probability map
    4 ms / 145 kB against 14 ms / 157 kB; docs/performance.md). The pixels are the
    same, only the compression differs.
    """
    import cv2

    array = np.asarray(array)
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    if array.dtype == np.uint16:
        if array.ndim != 2:
            raise ValueError("16-bit PNG only for single-channel maps")
    else:
        array = array.astype(np.uint8, copy=False)
    if array.ndim == 3:
        if array.shape[2] not in (3, 4):
            raise ValueError(f"a PNG is H×W, H×W×3 or H×W×4, not {array.shape}")
        array = array[..., [2, 1, 0, 3][: array.shape[2]]]  # OpenCV writes BGR(A)
    elif array.ndim != 2:
        raise ValueError(f"a PNG is H×W, H×W×3 or H×W×4, not {array.shape}")
    params = [
        cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESS_LEVEL,
        cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE,
        cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB,
    ]  # fmt: skip
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(array), params)
    if not ok:
        raise ValueError(f"cannot encode a {array.dtype} {array.shape} array as PNG")
    return encoded.tobytes()


def save_png(path: Path, array: np.ndarray) -> Path:
    """Save a ``uint8``/``uint16``/bool array (H×W or H×W×3) as PNG, atomically."""
    data = encode_png(array)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def probability_to_uint8(prob: np.ndarray) -> np.ndarray:
    """Map probabilities in [0, 1] to ``uint8`` grey levels.

    Done in bands of rows, so the float temporaries stay a band's (8 bytes a pixel
    less at the peak on a large photo); the same numbers.
    """
    prob = np.asarray(prob)
    if prob.ndim < 2:
        return np.clip(np.rint(prob.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    out = np.empty(prob.shape, np.uint8)
    rows = max(1, (1 << 22) // max(1, prob[0].size))
    for top in range(0, prob.shape[0], rows):
        levels = np.rint(np.asarray(prob[top : top + rows], dtype=np.float32) * 255.0)
        out[top : top + rows] = np.clip(levels, 0, 255)
    return out


def save_probability(path: Path, prob: np.ndarray, bits: int = 8) -> Path:
    """Save a probability map (float H×W in [0, 1]) as a grey PNG, atomically.

    ``bits=8`` writes ``uint8`` levels ``round(p * 255)`` (mode ``L``, the same bytes
    as ``save_png(path, probability_to_uint8(prob))``); ``bits=16`` writes ``uint16``
    levels ``round(p * 65535)`` (mode ``I;16``: divide by 65535 to read it back).
    Values outside [0, 1] are clipped; NaN and ±inf are written as 0.
    """
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, not {bits!r}")
    prob = np.asarray(prob, dtype=np.float32)
    if prob.ndim != 2:
        raise ValueError(f"a probability map is H×W, not {prob.shape}")
    if not np.isfinite(prob).all():
        prob = np.where(np.isfinite(prob), prob, 0.0).astype(np.float32)
    if bits == 8:
        return save_png(path, probability_to_uint8(prob))
    levels = np.clip(np.rint(prob.astype(np.float64) * 65535.0), 0, 65535).astype(np.uint16)
    return save_png(path, levels)
