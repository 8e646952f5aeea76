"""One image through a vessel network: normalisation, probability map, decision threshold.

Shared by prediction (``task.py``), training (validation) and evaluation, so
that all three see the network the same way. Torch is imported on first use.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Vessel / background decision threshold on the probability (the seed's 0.5).
THRESHOLD = 0.5
#: Images larger than this (either side) are predicted in overlapping tiles.
TILE = 1024


def normalise(image: Any) -> Any:
    """Centre the [0, 1] enhanced image for the network (arrays or tensors)."""
    return (image - 0.5) / 0.25


def probability_map(module: Any, image: np.ndarray) -> np.ndarray:
    """Vessel probability (float32 H×W) of a preprocessed image of any size."""
    import torch

    from eyescan.api import segmentation

    x = segmentation.to_tensor(normalise(image))
    stride = getattr(module, "stride", 16)
    logits = segmentation.predict_logits(module, x, stride, tile=TILE)
    return torch.sigmoid(logits)[0, 0].numpy().astype(np.float32)
