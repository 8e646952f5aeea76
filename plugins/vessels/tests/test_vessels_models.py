"""Vessel models: shapes on any size, parameter count against a hand count."""

from __future__ import annotations

import pytest
import torch

from eyescan.api import segmentation
from eyescan_vessels.models import UNet, unet


def _conv_block(cin: int, cout: int) -> int:
    return cin * cout * 9 + 2 * cout + cout * cout * 9 + 2 * cout  # convs (no bias) + 2 BN


def test_parameter_count_matches_hand_count():
    model = UNet(width=8, depth=2)
    expected = (
        _conv_block(3, 8)
        + _conv_block(8, 16)  # encoders
        + _conv_block(16, 32)  # bottleneck
        + _conv_block(32 + 16, 16)
        + _conv_block(16 + 8, 8)  # decoders
        + 8
        + 1  # 1×1 head
    )
    assert sum(p.numel() for p in model.parameters()) == expected


@pytest.mark.parametrize("size", [(37, 53), (64, 64), (100, 31)])
def test_any_image_size(size):
    model = unet().eval()
    x = torch.randn(1, 3, *size)
    logits = segmentation.predict_logits(model, x, model.stride)
    assert logits.shape == (1, 1, *size)


def test_tiled_inference_matches_whole_image():
    torch.manual_seed(0)
    model = UNet(width=4, depth=2).eval()
    x = torch.randn(1, 3, 96, 80)
    whole = segmentation.predict_logits(model, x, model.stride)
    tiled = segmentation.predict_logits(model, x, model.stride, tile=64, overlap=16)
    assert tiled.shape == whole.shape
    # tiles see less context at their borders; centres agree closely
    assert torch.allclose(whole[..., 20:-20, 20:-20], tiled[..., 20:-20, 20:-20], atol=0.15)
