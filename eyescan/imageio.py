"""Image reading and writing shared by every task.

Reads JPEG/PNG/TIFF/GIF/BMP into ``uint8`` RGB arrays, applying EXIF
orientation and converting 16-bit, palette, greyscale, RGBA and CMYK images.
Writes PNGs atomically (temporary file + rename) so an interrupted run never
leaves a half-written output.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from eyescan.errors import ImageReadError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".gif", ".bmp", ".ppm"}
#: Refuse images with more pixels than this (decompression bombs): 20 000².
MAX_PIXELS = 400_000_000


def _open(path: Path):
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
            image.load()
    except FileNotFoundError:
        raise ImageReadError(f"{path}: file not found") from None
    except PermissionError:
        raise ImageReadError(f"{path}: permission denied") from None
    except IsADirectoryError:
        raise ImageReadError(f"{path}: is a directory") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageReadError(f"{path}: image too large ({exc})") from None
    except Exception as exc:
        size = path.stat().st_size if path.exists() else 0
        what = "empty file" if size == 0 else f"cannot decode image ({type(exc).__name__}: {exc})"
        raise ImageReadError(f"{path}: {what}") from None
    return image


def read_image(path: str | Path) -> np.ndarray:
    """Read an image as ``uint8`` RGB (H×W×3), EXIF-rotated upright."""
    from PIL import ImageOps

    path = Path(path)
    image = _open(path)
    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # broken EXIF must not lose the image
        pass
    return to_rgb_array(image, path)


def to_rgb_array(image, path: Path | str = "<image>") -> np.ndarray:
    """Convert a PIL image of any common mode to ``uint8`` RGB."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or array.max() > 255 else 255.0
        array = np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(array[..., None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        from PIL import Image

        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, rgba)
    array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    if array.ndim != 3 or array.shape[2] != 3 or min(array.shape[:2]) < 1:
        raise ImageReadError(f"{path}: unsupported image layout {array.shape}")
    return array


def read_mask(path: str | Path, threshold: int = 127) -> np.ndarray:
    """Read a mask image (any mode) as a boolean H×W array (``> threshold``)."""
    path = Path(path)
    image = _open(path)
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        return array > (threshold if array.max() <= 255 else threshold * 257)
    array = np.asarray(image.convert("L"))
    return array > threshold


def iter_images(inputs: list[Path]) -> Iterator[tuple[Path, Path]]:
    """Yield ``(image path, root)`` for files and (recursively) folders, sorted.

    ``root`` is the folder given on the command line (or the file's parent),
    used to name outputs by their path relative to it. Symlink loops and
    unreadable folders are skipped.
    """
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            for path in sorted(_walk(item)):
                yield path, item
        else:
            yield item, item.parent


def _walk(folder: Path) -> Iterator[Path]:
    seen: set[tuple[int, int]] = set()
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


def write_text(path: Path, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def save_png(path: Path, array: np.ndarray) -> Path:
    """Save a ``uint8``/``uint16``/bool array (H×W or H×W×3) as PNG, atomically."""
    from PIL import Image

    array = np.asarray(array)
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    if array.dtype == np.uint16:
        image = Image.fromarray(array, mode="I;16") if array.ndim == 2 else None
        if image is None:
            raise ValueError("16-bit PNG only for single-channel maps")
    else:
        image = Image.fromarray(np.ascontiguousarray(array.astype(np.uint8)))
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return path


def probability_to_uint8(prob: np.ndarray) -> np.ndarray:
    """Map probabilities in [0, 1] to ``uint8`` grey levels."""
    return np.clip(np.rint(np.asarray(prob, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)
