"""Red-lesion data: the IDRiD segmentation layout, a CSV manifest, and decoded samples.

IDRiD as distributed (``A. Segmentation``)::

    1. Original Images/a. Training Set/IDRiD_01.jpg            (b. Testing Set: 55–81)
    2. All Segmentation Groundtruths/a. Training Set/1. Microaneurysms/IDRiD_01_MA.tif
    2. All Segmentation Groundtruths/a. Training Set/2. Haemorrhages/IDRiD_01_HE.tif

:class:`IdridReader` returns the images of both sets, marked ``train`` ("a. Training
Set") and ``test`` ("b. Testing Set"), the official split. Masks are read by
``api.imageio.read_mask`` with the reader's ``mask_threshold`` (``None``: by content,
right for the official red-on-black or 0/255 TIFs; a reader of grey copies with JPEG
artefacts sets about 30). An image without a mask file for a lesion type has none of
that lesion (IDRiD ships 53 HE masks for 54 training images).

The partial copies of part A in ``../shared/data`` have their own readers
(:class:`Idrid512Reader`, :class:`IdridHaemorrhageReader`, :class:`IdridYoloReader`).
Every reader returns :class:`LesionRecord` samples: which lesions have pixel truth
(``annotated``) and, for box-labelled copies, the MA/HE boxes (``boxes``). Copies
split by the image's number: IDRiD_01–54 are the official training set
(``train``), 55–81 the official test set (``test``), anything else ``None``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eyescan.api import (
    DataError,
    ManifestReader,
    Sample,
    find_yolo_names,
    fundus,
    imageio,
    read_yolo_names,
    yolo_annotation,
)

LESIONS = ("ma", "he")
#: The official IDRiD sets and the split each one is.
_SPLITS = {"train": ("training",), "test": ("testing", "test")}
_LESION_FOLDERS = {"ma": ("microaneurysm",), "he": ("haemorrhage", "hemorrhage")}
_SUFFIX = {"ma": "MA", "he": "HE"}
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def _child(folder: Path, *keywords: str) -> Path | None:
    """The sub-folder whose name contains one of ``keywords`` (case-insensitive)."""
    if not folder.is_dir():
        return None
    for child in sorted(folder.iterdir()):
        if child.is_dir() and any(k in child.name.lower() for k in keywords):
            return child
    return None


Box = tuple[float, float, float, float]


@dataclass
class LesionRecord(Sample):
    """A red-lesion sample: which lesions have pixel truth, and boxes where there are some.

    ``annotated`` names the lesions whose masks are known: for those a missing
    mask file means none of that lesion (IDRiD's convention). Other lesions have
    no pixel truth at all. ``boxes`` maps ``ma``/``he`` to pixel corners
    ``x0, y0, x1, y1`` in the image (``None``: the data set has no boxes for it).
    """

    annotated: tuple[str, ...] = LESIONS
    boxes: dict[str, list[Box]] | None = None


def annotated_lesions(sample: Sample) -> tuple[str, ...]:
    """The lesions with pixel truth (a plain :class:`Sample`, e.g. a manifest row: both)."""
    return tuple(getattr(sample, "annotated", LESIONS))


_IDRID_NUMBER = re.compile(r"idrid_(\d+)$", re.IGNORECASE)
#: The official IDRiD part A sets by image number.
OFFICIAL_TRAIN, OFFICIAL_TEST = range(1, 55), range(55, 82)


def official_split(stem: str) -> str | None:
    """``train`` for IDRiD_01–54, ``test`` for 55–81 (the official sets), else ``None``."""
    match = _IDRID_NUMBER.match(stem)
    number = int(match.group(1)) if match else 0
    return "train" if number in OFFICIAL_TRAIN else "test" if number in OFFICIAL_TEST else None


def _images(folder: Path) -> list[Path]:
    """The IDRiD images ``IDRiD_NN.jpg`` of ``folder`` (not its ``IDRiD_NN_XX`` masks)."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".tif") and _IDRID_NUMBER.match(p.stem)
    )


def _mask_file(folder: Path, stem: str, lesion: str, extensions: tuple[str, ...]) -> Path | None:
    for ext in extensions:
        path = folder / f"{stem}_{_SUFFIX[lesion]}{ext}"
        if path.is_file():
            return path
    return None


