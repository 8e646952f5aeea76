"""Red-Seg: a VGG16 encoder with a microaneurysm (MA) and a haemorrhage (HE) branch.

The encoder is VGG16's five conv groups (13 conv 3×3 layers, ReLU, max-pool
between groups), laid out exactly as ``torchvision.models.vgg16().features[:30]``
so a torchvision VGG16 file loads into the encoder by name (``features.N.weight``)
with the recipe's ``"init": {"file": "vgg16-397923af.pth", "into": "encoder"}``
(``api.init.initialise``). conv1…conv5 outputs are at 1, 1/2, 1/4,
1/8 and 1/16 of the input. Each branch puts a 1×1 conv (one channel) after the
last conv of its groups (MA: conv2, conv3, conv4; HE: conv3, conv4, conv5),
up-samples the side maps bilinearly to the input size, concatenates them and
fuses them with a 1×1 conv. Training supervises every side map and both fused
maps (deep supervision); inference uses the sigmoid of the fused maps.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from eyescan.api import fundus
from eyescan_redlesion.data import LESIONS, model_view, normalise

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
BRANCHES = ("ma", "he")


class VGG16Encoder(nn.Module):
    """VGG16's 13 conv layers; ``forward`` returns the five groups' outputs.

    ``width`` scales every group's channels (1.0 = VGG16; smaller values are
    for CPU experiments only and cannot take ImageNet weights). ``batch_norm``
    puts a BatchNorm after every conv, laid out as torchvision's ``vgg16_bn``
    (in a one-off probe it let a from-scratch width-0.25 model fit one training
    crop in 50 steps, where the plain one stayed near the constant prediction).
    """

    def __init__(self, width: float = 1.0, batch_norm: bool = False):
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
                layers.append(nn.Conv2d(previous, c, 3, padding=1))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(c))
                layers.append(nn.ReLU(inplace=True))
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


class MobileNetV3Encoder(nn.Module):
    """MobileNetV3-Small's first nine blocks (torchvision's ``mobilenet_v3_small().features``,
    names kept, so a torchvision-layout file loads into ``encoder``), tapped where the
    VGG16 groups 2–5 sit: 1/2, 1/4, 1/8 and 1/16 of the input. There is no full-size
    group 1 (neither branch of the seed uses it)."""

    #: Block index whose output stands for VGG16 group 2, 3, 4, 5.
    TAPS = (0, 1, 3, 8)

    def __init__(self):
        super().__init__()
        from torchvision.models import mobilenet_v3_small

        self.features = mobilenet_v3_small(weights=None).features[: self.TAPS[-1] + 1]
        self.channels: list[int | None] = [None]
        for index in self.TAPS:
            block = self.features[index]
            convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
            self.channels.append(convs[-1].out_channels)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor | None]:
        outputs: list[torch.Tensor | None] = [None]
        for index, block in enumerate(self.features):
            x = block(x)
            if index in self.TAPS:
                outputs.append(x)
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
        batch_norm: bool = False,
        encoder: str = "vgg16",
    ):
        super().__init__()
        for levels in (ma_levels, he_levels):
            if not levels or any(level not in (1, 2, 3, 4, 5) for level in levels):
                raise ValueError(f"branch levels must be conv groups 1..5, got {levels}")
        self.width = width
        if encoder == "mobilenet_v3_small":
            if 1 in (*ma_levels, *he_levels) or width != 1.0:
                raise ValueError("the MobileNetV3-Small encoder has groups 2..5 and one width")
            self.encoder: nn.Module = MobileNetV3Encoder()
        elif encoder == "vgg16":
            self.encoder = VGG16Encoder(width, batch_norm)
        else:
            raise ValueError(f"encoder must be vgg16 or mobilenet_v3_small, got {encoder!r}")
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


def redseg(width: float = 1.0, batch_norm: bool = False) -> RedSeg:
    """The seed's Red-Seg: MA from conv2–4, HE from conv3–5."""
    return RedSeg(MA_LEVELS, HE_LEVELS, width, batch_norm)


def redseg_mobilenet(width: float = 1.0) -> RedSeg:
    """Red-Seg's two branches on a MobileNetV3-Small encoder (groups 2–5 at the same
    scales), which can start from a fundus-pretrained torchvision-layout file."""
    return RedSeg(MA_LEVELS, HE_LEVELS, width, encoder="mobilenet_v3_small")


def redseg_ma_c2345(width: float = 1.0, batch_norm: bool = False) -> RedSeg:
    """Ablation (seed Table 5): MA branch fuses conv2–5."""
    return RedSeg((2, 3, 4, 5), HE_LEVELS, width, batch_norm)


def redseg_ma_c1234(width: float = 1.0, batch_norm: bool = False) -> RedSeg:
    """Ablation (seed Table 5): MA branch fuses conv1–4."""
    return RedSeg((1, 2, 3, 4), HE_LEVELS, width, batch_norm)


#: Images larger than this (either side, at model scale) are predicted in tiles.
TILE = 2048


def lesion_probabilities(
    module: nn.Module,
    image: np.ndarray,
    input_width: int | None = None,
    fov_width: int | None = None,
    fov: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """MA and HE probability maps (float32, the image's size) of a uint8 RGB image.

    The network sees the model's view of the image (``data.model_view``: the field
    of view scaled to ``fov_width``, else the whole image at ``input_width``; both
    from the card), padded to a multiple of 16; the maps are resized back to the
    image (zero outside the view).
    """
    from eyescan.api import segmentation

    h, w = image.shape[:2]
    view = model_view(image, input_width, fov_width, fov)
    scaled = view.crop(image)
    if view.size != scaled.shape[:2]:
        scaled = fundus.resize(scaled, view.size)
    device = next(module.parameters()).device
    x = segmentation.to_tensor(normalise(scaled)).to(device)
    logits = segmentation.predict_logits(module, x, getattr(module, "stride", 16), tile=TILE)
    probs = view.paste(torch.sigmoid(logits)[0].float().cpu().numpy(), (h, w))
    return {name: np.ascontiguousarray(probs[i], np.float32) for i, name in enumerate(LESIONS)}
