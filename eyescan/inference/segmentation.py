"""Shared inference for segmentation models: any image size, padded or tiled."""

from __future__ import annotations

import numpy as np
import torch


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """H×W×C float array → 1×C×H×W tensor."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None].float()


def _pad(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, int, int]:
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if h > ph and w > pw else "replicate"
        x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode=mode)
    return x, h, w


@torch.no_grad()
def predict_logits(
    model: torch.nn.Module,
    x: torch.Tensor,
    stride: int,
    tile: int | None = None,
    overlap: int = 32,
) -> torch.Tensor:
    """Logits for an N×C×H×W batch of any H, W.

    Pads to a multiple of ``stride``; images larger than ``tile`` on a side are
    processed in overlapping tiles whose centres are stitched, so memory stays
    bounded for very large photographs. Runs on the model's device; returns
    logits on the CPU.
    """
    params = model.parameters() if isinstance(model, torch.nn.Module) else iter(())
    device = next((p.device for p in params), torch.device("cpu"))
    h, w = x.shape[-2:]
    if tile is None or (h <= tile and w <= tile):
        padded, h, w = _pad(x.to(device), stride)
        return model(padded)[..., :h, :w].float().cpu()
    tile = tile - tile % stride
    step = tile - 2 * overlap
    out = None
    for top in range(0, h, step):
        for left in range(0, w, step):
            t0, l0 = max(0, top - overlap), max(0, left - overlap)
            patch = x[..., t0 : t0 + tile, l0 : l0 + tile]
            padded, ph, pw = _pad(patch, stride)
            logits = model(padded.to(device))[..., :ph, :pw].float().cpu()
            if out is None:
                out = torch.zeros(x.shape[0], logits.shape[1], h, w)
            bottom, right = min(h, top + step), min(w, left + step)
            out[..., top:bottom, left:right] = logits[
                ..., top - t0 : top - t0 + bottom - top, left - l0 : left - l0 + right - left
            ]
    assert out is not None
    return out