class IdridReader:
    """IDRiD segmentation part (``A. Segmentation``), given it or the folder holding it.

    ``mask_threshold`` (0–255 scale, ``None`` = by content) is passed to
    ``read_mask`` for this data set's masks.
    """

    description = "IDRiD: A. Segmentation/1. Original Images, 2. All Segmentation Groundtruths"

    def __init__(self, mask_threshold: int | None = None):
        self.mask_threshold = mask_threshold

    def _root(self, path: Path) -> Path | None:
        path = Path(path)
        if _child(path, "original images"):
            return path
        inner = _child(path, "segmentation")
        return inner if inner is not None and _child(inner, "original images") else None

    def detect(self, path: Path) -> bool:
        return self._root(path) is not None

    def read(self, path: Path, columns: dict[str, str] | None = None) -> list[Sample]:
        """All images of the training and testing sets, marked ``train`` and ``test``."""
        root = self._root(path)
        if root is None:
            raise DataError(f"{path}: no IDRiD 'A. Segmentation/1. Original Images' folder")
        originals, truths = _child(root, "original images"), _child(root, "groundtruth")
        samples: list[Sample] = []
        for split, keywords in _SPLITS.items():
            images_dir = _child(originals, *keywords) if originals else None
            if images_dir is None:
                continue
            truth_dir = _child(truths, *keywords) if truths else None
            if truth_dir is None:
                raise DataError(f"{root}: no ground truth for {images_dir.name!r}")
            samples += self._read_set(images_dir, truth_dir, split)
        if not samples:
            raise DataError(f"{root}: no '… Training Set'/'… Testing Set' folders of images")
        return samples

    def _read_set(self, images_dir: Path, truth_dir: Path, split: str) -> list[Sample]:
        images = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
        if not images:
            raise DataError(f"{images_dir}: no IDRiD images (IDRiD_XX.jpg)")
        lesion_dirs = {name: _child(truth_dir, *k) for name, k in _LESION_FOLDERS.items()}
        missing = [name for name, folder in lesion_dirs.items() if folder is None]
        if missing:
            raise DataError(
                f"{truth_dir}: no lesion folder for {', '.join(missing)} "
                "('1. Microaneurysms', '2. Haemorrhages')"
            )
        samples = []
        for image in images:
            masks = {}
            for name, folder in lesion_dirs.items():
                mask = _mask_file(folder, image.stem, name, (".tif", ".tiff", ".TIF", ".png"))
                if mask is not None:
                    masks[name] = mask
            samples.append(LesionRecord(image.stem, image, masks, split=split))
        if not any(s.masks for s in samples):
            raise DataError(f"{truth_dir}: no masks named IDRiD_XX_MA.tif / IDRiD_XX_HE.tif")
        return samples


class Idrid512Reader:
    """The 512-px copy of IDRiD's 54 training images: ``IDRiD_NN.jpg`` with
    ``IDRiD_NN_MA.jpg``, ``_HE``, ``_EX``, ``_SE``, ``_OD`` masks in one folder.

    The masks are grey JPEGs (anti-aliased, JPEG artefacts), so they are read
    with ``mask_threshold`` 30 on the 0–255 scale. A missing MA or HE file is
    none of that lesion (IDRiD's convention: IDRiD_43 has no HE mask).
    """

    description = "IDRiD 512-px copy: IDRiD_NN.jpg, IDRiD_NN_MA.jpg, IDRiD_NN_HE.jpg in one folder"

    def __init__(self, mask_threshold: int | None = 30):
        self.mask_threshold = mask_threshold

    def detect(self, path: Path) -> bool:
        path = Path(path)
        return path.is_dir() and any(path.glob("IDRiD_*_MA.*")) and bool(_images(path))

    def read(self, path: Path, columns: dict[str, str] | None = None) -> list[Sample]:
        path = Path(path)
        images = _images(path) if path.is_dir() else []
        if not images:
            raise DataError(f"{path}: no IDRiD images (IDRiD_NN.jpg next to IDRiD_NN_MA.jpg)")
        samples = []
        for image in images:
            masks = {
                name: mask
                for name in LESIONS
                if (mask := _mask_file(path, image.stem, name, (".jpg", ".png", ".tif")))
            }
            samples.append(LesionRecord(image.stem, image, masks, split=official_split(image.stem)))
        if not any("ma" in s.masks for s in samples):
            raise DataError(f"{path}: no microaneurysm masks (IDRiD_NN_MA.jpg)")
        return samples


