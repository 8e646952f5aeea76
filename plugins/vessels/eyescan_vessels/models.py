"""Vessel segmentation networks: a slim U-Net (the core issue's proof model).

All models map an N×3×H×W image (H, W multiples of 2**depth) to N×1×H×W logits.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class ConvBlock(nn.Sequential):
    """Two 3×3 convolutions, each followed by batch norm and ReLU."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0):
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        ]
        if dropout:
            layers.append(nn.Dropout2d(dropout))
        layers += [
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        ]
        super().__init__(*layers)


class UNet(nn.Module):
    """U-Net with ``depth`` down-sampling steps and ``width`` channels at full scale.

    Channels double at each step (width · 2**level). Up-sampling is bilinear
    followed by concatenation with the skip connection and a conv block.
    """

    def __init__(
        self,
        in_channels: int = 3,
        width: int = 16,
        depth: int = 3,
        dropout: float = 0.0,
        block: type[nn.Module] = ConvBlock,
    ):
        super().__init__()
        self.depth = depth
        channels = [width * 2**i for i in range(depth + 1)]
        self.encoders = nn.ModuleList()
        previous = in_channels
        for c in channels[:-1]:
            self.encoders.append(block(previous, c))
            previous = c
        self.bottleneck = block(channels[-2], channels[-1], dropout)
        self.decoders = nn.ModuleList(
            block(channels[i + 1] + channels[i], channels[i]) for i in reversed(range(depth))
        )
        self.head = nn.Conv2d(channels[0], 1, 1)

    @property
    def stride(self) -> int:
        return 2**self.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottleneck(x)
        for decoder, skip in zip(self.decoders, reversed(skips)):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = decoder(torch.cat([x, skip], dim=1))
        return self.head(x)


def unet(width: int = 8, depth: int = 4, dropout: float = 0.1) -> UNet:
    """Slim U-Net that trains on a 2-core CPU."""
    return UNet(width=width, depth=depth, dropout=dropout)
