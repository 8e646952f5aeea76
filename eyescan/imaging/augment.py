"""Training augmentation of every task, configured by one :class:`AugmentConfig`.

A recipe's ``"augment"`` object sets its fields (:meth:`AugmentConfig.from_dict`
refuses unknown keys). :func:`augment_patch` cuts and transforms an image and
its masks together (segmentation); :func:`augment_image` transforms a whole
image (classification). Geometric transforms (rotation, flips, transpose,
affine, cropping) move the image and every mask together; photometric ones
(brightness, contrast, saturation, Gaussian noise) touch the image only.
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
    scale: tuple[float, float] = (1.0, 1.0)  # affine zoom range (augment_image)
    shear: float = 0.0  # affine shear, degrees (augment_image)

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> AugmentConfig:
        """From a recipe's ``augment`` object; unknown keys are a clear error."""
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"recipe 'augment': unknown key(s) {', '.join(unknown)} "
                f"(known: {', '.join(sorted(known))})"
            )
        if "scale" in values:
            values["scale"] = tuple(values["scale"])
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
    centre ``crop``² is kept, so rotation costs little however large the image.
    """
    big = crop if config.rotation == 0 else int(math.ceil(crop * math.sqrt(2))) + 2
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
        off = (big - crop) // 2
        img = img[:, off : off + crop, off : off + crop]
        msk = msk[:, off : off + crop, off : off + crop]
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
    """Brightness, contrast and saturation jitter and Gaussian noise on a [0, 1] image."""
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
    if config.noise_std:
        image = image + config.noise_std * torch.randn(image.shape, generator=generator)
    return image.clamp(0.0, 1.0)


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
