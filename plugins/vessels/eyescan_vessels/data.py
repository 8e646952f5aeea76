"""Vessel data: the public sets as distributed, a CSV manifest, preprocessing and samples.

Readers return every sample of a data set, each marked with its split
(DRIVE: ``training/`` → ``train``, ``test/`` → ``test``; CHASE_DB1: the
seed's 01–10 train, 11–14 test; STARE, HRF: none, so the core's hold-out
divides them; a manifest: its ``split`` column); ``api.read_split`` picks the
split a command needs. Readers of sets with two observers take ``annotator``
(``None``/1: the first, 2: the second).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eyescan.api import (
    DataError,
    ManifestReader,
    Sample,
    SplitData,
    find_reader,
    fundus,
    imageio,
    read_task_split,
)

#: DRIVE's folders and the split each holds.
DRIVE_FOLDERS = {"training": "train", "test": "test"}


class DriveReader:
    """DRIVE layout: ``{training,test}/{images,1st_manual,mask}``.

    Images ``21_training.tif``, manual annotations ``21_manual1.gif``, FOV masks
    ``21_training_mask.gif`` (``01_test…`` in ``test/``). Sample ids are the
    image names (``21_training``, ``01_test``).
    """

    description = "DRIVE folders: training|test/images, 1st_manual, mask"
    #: DRIVE's masks are 0/255 grey GIFs: foreground above 127, as always read.
    mask_threshold: int | None = 127

    def detect(self, path: Path) -> bool:
        path = Path(path)
        return any((path / folder / "images").is_dir() for folder in DRIVE_FOLDERS)

    def read(self, path: Path, columns: dict[str, str] | None = None) -> list[Sample]:
        samples = []
        for name, split in DRIVE_FOLDERS.items():
            folder = Path(path) / name
            if (folder / "images").is_dir():
                samples += self._folder(folder, split)
        if not samples:
            raise DataError(f"{path}: no DRIVE images (training|test/images/*.tif) found")
        return samples

    @staticmethod
    def _folder(folder: Path, split: str) -> list[Sample]:
        samples = []
        for image in sorted((folder / "images").glob("*.tif")):
            number = image.stem.split("_")[0]
            manual = folder / "1st_manual" / f"{number}_manual1.gif"
            mask = folder / "mask" / f"{image.stem}_mask.gif"
            if not manual.exists():
                raise DataError(f"{image}: manual annotation {manual} is missing")
            fov = mask if mask.exists() else None
            samples.append(Sample(image.stem, image, {"vessels": manual}, fov, split=split))
        return samples


def _observer(annotator: int | None, path: Path, names: tuple[str, str]) -> str:
    """The label kind of ``annotator`` (``None``/1: the first observer, 2: the second)."""
    if annotator in (None, 1):
        return names[0]
    if annotator == 2:
        return names[1]
    raise DataError(f"{path}: this data set has observers 1 and 2 (not --annotator {annotator})")


def _is_dir(path: Path, *names: str) -> Path | None:
    """The first of ``path/<name>`` that is a folder."""
    return next((path / n for n in names if (path / n).is_dir()), None)


def _files(path: Path, pattern: re.Pattern, depth: int = 1) -> list[Path]:
    """Files under ``path`` (itself and ``depth`` levels of subfolders) whose name matches."""
    found, level = [], [Path(path)]
    for step in range(depth + 1):
        below = []
        for folder in level:
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError:
                continue
            for entry in entries:
                if entry.is_dir():
                    below.append(Path(entry.path))
                elif pattern.match(entry.name):
                    found.append(Path(entry.path))
        level = below if step < depth else []
    return found


#: CHASE_DB1: the seed's split by child number (both eyes of a child on one side).
CHASE_TRAIN = range(1, 11)
CHASE_TEST = range(11, 15)
_CHASE_IMAGE = re.compile(r"^Image_(\d{2})([LR])\.jpg$", re.IGNORECASE)
_CHASE_LABEL = re.compile(r"^Image_\d{2}[LR]_(1st|2nd)HO\.png$", re.IGNORECASE)


class ChaseReader:
    """CHASE_DB1 as distributed: the official flat zip, or the ``images/``, ``1stHO/``,
    ``2ndHO/`` folders.

    Ids are the image stems (``Image_01L``); ``patient`` is the child
    (``chase-01``: both eyes); the seed's split: children 01–10 ``train``
    (20 images), 11–14 ``test`` (8). Labels are the first observer's
    (``_1stHO.png``), ``annotator=2`` the second's (``_2ndHO.png``); 1-bit PNGs.
    CHASE_DB1 ships no FOV masks: the FOV is estimated (``Sample.fov=None``);
    a third-party ``fov_mask_unofficial/`` folder is ignored unless
    ``unofficial_fov=True``.
    """

    description = (
        "CHASE_DB1: Image_NNX.jpg + _1stHO/_2ndHO.png, flat or images/, 1stHO/, 2ndHO/; "
        "children 01-10 train, 11-14 test; FOV estimated (no official masks)"
    )
    #: 1-bit label PNGs need no threshold; other forms by content.
    mask_threshold: int | None = None

    def __init__(self, unofficial_fov: bool = False):
        self.unofficial_fov = unofficial_fov

    def detect(self, path: Path) -> bool:
        path = Path(path)
        if not path.is_dir():
            return False
        images = _is_dir(path, "images")
        if images and _is_dir(path, "1stHO", "1st_label", "2ndHO", "2nd_label"):
            return bool(_files(images, _CHASE_IMAGE, depth=0))
        return bool(_files(path, _CHASE_LABEL, depth=0))

    def read(
        self, path: Path, columns: dict[str, str] | None = None, annotator: int | None = None
    ) -> list[Sample]:
        path = Path(path)
        kind = _observer(annotator, path, ("1st", "2nd"))
        images = _is_dir(path, "images")
        labels = _is_dir(path, f"{kind}HO", f"{kind}_label") if images else path
        if images is None:
            images = path
        if labels is None:
            raise DataError(f"{path}: no {kind}HO/ folder of CHASE_DB1 labels")
        fov_dir = path / "fov_mask_unofficial"
        samples = []
        for image in _files(images, _CHASE_IMAGE, depth=0):
            child = int(_CHASE_IMAGE.match(image.name).group(1))
            label = labels / f"{image.stem}_{kind}HO.png"
            if not label.is_file():
                raise DataError(f"{image}: label {label} is missing")
            fov = fov_dir / f"{image.stem}.png" if self.unofficial_fov else None
            split = "train" if child in CHASE_TRAIN else "test" if child in CHASE_TEST else None
            samples.append(
                Sample(
                    image.stem,
                    image,
                    {"vessels": label},
                    fov if fov is not None and fov.is_file() else None,
                    split=split,
                    patient=f"chase-{child:02d}",
                )
            )
        if not samples:
            raise DataError(f"{path}: no CHASE_DB1 images (Image_NNX.jpg) found")
        return samples


_STARE_IMAGE = re.compile(r"^(im\d{4})\.ppm(\.gz)?$", re.IGNORECASE)
_STARE_LABEL = re.compile(r"^(im\d{4})\.(ah|vk)\.ppm(\.gz)?$", re.IGNORECASE)
#: Largest file a ``.gz`` may unpack to (a 20-megapixel PPM is 60 MB).
MAX_UNPACKED = 256 << 20


def gunzipped(path: Path, cache: Path | None = None) -> Path:
    """``path`` itself, or for a ``.gz`` file its content unpacked into a cache folder.

    The cache (default ``<system temp>/eyescan-cache/gunzip``) holds
    ``<sha256 of the .gz, 16 hex>/<name without .gz>``: unpacked once, never
    written next to the data, and a changed file gets a new entry.
    """
    path = Path(path)
    if path.suffix.lower() != ".gz":
        return path
    digest = hashlib.sha256()
    partial: Path | None = None
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        root = Path(cache) if cache else Path(tempfile.gettempdir()) / "eyescan-cache" / "gunzip"
        target = root / digest.hexdigest()[:16] / path.name[: -len(".gz")]
        if target.is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}.part")
        size = 0
        with gzip.open(path, "rb") as source, open(partial, "wb") as out:
            for block in iter(lambda: source.read(1 << 20), b""):
                size += len(block)
                if size > MAX_UNPACKED:
                    raise DataError(f"{path}: unpacks to over {MAX_UNPACKED >> 20} MiB")
                out.write(block)
        os.replace(partial, target)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot unpack ({exc})") from None
    finally:
        if partial is not None and partial.exists():
            partial.unlink()
    return target


class StareReader:
    """STARE as distributed: ``im0001.ppm[.gz]`` images with ``im0001.ah.ppm[.gz]``
    (Hoover, the first observer) and ``im0001.vk.ppm[.gz]`` (Kouznetsova, the
    second) labels, in one folder or in ``stare-images/``, ``labels-ah/``,
    ``labels-vk/`` (any subfolders, two levels deep).

    Only images with the chosen observer's label are samples (id ``im0001``).
    STARE has no official split (``split=None``: the core's hold-out divides it)
    and no FOV masks (estimated). Gzipped files are unpacked once into a cache
    under the system temp folder (:func:`gunzipped`), never into the data folder.
    """

    description = (
        "STARE: imNNNN.ppm[.gz] + imNNNN.ah|vk.ppm[.gz] labels (flat or stare-images/, "
        "labels-ah/, labels-vk/); no split (hold-out); FOV estimated"
    )
    mask_threshold: int | None = None

    def __init__(self, cache: Path | None = None):
        self.cache = cache

    def detect(self, path: Path) -> bool:
        path = Path(path)
        return path.is_dir() and bool(_files(path, _STARE_LABEL, depth=1))

    def read(
        self, path: Path, columns: dict[str, str] | None = None, annotator: int | None = None
    ) -> list[Sample]:
        path = Path(path)
        kind = _observer(annotator, path, ("ah", "vk"))
        images: dict[str, Path] = {}
        for image in _files(path, _STARE_IMAGE, depth=2):
            stem = _STARE_IMAGE.match(image.name).group(1).lower()
            if stem not in images or images[stem].suffix.lower() == ".gz":
                images[stem] = image  # the plain file when both are there
        labels: dict[str, Path] = {}
        for label in _files(path, _STARE_LABEL, depth=2):
            match = _STARE_LABEL.match(label.name)
            stem = match.group(1).lower()
            if match.group(2).lower() == kind and (
                stem not in labels or labels[stem].suffix.lower() == ".gz"
            ):
                labels[stem] = label
        if not labels:
            raise DataError(f"{path}: no STARE labels imNNNN.{kind}.ppm[.gz] found")
        samples = []
        for stem in sorted(labels):
            if stem not in images:
                raise DataError(f"{path}: label {labels[stem].name} has no image {stem}.ppm[.gz]")
            samples.append(
                Sample(
                    stem,
                    gunzipped(images[stem], self.cache),
                    {"vessels": gunzipped(labels[stem], self.cache)},
                )
            )
        return samples


_HRF_IMAGE = re.compile(r"^(\d{2})_(h|g|dr)\.(jpe?g|tiff?|png)$", re.IGNORECASE)


class HrfReader:
    """HRF (High-Resolution Fundus) as distributed: ``images/01_h.jpg`` (``_h``
    healthy, ``_g`` glaucoma, ``_dr`` diabetic retinopathy), ``manual1/01_h.tif``,
    optional ``mask/01_h_mask.tif``.

    Ids are the stems (``01_h``). HRF's own FOV masks are used where present,
    else the FOV is estimated. No official split (``split=None``: the core's
    hold-out divides it). Masks are read by content: two levels → non-zero,
    grey levels (some manual masks) → above 127.
    """

    description = (
        "HRF: images/NN_h|g|dr.jpg, manual1/NN_x.tif, [mask/NN_x_mask.tif]; "
        "no split (hold-out); FOV from mask/ else estimated"
    )
    #: By content: 0/255 (or 0/1) masks → > 0; grey-level manual masks → > 127.
    mask_threshold: int | None = None

    def detect(self, path: Path) -> bool:
        path = Path(path)
        return (
            path.is_dir()
            and (path / "manual1").is_dir()
            and bool(_files(path / "images", _HRF_IMAGE, depth=0))
        )

    def read(self, path: Path, columns: dict[str, str] | None = None) -> list[Sample]:
        path = Path(path)
        manuals = {p.stem.lower(): p for p in (path / "manual1").glob("*.tif*")}
        masks = {p.stem.lower(): p for p in (path / "mask").glob("*_mask.tif*")}
        samples = []
        for image in _files(path / "images", _HRF_IMAGE, depth=0):
            manual = manuals.get(image.stem.lower())
            if manual is None:
                raise DataError(f"{image}: manual annotation manual1/{image.stem}.tif is missing")
            fov = masks.get(f"{image.stem.lower()}_mask")
            samples.append(Sample(image.stem, image, {"vessels": manual}, fov))
        if not samples:
            raise DataError(f"{path}: no HRF images (images/NN_h|g|dr.jpg) found")
        return samples


def manifest_reader() -> ManifestReader:
    """CSV with columns ``image``, ``mask`` and optional ``fov``/``split``/``patient``."""
    return ManifestReader({"vessels": "mask"})


def mask_threshold(reader: object) -> int | None:
    """The mask threshold a reader asks for (0–255 scale; ``None``: decide by content)."""
    return getattr(reader, "mask_threshold", None)


def read_data(registry, data: Path, split: str, options: dict) -> tuple[SplitData, int | None]:
    """``split`` of ``data`` by the core's rule (``--reader``, ``--columns``, ``--holdout``)
    and the mask threshold of the reader that read it."""
    chosen = read_task_split("vessels", data, options, split)
    _, reader = find_reader(registry, "vessels", data, chosen.reader)
    return chosen, mask_threshold(reader)


@dataclass
class LoadedSample:
    """A sample decoded into arrays: preprocessed image, vessel mask, FOV mask."""

    id: str
    image: np.ndarray  # float32 H×W×3 in [0, 1], CLAHE-enhanced
    vessels: np.ndarray  # bool H×W
    fov: np.ndarray  # bool H×W
    original: np.ndarray  # uint8 H×W×3


def enhance(image: np.ndarray) -> np.ndarray:
    """The vessels task's preprocessing: CLAHE per channel, float32 in [0, 1]."""
    return fundus.clahe(image, clip_limit=0.01)


def load_sample(
    sample: Sample, threshold: int | None = None, fov_diameter: float | None = None
) -> LoadedSample:
    """Decode a sample; the FOV is estimated when the data set ships none.

    ``threshold`` is the reader's mask threshold (:func:`mask_threshold`).
    ``fov_diameter`` (training at a model scale): photo and masks are resampled so
    that the FOV's diameter is that many pixels (``scale.to_diameter``).
    """
    return load_with_variants(sample, threshold, fov_diameter)[0]


def load_with_variants(
    sample: Sample,
    threshold: int | None = None,
    fov_diameter: float | None = None,
    variants: Callable[[np.ndarray], list[np.ndarray]] | None = None,
) -> list[LoadedSample]:
    """:func:`load_sample`, then degraded copies of the photo made at its own size by
    ``variants`` (``api.augment.PhotoVariants.make``; training): the photo first, each
    copy preprocessed like it and sharing its masks."""
    original = imageio.read_image(sample.image)
    vessels = imageio.read_mask(sample.masks["vessels"], threshold)
    fov = imageio.read_mask(sample.fov, threshold) if sample.fov else fundus.fov_mask(original)
    if vessels.shape != original.shape[:2] or fov.shape != original.shape[:2]:
        raise DataError(
            f"{sample.image}: mask size {vessels.shape} does not match the image "
            f"{original.shape[:2]}"
        )
    loaded = []
    for photo in [original, *(variants(original) if variants else [])]:
        masks = vessels, fov
        if fov_diameter:
            from eyescan_vessels.scale import to_diameter

            photo, *masks = to_diameter(photo, vessels, fov, fov_diameter)
        loaded.append(LoadedSample(sample.id, enhance(photo), *masks, photo))
    return loaded
