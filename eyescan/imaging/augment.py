"""Training augmentation of every task, configured by one :class:`AugmentConfig`.

A recipe's ``"augment"`` object sets its fields (:meth:`AugmentConfig.from_dict`
refuses unknown keys). :func:`augment_patch` cuts and transforms an image and
its masks together (segmentation); :func:`augment_image` transforms a whole
image (classification). Geometric transforms (rotation, flips, transpose,
affine, cropping, zoom) move the image and every mask together; photometric ones
touch the image only, in a camera's order: optical blur and resolution loss
(down- then up-sampling), brightness, contrast, saturation, gamma, sensor noise,
JPEG compression. Every augmentation is off at 0 (or 1.0, or (1.0, 1.0)) and then
draws no random number, so recipes written before it was added train as before.
Works on torch tensors: image C×H×W float in [0, 1], masks K×H×W float (0/1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import torch
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF


@dataclass
class AugmentConfig:
    rotation: float = 180.0  # maximum absolute angle, degrees
    hflip: bool = True
    vflip: bool = True
    transpose: bool = True  # diagonal flip
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    noise_std: float = 0.02
    translate: float = 0.0  # affine shift, fraction of the side (augment_image)
    scale: tuple[float, float] = (1.0, 1.0)  # zoom range (affine in augment_image; patch)
    shear: float = 0.0  # affine shear, degrees (augment_image)
    gamma: float = 0.0  # maximum |ln γ|: γ log-uniform in [e^-g, e^g]
    blur: float = 0.0  # maximum Gaussian blur σ in pixels (σ uniform in [0, blur])
    blur_p: float = 1.0  # probability of the blur (when blur > 0)
    resample: tuple[float, float] = (1.0, 1.0)  # down-then-up sampling factor range
    resample_p: float = 1.0  # probability of the resampling (when a range is set)
    jpeg: float = 0.0  # probability of a JPEG round trip
    jpeg_quality: tuple[int, int] = (30, 95)  # its quality range

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> AugmentConfig:
        """From a recipe's ``augment`` object; unknown keys are a clear error."""
        return _from_recipe(cls, "augment", values)


def _from_recipe(cls: type, key: str, values: dict[str, Any] | None) -> Any:
    """Dataclass ``cls`` from the recipe object ``key``: unknown keys are a clear error,
    lists become the tuples the ranges are declared as."""
    values = dict(values or {})
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(
            f"recipe '{key}': unknown key(s) {', '.join(unknown)} "
            f"(known: {', '.join(sorted(known))})"
        )
    for name, value in values.items():
        if str(known[name].type).startswith("tuple") and isinstance(value, list):
            values[name] = tuple(value)
    return cls(**values)