class IdridHaemorrhageReader:
    """Haemorrhage-only copy: ``images/IDRiD_NN.jpg`` and ``masks/IDRiD_NN_HE.png``.

    Only HE has pixel truth here; MA has none (not "no MA"). Every image must
    have its HE mask (the copy holds only images with one).
    """

    description = "IDRiD haemorrhage copy: images/IDRiD_NN.jpg, masks/IDRiD_NN_HE.png"
    mask_threshold = None

    def detect(self, path: Path) -> bool:
        masks = Path(path) / "masks"
        return (Path(path) / "images").is_dir() and masks.is_dir() and any(masks.glob("*_HE.*"))

    def read(self, path: Path, columns: dict[str, str] | None = None) -> list[Sample]:
        path = Path(path)
        if not self.detect(path):
            raise DataError(f"{path}: no images/ and masks/IDRiD_NN_HE.* folders")
        images = _images(path / "images")
        if not images:
            raise DataError(f"{path / 'images'}: no IDRiD images (IDRiD_NN.jpg)")
        samples = []
        for image in images:
            mask = _mask_file(path / "masks", image.stem, "he", (".png", ".tif", ".jpg"))
            if mask is None:
                raise DataError(f"{path / 'masks' / (image.stem + '_HE.png')}: mask not found")
            samples.append(
                LesionRecord(
                    image.stem,
                    image,
                    {"he": mask},
                    split=official_split(image.stem),
                    annotated=("he",),
                )
            )
        return samples


class IdridYoloReader:
    """Boxes-only copy in YOLO form: ``data.yaml`` (class names), ``images/<set>/``,
    ``labels/<set>/`` (``<set>`` e.g. ``train``, ``val``; or no sub-folders).

    No lesion has pixel truth; the ``MA`` and ``HE`` boxes (by class name) are
    the truth of image-level and lesion-level (FROC) evaluation. An image with
    an empty label file has no lesion; one without a label file is not
    annotated (``boxes`` ``None``). The split comes from the image's number.
    """

    description = "IDRiD boxes in YOLO form: data.yaml, images/<set>/, labels/<set>/ (MA, HE)"
    mask_threshold = None

    def detect(self, path: Path) -> bool:
        path = Path(path)
        return (
            path.is_dir()
            and (path / "images").is_dir()
            and (path / "labels").is_dir()
            and find_yolo_names(path) is not None
        )

    def read(self, path: Path, columns: dict[str, str] | None = None) -> list[Sample]:
        path = Path(path)
        if not self.detect(path):
            raise DataError(f"{path}: no YOLO layout (data.yaml, images/, labels/)")
        names_file = find_yolo_names(path)
        names = read_yolo_names(names_file)
        classes = {n: _SUFFIX[n] for n in LESIONS}
        absent = [c for c in classes.values() if c not in {x.upper() for x in names}]
        if absent:
            raise DataError(f"{names_file}: no class {' or '.join(absent)} in {names}")
        sets = sorted(p for p in (path / "images").iterdir() if p.is_dir()) or [path / "images"]
        samples: list[Sample] = []
        seen: dict[str, Path] = {}
        for folder in sets:
            labels = path / "labels" / folder.relative_to(path / "images")
            for image in _images(folder):
                if image.stem in seen:
                    raise DataError(f"{image}: the same name as {seen[image.stem]}")
                seen[image.stem] = image
                found = yolo_annotation(image, labels / f"{image.stem}.txt", names)
                boxes = None
                if found is not None:
                    boxes = {
                        n: [b for b, lab in zip(found.boxes, found.labels) if lab.upper() == c]
                        for n, c in classes.items()
                    }
                samples.append(
                    LesionRecord(
                        image.stem,
                        image,
                        split=official_split(image.stem),
                        annotated=(),
                        boxes=boxes,
                    )
                )
        if not samples:
            raise DataError(f"{path / 'images'}: no IDRiD images (IDRiD_NN.jpg)")
        return samples


class LesionManifestReader(ManifestReader):
    """CSV with columns ``image``, ``ma``, ``he`` (empty cell: no such lesion), ``[split]``,
    ``[patient]``; ``mask_threshold`` as for :class:`IdridReader`."""

    description = "CSV manifest with columns image, ma, he, [split], [patient]"

    def __init__(self, mask_threshold: int | None = None):
        super().__init__({"ma": "ma", "he": "he"})
        self.mask_threshold = mask_threshold


