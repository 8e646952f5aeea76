"""Red-Seg: a VGG16 encoder with a microaneurysm (MA) and a haemorrhage (HE) branch.

The encoder is VGG16's five conv groups (13 conv 3×3 layers, ReLU, max-pool
between groups), laid out exactly as ``torchvision.models.vgg16().features[:30]``
so ImageNet VGG16 weights load by name. conv1…conv5 outputs are at 1, 1/2, 1/4,
1/8 and 1/16 of the input. Each branch puts a 1×1 conv (one channel) after the
last conv of its groups (MA: conv2, conv3, conv4; HE: conv3, conv4, conv5),
up-samples the side maps bilinearly to the input size, concatenates them and
fuses them with a 1×1 conv. Training supervises every side map and both fused
maps (deep supervision); inference uses the sigmoid of the fused maps.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

#: VGG16's conv channels, per group (Table 1 of the seed).
VGG16_GROUPS: tuple[tuple[int, ...], ...] = (
    (64, 64),
    (128, 128),
    (256, 256, 256),
    (512, 512, 512),
    (512, 512, 512),
)
#: The seed's fusions: MA from conv2–4 (small lesions), HE from conv3–5.
MA_LEVELS = (2, 3, 4)
HE_LEVELS = (3, 4, 5)
#: torchvision's file name of the ImageNet VGG16 weights (looked up in the torch cache).
IMAGENET_VGG16_FILE = "vgg16-397923af.pth"
BRANCHES = ("ma", "he")


class VGG16Encoder(nn.Module):
    """VGG16's 13 conv layers; ``forward`` returns the five groups' outputs.

    ``width`` scales every group's channels (1.0 = VGG16; smaller values are
    for CPU experiments only and cannot take ImageNet weights).
    """

    def __init__(self, width: float = 1.0):
        super().__init__()
        layers: list[nn.Module] = []
        self.group_ends: list[int] = []  # index after each group's last ReLU
        self.channels: list[int] = []
        previous = 3
        for g, group in enumerate(VGG16_GROUPS):
            if g > 0:
                layers.append(nn.MaxPool2d(2, 2))
            for c in group:
                c = max(1, round(c * width))
                layers += [nn.Conv2d(previous, c, 3, padding=1), nn.ReLU(inplace=True)]
                previous = c
            self.group_ends.append(len(layers))
            self.channels.append(previous)
        self.features = nn.Sequential(*layers)
        for layer in self.features:  # torchvision's VGG initialisation
            if isinstance(layer, nn.Conv2d):
                nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs, start = [], 0
        for end in self.group_ends:
            for layer in self.features[start:end]:
                x = layer(x)
            outputs.append(x)
            start = end
        return outputs


class SideBranch(nn.Module):
    """1×1 side convs on some conv groups, bilinear up-sampling, 1×1 fusion."""

    def __init__(self, levels: tuple[int, ...], channels: list[int]):
        super().__init__()
        self.levels = tuple(levels)
        self.sides = nn.ModuleList(nn.Conv2d(channels[level - 1], 1, 1) for level in self.levels)
        self.fuse = nn.Conv2d(len(self.levels), 1, 1)
        nn.init.constant_(self.fuse.weight, 1.0 / len(self.levels))  # start as the mean (HED)
        nn.init.zeros_(self.fuse.bias)

    def forward(self, features: list[torch.Tensor], size: tuple[int, int]) -> list[torch.Tensor]:
        """Up-sampled side logits (one per level), then the fused logits."""
        sides = [
            F.interpolate(conv(features[level - 1]), size, mode="bilinear", align_corners=False)
            for conv, level in zip(self.sides, self.levels)
        ]
        return [*sides, self.fuse(torch.cat(sides, dim=1))]


class RedSeg(nn.Module):
    """Red-Seg. ``forward`` gives N×2×H×W fused logits (channel 0 MA, 1 HE).

    :meth:`deep_outputs` gives every supervised map by name (``ma/conv2`` …
    ``ma/fused``, ``he/conv3`` … ``he/fused``) for training. H and W must be
    multiples of :attr:`stride` (16); inference pads to it.
    """

    stride = 16

    def __init__(
        self,
        ma_levels: tuple[int, ...] = MA_LEVELS,
        he_levels: tuple[int, ...] = HE_LEVELS,
        width: float = 1.0,
    ):
        super().__init__()
        for levels in (ma_levels, he_levels):
            if not levels or any(level not in (1, 2, 3, 4, 5) for level in levels):
                raise ValueError(f"branch levels must be conv groups 1..5, got {levels}")
        self.width = width
        self.encoder = VGG16Encoder(width)
        self.ma = SideBranch(tuple(ma_levels), self.encoder.channels)
        self.he = SideBranch(tuple(he_levels), self.encoder.channels)

    def output_names(self) -> list[str]:
        """Names of the supervised maps, in :meth:`deep_outputs` order."""
        return [
            f"{name}/{label}"
            for name in BRANCHES
            for label in [f"conv{level}" for level in getattr(self, name).levels] + ["fused"]
        ]

    def deep_outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.encoder(x)
        size = (x.shape[-2], x.shape[-1])
        maps = [m for name in BRANCHES for m in getattr(self, name)(features, size)]
        return dict(zip(self.output_names(), maps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder(x)
        size = (x.shape[-2], x.shape[-1])
        return torch.cat([self.ma(features, size)[-1], self.he(features, size)[-1]], dim=1)


def redseg(width: float = 1.0) -> RedSeg:
    """The seed's Red-Seg: MA from conv2–4, HE from conv3–5."""
    return RedSeg(MA_LEVELS, HE_LEVELS, width)


def redseg_ma_c2345(width: float = 1.0) -> RedSeg:
    """Ablation (seed Table 5): MA branch fuses conv2–5."""
    return RedSeg((2, 3, 4, 5), HE_LEVELS, width)


def redseg_ma_c1234(width: float = 1.0) -> RedSeg:
    """Ablation (seed Table 5): MA branch fuses conv1–4."""
    return RedSeg((1, 2, 3, 4), HE_LEVELS, width)


def find_imagenet_vgg16(path: str | Path | None = "auto") -> Path | None:
    """The ImageNet VGG16 file: ``path`` itself, or for ``"auto"`` the torch cache's copy.

    Nothing is downloaded; returns None when no file is there.
    """
    if path is None:
        return None
    if str(path) != "auto":
        return Path(path) if Path(path).is_file() else None
    cached = Path(torch.hub.get_dir()) / "checkpoints" / IMAGENET_VGG16_FILE
    return cached if cached.is_file() else None


def load_imagenet_vgg16(model: RedSeg, path: Path) -> int:
    """Copy torchvision-format VGG16 conv weights into the encoder; returns tensors copied.

    Loads with ``weights_only=True`` (no pickled code). Only ``features.*`` tensors
    are used (the classifier is not part of Red-Seg); every conv must fit.
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    copied = {}
    for key, tensor in model.encoder.state_dict().items():  # "features.N.weight", as torchvision
        source = state.get(key)
        if source is None or tuple(source.shape) != tuple(tensor.shape):
            raise ValueError(
                f"{path}: not VGG16 ImageNet weights for this encoder "
                f"({key}: {None if source is None else tuple(source.shape)} "
                f"vs {tuple(tensor.shape)})"
            )
        copied[key] = source
    model.encoder.load_state_dict(copied)
    return len(copied)
