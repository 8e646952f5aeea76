"""One input photo as every task of a run sees it: decoded once, hashed, its FOV and quality.

Library code, torch-free. :class:`PhotoReader` holds the run's per-photo
options (``--fov`` masks, the quality gate) and turns a path into a
:class:`Photo`: the decoded RGB array, the SHA-256 of the file (the audit
trail of every record), the user's FOV mask when one was given, and the
quality assessment when a fundus task runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eyescan.data.duplicates import file_sha256
from eyescan.errors import DataError, UnsuitableImageError
from eyescan.imaging.imageio import IMAGE_EXTENSIONS, read_image, read_mask

#: Suffixes a FOV mask's name may add to its photo's stem (DRIVE: ``21_training_mask.gif``).
MASK_SUFFIXES = ("", "_mask", "-mask", "_fov", "-fov")


@dataclass
class Photo:
    """A decoded input photo and what the core knows about it."""

    image: Any  # uint8 H×W×3
    sha256: str
    provided: dict[str, Any] = field(default_factory=dict)  # core needs: "fov"
    quality: dict[str, Any] | None = None  # Quality.to_json(), when assessed

    @property
    def ungradable(self) -> bool:
        return self.quality is not None and not self.quality.get("gradable", True)


class FovMasks:
    """FOV masks given with ``--fov``: one file for every photo, or a folder matched by name.

    In a folder, the mask of ``photo.jpg`` is the image file whose stem is
    ``photo`` or ``photo`` plus one of :data:`MASK_SUFFIXES` (case-insensitive;
    searched recursively, nearest match first). A photo without a mask there,
    or whose mask has another size, fails with a one-line error.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._index: dict[str, Path] | None = None
        if self.path.is_dir():
            self._index = {}
            for file in sorted(self.path.rglob("*"), key=lambda p: (len(p.parts), str(p))):
                if file.suffix.lower() in IMAGE_EXTENSIONS and file.is_file():
                    self._index.setdefault(file.stem.lower(), file)
        elif not self.path.is_file():
            raise DataError(f"--fov {self.path}: no such file or folder")

    def find(self, photo: Path) -> Path:
        """The mask file of ``photo``."""
        if self._index is None:
            return self.path
        stem = Path(photo).stem.lower()
        for suffix in MASK_SUFFIXES:
            match = self._index.get(stem + suffix)
            if match is not None and match.resolve() != Path(photo).resolve():
                return match
        raise DataError(f"{photo}: no FOV mask for it in {self.path} (looked for {stem}[_mask].*)")

    def mask(self, photo: Path, shape: tuple[int, int]) -> Any:
        """The boolean FOV mask of ``photo`` (H×W must equal ``shape``)."""
        path = self.find(photo)
        mask = read_mask(path)
        if mask.shape != tuple(shape):
            raise DataError(
                f"{photo}: FOV mask {path} is {mask.shape[1]}x{mask.shape[0]}, "
                f"the photo {shape[1]}x{shape[0]}"
            )
        if not mask.any():
            raise DataError(f"{photo}: FOV mask {path} is empty")
        return mask


def check_fits(task: Any, image: Any, source: str, role: str = "") -> None:
    """Refuse a photo outside the task's declared size (``Task.min_side``, ``max_aspect``)
    with one line naming the file, the task, the photo's size and the limit; ``role``
    says why the task runs when another asked for it (a provider)."""
    height, width = image.shape[:2]
    name = f"task {task.name}{f' ({role})' if role else ''}"
    least = max(1, int(getattr(task, "min_side", 1) or 1))
    if min(height, width) < least:
        raise UnsuitableImageError(
            f"{source}: image too small/thin for {name} ({width}x{height} pixels; "
            f"minimum {least} px on each side)"
        )
    ratio = getattr(task, "max_aspect", None)
    if ratio and max(height, width) > ratio * min(height, width):
        raise UnsuitableImageError(
            f"{source}: image too thin for {name} ({width}x{height} pixels; "
            f"the longer side may be at most {ratio:g} times the shorter)"
        )


@dataclass
class PhotoReader:
    """Reads photos for a run: ``fov`` masks (``--fov``) and the quality gate (``assess``)."""

    fov: FovMasks | None = None
    assess: bool = False

    def read(self, path: Path) -> Photo:
        image = read_image(path)
        photo = Photo(image=image, sha256=file_sha256(path))
        if self.fov is not None:
            photo.provided["fov"] = self.fov.mask(path, image.shape[:2])
        if self.assess:
            from eyescan.imaging import quality

            photo.quality = quality.assess(image, photo.provided.get("fov")).to_json()
        return photo
