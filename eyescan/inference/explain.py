"""Explanation maps for classifiers: Grad-CAM (Selvaraju et al., 2017)."""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F


def grad_cam(
    model: torch.nn.Module, layer: torch.nn.Module, x: torch.Tensor, target: int | None = None
) -> np.ndarray:
    """Grad-CAM heat map (H×W float in [0, 1], input size) for one input ``x`` (1×C×H×W).

    ``layer`` is the convolutional layer whose activations are weighted by the
    spatially averaged gradients of the ``target`` class score (default: the
    predicted class).
    """
    activations: list[torch.Tensor] = []
    gradients: list[torch.Tensor] = []
    h1 = layer.register_forward_hook(lambda m, i, o: activations.append(o))
    h2 = layer.register_full_backward_hook(lambda m, gi, go: gradients.append(go[0]))
    try:
        model.zero_grad(set_to_none=True)
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            logits = model(x)
            if isinstance(logits, (tuple, list)):
                logits = logits[0]
            index = int(logits.argmax(dim=1)[0]) if target is None else target
            logits[0, index].backward()
    finally:
        h1.remove()
        h2.remove()
    act, grad = activations[-1].detach(), gradients[-1].detach()
    weights = grad.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * act).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    cam = cam - cam.min()
    peak = float(cam.max())
    return (cam / peak if peak > 0 else cam).numpy().astype(np.float32)


def heat_overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Blend a [0, 1] heat map (jet-like colours) over a uint8 RGB image of the same size."""
    h = np.clip(heat, 0, 1)[..., None]
    colour = (
        np.concatenate(
            [
                np.clip(1.5 - np.abs(4 * h - 3), 0, 1),
                np.clip(1.5 - np.abs(4 * h - 2), 0, 1),
                np.clip(1.5 - np.abs(4 * h - 1), 0, 1),
            ],
            axis=-1,
        )
        * 255
    )
    out = (1 - alpha) * image.astype(np.float32) + alpha * colour
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