def random_crop_box(
    size: tuple[int, int], crop: int, generator: torch.Generator, centre_mask: torch.Tensor | None
) -> tuple[int, int]:
    """Top-left of a ``crop``² window; its centre inside ``centre_mask`` when given."""
    h, w = size
    for _ in range(20):
        top = int(torch.randint(0, max(1, h - crop + 1), (1,), generator=generator))
        left = int(torch.randint(0, max(1, w - crop + 1), (1,), generator=generator))
        if centre_mask is None or bool(
            centre_mask[min(h - 1, top + crop // 2), min(w - 1, left + crop // 2)]
        ):
            break
    return top, left


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def augment_patch(
    image: torch.Tensor,
    masks: torch.Tensor,
    crop: int,
    config: AugmentConfig,
    generator: torch.Generator,
    centre_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut a randomly rotated ``crop``² patch and apply the configured augmentations.

    A window large enough for any rotation is cut first, rotated, then the
    centre is kept, so rotation costs little however large the image. With a
    ``scale`` range the window is ``crop / zoom`` wide and resized to ``crop``
    (image bilinear with antialiasing, masks nearest, so they stay binary).
    """
    window = crop
    if config.scale != (1.0, 1.0):
        window = max(4, round(crop / _uniform(generator, *config.scale)))
    big = window if config.rotation == 0 else int(math.ceil(window * math.sqrt(2))) + 2
    h, w = image.shape[-2:]
    pad_h, pad_w = max(0, big - h), max(0, big - w)
    if pad_h or pad_w:
        image = torch.nn.functional.pad(image, (0, pad_w, 0, pad_h))
        masks = torch.nn.functional.pad(masks, (0, pad_w, 0, pad_h))
        if centre_mask is not None:
            centre_mask = torch.nn.functional.pad(centre_mask, (0, pad_w, 0, pad_h))
    top, left = random_crop_box(image.shape[-2:], big, generator, centre_mask)
    img = image[:, top : top + big, left : left + big].contiguous()
    msk = masks[:, top : top + big, left : left + big].contiguous()
    if config.rotation:
        angle = _uniform(generator, -config.rotation, config.rotation)
        img = TF.rotate(img, angle, interpolation=InterpolationMode.BILINEAR)
        msk = TF.rotate(msk, angle, interpolation=InterpolationMode.NEAREST)
        off = (big - window) // 2
        img = img[:, off : off + window, off : off + window]
        msk = msk[:, off : off + window, off : off + window]
    if window != crop:
        img = TF.resize(img, [crop, crop], InterpolationMode.BILINEAR, antialias=True)
        msk = TF.resize(msk, [crop, crop], InterpolationMode.NEAREST)
    flips = torch.rand(3, generator=generator)
    if config.hflip and flips[0] < 0.5:
        img, msk = img.flip(-1), msk.flip(-1)
    if config.vflip and flips[1] < 0.5:
        img, msk = img.flip(-2), msk.flip(-2)
    if config.transpose and flips[2] < 0.5:
        img, msk = img.transpose(-1, -2), msk.transpose(-1, -2)
    img = photometric(img, config, generator)
    return img.contiguous(), msk.contiguous()


def photometric(
    image: torch.Tensor, config: AugmentConfig, generator: torch.Generator
) -> torch.Tensor:
    """The configured blur, resampling, colour, gamma, noise and JPEG changes of a [0, 1] image."""
    image = image.clamp(0.0, 1.0)
    if config.blur and _happens(generator, config.blur_p):
        sigma = _uniform(generator, 0.0, config.blur)
        if sigma >= 0.3:  # below that a 3-tap kernel is the identity to 8 bits
            size = 2 * math.ceil(3 * sigma) + 1
            image = TF.gaussian_blur(image, [size, size], [sigma, sigma])
    if config.resample != (1.0, 1.0) and _happens(generator, config.resample_p):
        image = _resample(image, _uniform(generator, *config.resample))
    if config.brightness:
        image = TF.adjust_brightness(
            image, _uniform(generator, 1 - config.brightness, 1 + config.brightness)
        )
    if config.contrast:
        image = TF.adjust_contrast(
            image, _uniform(generator, 1 - config.contrast, 1 + config.contrast)
        )
    if config.saturation and image.shape[0] == 3:
        image = TF.adjust_saturation(
            image, _uniform(generator, 1 - config.saturation, 1 + config.saturation)
        )
    if config.gamma:
        image = image.clamp(0.0, 1.0) ** math.exp(_uniform(generator, -config.gamma, config.gamma))
    if config.noise_std:
        image = image + config.noise_std * torch.randn(image.shape, generator=generator)
    if config.jpeg and _happens(generator, config.jpeg):
        low, high = config.jpeg_quality
        quality = int(torch.randint(low, high + 1, (1,), generator=generator))
        image = _jpeg_round_trip(image, quality)
    return image.clamp(0.0, 1.0)


def _happens(generator: torch.Generator, probability: float) -> bool:
    """True with ``probability``; draws a number only when it is strictly between 0 and 1."""
    if probability >= 1.0:
        return True
    return probability > 0.0 and float(torch.rand((), generator=generator)) < probability


def _resample(image: torch.Tensor, factor: float) -> torch.Tensor:
    """Down-sample by ``factor`` (area-like, antialiased) and back: a lower-resolution camera."""
    h, w = image.shape[-2:]
    small = [max(1, round(h * factor)), max(1, round(w * factor))]
    if small == [h, w]:
        return image
    image = TF.resize(image, small, InterpolationMode.BILINEAR, antialias=True)
    return TF.resize(image, [h, w], InterpolationMode.BICUBIC, antialias=False)


def _jpeg_round_trip(image: torch.Tensor, quality: int) -> torch.Tensor:
    """Encode a [0, 1] C×H×W image as JPEG at ``quality`` and decode it again."""
    import numpy as np
    from PIL import Image

    if image.shape[0] not in (1, 3):
        return image
    as_bytes = (image.clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()
    picture = Image.fromarray(as_bytes[..., 0] if image.shape[0] == 1 else as_bytes)
    decoded = np.asarray(jpeg_round_trip(picture, quality))
    if decoded.ndim == 2:
        decoded = decoded[..., None]
    return torch.from_numpy(decoded.copy()).permute(2, 0, 1).to(image.dtype) / 255.0


def jpeg_round_trip(picture: Any, quality: int) -> Any:
    """A Pillow image encoded as JPEG at ``quality`` and decoded (Pillow's codec)."""
    from io import BytesIO

    from PIL import Image

    buffer = BytesIO()
    picture.save(buffer, format="JPEG", quality=quality)
    decoded = Image.open(buffer)
    decoded.load()
    return decoded


def augment_image(
    image: torch.Tensor, config: AugmentConfig, generator: torch.Generator
) -> torch.Tensor:
    """One random flip / rotation / affine / photometric change of a whole image (C×H×W)."""
    flips = torch.rand(3, generator=generator)
    if config.hflip and flips[0] < 0.5:
        image = image.flip(-1)
    if config.vflip and flips[1] < 0.5:
        image = image.flip(-2)
    if config.transpose and flips[2] < 0.5 and image.shape[-1] == image.shape[-2]:
        image = image.transpose(-1, -2)
    shift = config.translate * image.shape[-1]
    if config.rotation or shift or config.scale != (1.0, 1.0) or config.shear:
        image = TF.affine(
            image,
            angle=_uniform(generator, -config.rotation, config.rotation),
            translate=[_uniform(generator, -shift, shift), _uniform(generator, -shift, shift)],
            scale=_uniform(generator, *config.scale),
            shear=[_uniform(generator, -config.shear, config.shear), 0.0],
            interpolation=InterpolationMode.BILINEAR,
        )
    return photometric(image, config, generator)


@dataclass
class PhotoVariants:
    """Degraded copies of whole photographs, made once before preprocessing.

    Patch augmentation acts on the preprocessed image (after contrast
    enhancement), where a JPEG block or a lost resolution is not what a camera
    gives: enhancement amplifies them. A recipe's ``"photo_variants"`` object makes
    ``copies`` degraded versions of each training photo at its own resolution —
    each a JPEG round trip (quality in ``jpeg``, probability ``jpeg_p``), a
    lower-resolution camera (down by a factor in ``resample`` and back,
    ``resample_p``), a Gaussian blur (σ in ``blur``, ``blur_p``) or several —
    which then go through the task's preprocessing like any photo; training draws
    a variant instead of the original with probability ``p``.
    """

    copies: int = 0
    p: float = 0.5
    jpeg: tuple[int, int] = (25, 90)
    jpeg_p: float = 0.6
    resample: tuple[float, float] = (0.4, 0.8)
    resample_p: float = 0.4
    blur: tuple[float, float] = (0.5, 1.5)
    blur_p: float = 0.3

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> PhotoVariants:
        """From a recipe's ``photo_variants`` object; unknown keys are a clear error."""
        return _from_recipe(cls, "photo_variants", values)

    def make(self, photo: Any, seed: int) -> list[Any]:
        """``copies`` degraded versions of an H×W×3 uint8 photo (same size), seeded."""
        import numpy as np
        from PIL import Image, ImageFilter

        rng = np.random.default_rng(seed)
        out = []
        for _ in range(self.copies):
            image = Image.fromarray(photo)
            changed = False
            while not changed:  # every copy differs from the photo in at least one way
                if rng.random() < self.blur_p:
                    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(*self.blur)))
                    changed = True
                if rng.random() < self.resample_p:
                    factor = rng.uniform(*self.resample)
                    small = (
                        max(1, round(image.width * factor)),
                        max(1, round(image.height * factor)),
                    )
                    image = image.resize(small, Image.Resampling.BOX).resize(
                        photo.shape[1::-1], Image.Resampling.BICUBIC
                    )
                    changed = True
                if rng.random() < self.jpeg_p:
                    quality = int(rng.integers(*self.jpeg, endpoint=True))
                    image = jpeg_round_trip(image, quality).convert("RGB")
                    changed = True
            out.append(np.asarray(image, dtype=np.uint8))
        return out
