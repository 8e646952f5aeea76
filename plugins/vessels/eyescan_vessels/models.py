"""Vessel segmentation networks: a slim U-Net and the SCCU-Net ablation ladder.

All models map an N×3×H×W image (H, W multiples of 2**depth) to N×1×H×W logits.

SCCU-Net (spec ``vessels.md``, seed 002) changes the U-Net in two places, each
switchable so that the ablation compares models of the same width and depth:

- ``block="scc"``: every conv block's second 3×3 convolution is a
  self-calibrated convolution (:class:`SCConv`, Liu et al., CVPR 2020); the
  first 3×3 convolution still changes the channel count.
- ``attention="sam"``: CBAM spatial attention on the bottleneck's output;
  ``attention="isam"``: the seed's improved spatial attention, whose map is
  computed from the bottleneck's *input* (before that stage's convolutions)
  and applied to its output.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def first_conv(in_channels: int, out_channels: int, dropout: float = 0.0) -> list[nn.Module]:
    """A block's first 3×3 conv, batch norm and ReLU (then dropout when asked)."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]
    if dropout:
        layers.append(nn.Dropout2d(dropout))
    return layers


class ConvBlock(nn.Sequential):
    """Two 3×3 convolutions, each followed by batch norm and ReLU."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0):
        layers = first_conv(in_channels, out_channels, dropout)
        layers += [
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        ]
        super().__init__(*layers)


def _conv_bn(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
    )


class SCConv(nn.Module):
    """Self-calibrated 3×3 convolution, ``channels`` in and out (Liu et al., CVPR 2020).

    The input is split into two channel halves. The first goes through a plain
    3×3 conv (``k1``). The second is calibrated: a 3×3 conv of its average-pooled
    (by ``pooling``) copy (``k2``), up-sampled (nearest) back, added to the
    identity and passed through a sigmoid, gates a 3×3 conv of the
    original-scale half (``k3``); another 3×3 conv (``k4``) follows. The halves
    are concatenated. Every conv has batch norm and no bias, as in the authors'
    code; the caller applies the ReLU. With an even channel count this has the
    weights of one plain ``channels``→``channels`` 3×3 conv (4 · 9 · (C/2)² = 9C²).
    """

    def __init__(self, channels: int, pooling: int = 4):
        super().__init__()
        self.split = channels // 2
        plain, calibrated = self.split, channels - self.split
        self.pooling = pooling
        self.k1 = _conv_bn(plain, plain)
        self.k2 = _conv_bn(calibrated, calibrated)
        self.k3 = _conv_bn(calibrated, calibrated)
        self.k4 = _conv_bn(calibrated, calibrated)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x[:, : self.split], x[:, self.split :]
        # ceil_mode: sizes not divisible by the pooling factor (and 1×1 maps) still work
        coarse = self.k2(F.avg_pool2d(b, self.pooling, self.pooling, ceil_mode=True))
        gate = torch.sigmoid(b + F.interpolate(coarse, size=b.shape[-2:], mode="nearest"))
        return torch.cat([self.k1(a), self.k4(self.k3(b) * gate)], dim=1)


class SCCBlock(nn.Sequential):
    """:class:`ConvBlock` whose second 3×3 conv is self-calibrated (:class:`SCConv`).

    The first conv changes the channel count (a split input of 3 channels
    makes no sense), so the block keeps ConvBlock's receptive field at full
    scale and its weights, plus 2 · ``out_channels`` batch-norm parameters.
    """

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0):
        layers = first_conv(in_channels, out_channels, dropout)
        layers += [SCConv(out_channels), nn.ReLU(inplace=True)]
        super().__init__(*layers)


class SpatialAttention(nn.Module):
    """CBAM spatial attention: channel max and mean → 7×7 conv → sigmoid → multiply.

    ``attention_map(x)`` is the N×1×H×W gate; ``forward(x, source)`` multiplies
    ``x`` by the gate computed from ``source`` (default ``x`` itself: CBAM's
    SAM; the bottleneck's input: the seed's ISAM).
    """

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(pooled))

    def forward(self, x: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        return x * self.attention_map(x if source is None else source)


#: Conv block types by name (``block=`` of :class:`UNet` and the factories).
BLOCKS: dict[str, type[nn.Module]] = {"plain": ConvBlock, "scc": SCCBlock}
#: Bottleneck attention: none, CBAM spatial attention, or the seed's improved one.
ATTENTIONS = ("none", "sam", "isam")


class UNet(nn.Module):
    """U-Net with ``depth`` down-sampling steps and ``width`` channels at full scale.

    Channels double at each step (width · 2**level). Up-sampling is bilinear
    followed by concatenation with the skip connection and a conv block.
    ``block``: conv block type (or its name in :data:`BLOCKS`); ``attention``:
    spatial attention at the bottleneck, one of :data:`ATTENTIONS` (``sam`` gates
    the bottleneck's output by a map of itself, ``isam`` by a map of its input).
    """

    def __init__(
        self,
        in_channels: int = 3,
        width: int = 16,
        depth: int = 3,
        dropout: float = 0.0,
        block: type[nn.Module] | str = ConvBlock,
        attention: str = "none",
    ):
        super().__init__()
        if isinstance(block, str):
            if block not in BLOCKS:
                raise ValueError(f"unknown block {block!r}; expected one of {sorted(BLOCKS)}")
            block = BLOCKS[block]
        if attention not in ATTENTIONS:
            raise ValueError(f"unknown attention {attention!r}; expected one of {ATTENTIONS}")
        self.depth = depth
        self.attention_kind = attention
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
        if attention != "none":  # no module (and no state-dict keys) for the plain U-Net
            self.attention = SpatialAttention()

    @property
    def stride(self) -> int:
        return 2**self.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        if self.attention_kind == "none":
            x = self.bottleneck(x)
        elif self.attention_kind == "sam":
            x = self.attention(self.bottleneck(x))
        else:  # isam: the map comes from the features before the bottleneck's convolutions
            x = self.attention(self.bottleneck(x), source=x)
        for decoder, skip in zip(self.decoders, reversed(skips)):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = decoder(torch.cat([x, skip], dim=1))
        return self.head(x)


def unet(width: int = 8, depth: int = 4, dropout: float = 0.1) -> UNet:
    """Slim U-Net that trains on a 2-core CPU."""
    return UNet(width=width, depth=depth, dropout=dropout)


def vessel_unet(
    block: str = "plain",
    attention: str = "none",
    width: int = 8,
    depth: int = 4,
    dropout: float = 0.1,
) -> UNet:
    """The ablation ladder's U-Net: ``unet``'s width and depth, block and attention chosen."""
    return UNet(width=width, depth=depth, dropout=dropout, block=block, attention=attention)


def unet_scc(width: int = 8, depth: int = 4, dropout: float = 0.1) -> UNet:
    """``unet`` with self-calibrated convolutions in every conv block."""
    return vessel_unet("scc", "none", width, depth, dropout)


def unet_sam(width: int = 8, depth: int = 4, dropout: float = 0.1) -> UNet:
    """``unet`` with CBAM spatial attention at the bottleneck."""
    return vessel_unet("plain", "sam", width, depth, dropout)


def unet_isam(width: int = 8, depth: int = 4, dropout: float = 0.1) -> UNet:
    """``unet`` with the seed's improved spatial attention at the bottleneck."""
    return vessel_unet("plain", "isam", width, depth, dropout)


def sccunet(width: int = 8, depth: int = 4, dropout: float = 0.1) -> UNet:
    """SCCU-Net: self-calibrated convolutions and improved spatial attention."""
    return vessel_unet("scc", "isam", width, depth, dropout)
