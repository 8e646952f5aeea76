"""ROP classifiers: the multi-stream teacher ``ms-rop`` and the MobileNetV2 student ``mn-rop``.

Both map an N×3×H×W image in [0, 1] (normalised inside) to N×2 logits. Backbones
are torchvision's, built with ``weights=None``; ImageNet (or any) weights come
only from files a recipe names (``"init"``, see :func:`init_specs`), never downloaded.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

#: ImageNet channel statistics (torchvision's pretrained backbones expect them).
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
#: Channels of each stream's last feature map: ResNet18, DenseNet121, EfficientNetB2.
STREAM_CHANNELS = (512, 1024, 1408)


class Normalise(nn.Module):
    """[0, 1] RGB → ImageNet-normalised input (part of the model, so exports keep it)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def _resnet18_features() -> nn.Sequential:
    from torchvision.models import resnet18

    net = resnet18(weights=None)
    names = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
    return nn.Sequential(OrderedDict((n, getattr(net, n)) for n in names))


class MultiStreamROP(nn.Module):
    """MS-ROP: ResNet18, DenseNet121 and EfficientNetB2 in parallel, fused by a 1×1 conv.

    At 256² each stream ends in an 8×8 map (512, 1024, 1408 channels); the
    concatenation (8×8×2944) goes through a 1×1 conv to ``fused_channels`` with
    ReLU, adaptive average pooling and a fully connected layer.
    """

    def __init__(self, num_classes: int = 2, fused_channels: int = 256):
        super().__init__()
        from torchvision.models import densenet121, efficientnet_b2

        self.normalise = Normalise()
        self.resnet = _resnet18_features()
        self.densenet = densenet121(weights=None).features
        self.efficientnet = efficientnet_b2(weights=None).features
        self.fusion = nn.Sequential(
            nn.Conv2d(sum(STREAM_CHANNELS), fused_channels, 1), nn.ReLU(inplace=True)
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(fused_channels, num_classes)

    def streams(self, x: torch.Tensor) -> torch.Tensor:
        """The concatenated stream features (N×2944×H/32×W/32)."""
        x = self.normalise(x)
        # torchvision's DenseNet applies its final ReLU outside ``features``.
        maps = [self.resnet(x), F.relu(self.densenet(x)), self.efficientnet(x)]
        return torch.cat(maps, dim=1)

    @property
    def cam_layer(self) -> nn.Module:
        """The layer Grad-CAM explains: the fusion conv's output (8×8 at 256²)."""
        return self.fusion

    def macs(self, size: int = 256) -> int:
        """Multiply-accumulates per image at ``size``² (the seed's input is 256²)."""
        from eyescan.api import cost

        return cost.count_macs(self, size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fused = self.fusion(self.streams(x))
        return self.fc(torch.flatten(self.pool(fused), 1))


#: Student trunks: torchvision builder and the index of the classifier's dropout.
STUDENT_BACKBONES = {
    "mobilenet_v2": ("mobilenet_v2", 0),
    "mobilenet_v3_small": ("mobilenet_v3_small", 2),
}


class MobileNetROP(nn.Module):
    """MN-ROP: torchvision MobileNetV2 followed by a fully connected layer to the classes.

    With ``embedding=1000`` MobileNetV2 keeps its ImageNet 1000-way classifier
    as a 1000-d embedding and a 1000→2 layer follows: 3.51 M parameters, the
    count the seed reports (3.50 M). ``embedding=0`` replaces the classifier by
    a direct 1280→2 layer (2.23 M parameters). ``backbone="mobilenet_v3_small"``
    swaps the trunk for MobileNetV3-Small, the architecture of the drgrade
    grader's fundus-pretrained backbone file (so that file loads whole).
    """

    def __init__(
        self,
        num_classes: int = 2,
        embedding: int = 1000,
        dropout: float = 0.2,
        backbone: str = "mobilenet_v2",
    ):
        super().__init__()
        import torchvision.models as tv

        if backbone not in STUDENT_BACKBONES:
            raise ValueError(f"mn-rop backbone {backbone!r}: choose {', '.join(STUDENT_BACKBONES)}")
        builder, drop = STUDENT_BACKBONES[backbone]
        self.normalise = Normalise()
        self.mobilenet = getattr(tv, builder)(weights=None, num_classes=embedding or num_classes)
        self.mobilenet.classifier[drop].p = dropout
        self.head = nn.Linear(embedding, num_classes) if embedding else nn.Identity()

    @property
    def cam_layer(self) -> nn.Module:
        """The layer Grad-CAM explains: the trunk's last conv block (8×8 at 256²)."""
        return self.mobilenet.features[-1]

    def macs(self, size: int = 256) -> int:
        """Multiply-accumulates per image at ``size``² (the seed's input is 256²)."""
        from eyescan.api import cost

        return cost.count_macs(self, size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.mobilenet(self.normalise(x)))


def ms_rop(num_classes: int = 2, fused_channels: int = 256) -> MultiStreamROP:
    return MultiStreamROP(num_classes, fused_channels)


def mn_rop(
    num_classes: int = 2,
    embedding: int = 1000,
    dropout: float = 0.2,
    backbone: str = "mobilenet_v2",
) -> MobileNetROP:
    return MobileNetROP(num_classes, embedding, dropout, backbone)


#: Old DenseNet checkpoints name layers ``norm.1``; torchvision renames them ``norm1``.
DENSENET_RENAME = {
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\."
    r"((?:[12])\.(?:weight|bias|running_mean|running_var))$": r"\1\2"
}
#: What a torchvision ImageNet file needs to fit each backbone (``"into"`` of a recipe's
#: ``init`` spec): the ``prefix`` to strip and the key ``rename``.
BACKBONE_INIT = {
    "resnet": {},  # resnet18-*.pth: fc.* does not fit and is left out
    "densenet": {"prefix": "features.", "rename": DENSENET_RENAME},  # densenet121-*.pth
    "efficientnet": {"prefix": "features."},  # efficientnet_b2_*.pth
    "mobilenet": {},  # mobilenet_v2-*.pth (the ImageNet classifier fits embedding=1000)
}


def init_specs(spec: Any) -> Any:
    """A recipe's ``init`` with each backbone's ``prefix``/``rename`` filled in where unset.

    ``{"file": "densenet121-a639ec97.pth", "into": "densenet"}`` thus reads a
    torchvision file as it is; explicit keys win. Strings and ``"none"`` pass through.
    """
    if isinstance(spec, list):
        return [init_specs(item) for item in spec]
    if isinstance(spec, dict) and spec.get("into") in BACKBONE_INIT:
        return {**BACKBONE_INIT[spec["into"]], **spec}
    return spec
