"""One image through a vessel network: normalisation, probability map, decision threshold.

Shared by prediction (``task.py``), training (validation) and evaluation, so
that all three see the network the same way. :func:`photo_probability` runs a
photograph at its model's scale (``scale.py``) and maps the result back to the
photo's size. Torch is imported on first use.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from eyescan_vessels import scale
from eyescan_vessels.data import enhance

#: Vessel / background decision threshold on the probability (the seed's 0.5).
THRESHOLD = 0.5
#: Images larger than this (either side) are predicted in overlapping tiles.
TILE = 1024


def normalise(image: Any) -> Any:
    """Centre the [0, 1] enhanced image for the network (arrays or tensors)."""
    return (image - 0.5) / 0.25


def probability_map(module: Any, image: np.ndarray) -> np.ndarray:
    """Vessel probability (float32 H×W) of a preprocessed image of any size."""
    return probability_maps(module, [image])[0]


def probability_maps(module: Any, images: list[np.ndarray]) -> list[np.ndarray]:
    """Vessel probabilities of preprocessed images of any sizes, in order; the images of
    one size go through the network together (one call, ``predict --batch-size``)."""
    import torch

    from eyescan.api import segmentation

    stride = getattr(module, "stride", 16)
    maps: list[Any] = [None] * len(images)
    sizes: dict[tuple[int, ...], list[int]] = {}
    for i, image in enumerate(images):
        sizes.setdefault(image.shape, []).append(i)
    for indices in sizes.values():
        x = torch.cat([segmentation.to_tensor(normalise(images[i])) for i in indices])
        logits = segmentation.predict_logits(module, x, stride, tile=TILE)
        for i, prob in zip(indices, torch.sigmoid(logits)[:, 0].numpy()):
            maps[i] = prob.astype(np.float32)
    return maps


def model_scale(model: Any) -> float | None:
    """The FOV diameter a loaded model works at (its card's ``model_scale``), or None."""
    return scale.target_diameter(getattr(model, "card", None))


def model_input(
    original: np.ndarray,
    fov: np.ndarray,
    target: float | None,
    enhanced: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """The network's input for a photo and the factor it was resampled by.

    ``enhanced`` is the photo already enhanced at its own size (reused when no
    resampling is needed). Factor 1.0: the photo as it is (no ``model_scale``,
    or the photo already at scale).
    """
    value = scale.factor(fov, target)
    if value == 1.0:
        return (enhance(original) if enhanced is None else enhanced), 1.0
    resized = scale.resize_image(original, scale.scaled_shape(original.shape, value))
    return enhance(resized), value


def photo_probability(
    module: Any,
    original: np.ndarray,
    fov: np.ndarray,
    target: float | None,
    enhanced: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """Vessel probability at the photo's size, the network run at scale ``target``.

    Returns the map and the factor applied (1.0: run as the photo is).
    """
    image, value = model_input(original, fov, target, enhanced)
    prob = probability_map(module, image)
    return scale.resize_probability(prob, original.shape[:2]), value