def manifest_reader(mask_threshold: int | None = None) -> LesionManifestReader:
    """The ``manifest`` reader (see :class:`LesionManifestReader`)."""
    return LesionManifestReader(mask_threshold)


def reader_mask_threshold(registry: object, name: str) -> int | None:
    """The ``mask_threshold`` of the registered redlesion reader ``name`` (None if unset)."""
    return getattr(registry.reader("redlesion", name).reader, "mask_threshold", None)


def normalise(image: np.ndarray) -> np.ndarray:
    """uint8 RGB → float32 with ImageNet's mean and std (VGG16's input convention)."""
    return (image.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD


@dataclass
class LesionSample:
    """A decoded sample at the model's input scale."""

    id: str
    image: np.ndarray  # uint8 H×W×3
    ma: np.ndarray  # bool H×W
    he: np.ndarray  # bool H×W
    scale: float  # model-input width / width of the part of the original it shows


def input_size(height: int, width: int, input_width: int | None) -> tuple[int, int]:
    """(H, W) at the model's input width (aspect kept); the original size if None."""
    if not input_width or input_width == width:
        return height, width
    return max(1, round(height * input_width / width)), int(input_width)


@dataclass(frozen=True)
class View:
    """What the network sees of a photograph: the ``box`` (top, left, bottom, right)
    cropped from it, resized to ``size`` (H, W)."""

    box: tuple[int, int, int, int]
    size: tuple[int, int]

    def crop(self, array: np.ndarray) -> np.ndarray:
        top, left, bottom, right = self.box
        return array[top:bottom, left:right]

    def paste(self, maps: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """C×h×w maps of the resized crop, back in a C×H×W array of the photograph's
        ``shape`` (zeros outside the box)."""
        top, left, bottom, right = self.box
        crop = (bottom - top, right - left)
        if tuple(maps.shape[-2:]) != crop:
            maps = np.clip(fundus.resize(maps.transpose(1, 2, 0), crop), 0, 1)
            maps = maps.reshape(*crop, -1).transpose(2, 0, 1)
        out = np.zeros((maps.shape[0], *shape), np.float32)
        out[:, top:bottom, left:right] = maps
        return out


def model_view(
    image: np.ndarray,
    input_width: int | None = None,
    fov_width: int | None = None,
    fov: np.ndarray | None = None,
) -> View:
    """The model's view of ``image``: with ``fov_width``, the field of view's bounding
    box (``fundus.fov_box``; the whole image when none is found) scaled to that width,
    so lesions have the same size in pixels whatever the camera's resolution and
    framing; else the whole image at ``input_width`` (aspect kept; None: as it is)."""
    h, w = image.shape[:2]
    if fov_width:
        top, left, bottom, right = fundus.fov_box(image, fov) or (0, 0, h, w)
        box_h, box_w = bottom - top, right - left
        size = (max(1, round(box_h * fov_width / box_w)), int(fov_width))
        return View((top, left, bottom, right), size)
    return View((0, 0, h, w), input_size(h, w, input_width))


def card_view(card: dict | None) -> dict[str, int | None]:
    """``input_width`` and ``fov_width`` of a model card's ``input`` (None: unset)."""
    given = (card or {}).get("input") or {}
    return {"input_width": given.get("width"), "fov_width": given.get("fov_width")}


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a bool mask for *training* at the model's input scale: nearest when
    enlarging (exact), area-averaged and at least half covered when shrinking.
    Shrinking this way can erase lesions of a few pixels, so evaluation never uses
    it: it scores at the truth's own resolution (:func:`read_truth`, the maps
    up-sampled instead)."""
    if mask.shape == tuple(size):
        return mask
    if size[0] >= mask.shape[0] and size[1] >= mask.shape[1]:
        return fundus.resize(mask, size)  # bool: nearest
    return fundus.resize(mask.astype(np.float32), size) >= 0.5


def read_truth(
    sample: Sample, shape: tuple[int, int], mask_threshold: int | None = None
) -> dict[str, np.ndarray | None]:
    """Each lesion's mask at its own resolution: read from its file, empty where an
    annotated lesion has no file, ``None`` where the data set has no pixel truth for it.

    Masks are read with ``mask_threshold`` (the reader's; ``None`` = by content)
    and must be of the image's ``shape`` (a one-line :class:`DataError` otherwise).
    """
    annotated = annotated_lesions(sample)
    masks: dict[str, np.ndarray | None] = {}
    for name in LESIONS:
        path = sample.masks.get(name)
        if path is None and name not in annotated:
            masks[name] = None
            continue
        mask = imageio.read_mask(path, mask_threshold) if path else np.zeros(shape, bool)
        if mask.shape != tuple(shape):
            raise DataError(f"{path}: mask size {mask.shape} does not match the image {shape}")
        masks[name] = mask
    return masks


def load_sample(
    sample: Sample,
    input_width: int | None = None,
    mask_threshold: int | None = None,
    fov_width: int | None = None,
) -> LesionSample:
    """Decode image and masks for training in the model's view (:func:`model_view`:
    ``fov_width``, else ``input_width``, e.g. the seed's 1072).

    Masks are read with ``mask_threshold`` (the reader's; ``None`` = by content).
    A sample without pixel truth for a lesion (a boxes-only or HE-only copy) is
    refused: it cannot be trained on.
    """
    image = imageio.read_image(sample.image)
    h, w = image.shape[:2]
    truth = read_truth(sample, (h, w), mask_threshold)
    missing = [name.upper() for name, mask in truth.items() if mask is None]
    if missing:
        raise DataError(
            f"{sample.image}: no {' or '.join(missing)} mask in this data set "
            "(a boxes-only or one-lesion copy): it can be evaluated, not trained on"
        )
    masks = {name: mask for name, mask in truth.items() if mask is not None}
    view = model_view(image, input_width, fov_width)
    image, masks = view.crop(image), {n: view.crop(m) for n, m in masks.items()}
    scale = view.size[1] / image.shape[1]
    if view.size != image.shape[:2]:
        image = fundus.resize(image, view.size)
        masks = {name: resize_mask(m, view.size) for name, m in masks.items()}
    return LesionSample(sample.id, image, masks["ma"], masks["he"], scale)


IDRID_SEGMENTATION = "A. Segmentation"
_IDRID_SPLITS = {"train": "a. Training Set", "test": "b. Testing Set"}
_IDRID_LESIONS = {"ma": "1. Microaneurysms", "he": "2. Haemorrhages"}


def write_synthetic_idrid(
    root: Path,
    n_train: int = 4,
    n_test: int = 2,
    size: int | tuple[int, int] = (160, 240),
    seed: int = 0,
) -> Path:
    """Write synthetic fundus images in IDRiD's segmentation layout; returns ``root``.

    Images come from :func:`eyescan.api.synthetic.make_fundus` with ``lesions=True``
    (grades 1–4, exact MA and haemorrhage masks), saved as ``IDRiD_XX.jpg``
    (quality 95); masks as IDRiD's red-on-black RGB TIFFs, written only when the
    image has that lesion (as IDRiD omits them). ``size`` is a side or (H, W).
    """
    from PIL import Image

    from eyescan.api import synthetic

    base = Path(root) / IDRID_SEGMENTATION
    seeds = np.random.SeedSequence(seed).generate_state(n_train + n_test)
    for index, child_seed in enumerate(seeds):
        split = "train" if index < n_train else "test"
        images = base / "1. Original Images" / _IDRID_SPLITS[split]
        truths = base / "2. All Segmentation Groundtruths" / _IDRID_SPLITS[split]
        images.mkdir(parents=True, exist_ok=True)
        fundus_ = synthetic.make_fundus(size, seed=int(child_seed), lesions=True)
        stem = f"IDRiD_{index + 1:02d}"
        Image.fromarray(fundus_.image).save(images / f"{stem}.jpg", quality=95)
        for name, mask in (("ma", fundus_.microaneurysms), ("he", fundus_.haemorrhages)):
            folder = truths / _IDRID_LESIONS[name]
            folder.mkdir(parents=True, exist_ok=True)
            if mask.any():
                red = np.zeros((*mask.shape, 3), np.uint8)
                red[mask, 0] = 255
                Image.fromarray(red).save(folder / f"{stem}_{_SUFFIX[name]}.tif")
    return Path(root)
