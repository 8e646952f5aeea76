"""ROP classifiers: the multi-stream teacher ``ms-rop`` and the MobileNetV2 student ``mn-rop``.

Both map an N×3×H×W image in [0, 1] (normalised inside) to N×2 logits. Backbones
are torchvision's, built with ``weights=None``; ImageNet weights are copied in
by :func:`init_from_imagenet` only from files already on disk (never downloaded).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path

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
        return count_macs(self, size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fused = self.fusion(self.streams(x))
        return self.fc(torch.flatten(self.pool(fused), 1))


class MobileNetROP(nn.Module):
    """MN-ROP: torchvision MobileNetV2 followed by a fully connected layer to the classes.

    With ``embedding=1000`` MobileNetV2 keeps its ImageNet 1000-way classifier
    as a 1000-d embedding and a 1000→2 layer follows: 3.51 M parameters, the
    count the seed reports (3.50 M). ``embedding=0`` replaces the classifier by
    a direct 1280→2 layer (2.23 M parameters).
    """

    def __init__(self, num_classes: int = 2, embedding: int = 1000, dropout: float = 0.2):
        super().__init__()
        from torchvision.models import mobilenet_v2

        self.normalise = Normalise()
        self.mobilenet = mobilenet_v2(weights=None, num_classes=embedding or num_classes)
        self.mobilenet.classifier[0].p = dropout
        self.head = nn.Linear(embedding, num_classes) if embedding else nn.Identity()

    @property
    def cam_layer(self) -> nn.Module:
        """The layer Grad-CAM explains: MobileNetV2's last conv block (8×8 at 256²)."""
        return self.mobilenet.features[-1]

    def macs(self, size: int = 256) -> int:
        """Multiply-accumulates per image at ``size``² (the seed's input is 256²)."""
        return count_macs(self, size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.mobilenet(self.normalise(x)))


def ms_rop(num_classes: int = 2, fused_channels: int = 256) -> MultiStreamROP:
    return MultiStreamROP(num_classes, fused_channels)


def mn_rop(num_classes: int = 2, embedding: int = 1000, dropout: float = 0.2) -> MobileNetROP:
    return MobileNetROP(num_classes, embedding, dropout)


def count_macs(module: nn.Module, size: int = 256) -> int:
    """Multiply-accumulates of one forward pass on a 1×3×size×size input.

    Counted with :class:`torch.utils.flop_counter.FlopCounterMode` (FLOPs / 2;
    convolutions and matrix products) with the weights swapped for ``meta``
    tensors, so nothing is computed and the model is left untouched.
    """
    from torch.func import functional_call
    from torch.utils.flop_counter import FlopCounterMode

    tensors = {**dict(module.named_parameters()), **dict(module.named_buffers())}
    meta = {name: t.to("meta") for name, t in tensors.items()}
    x = torch.zeros(1, 3, size, size, device="meta")
    counter = FlopCounterMode(display=False)
    training = module.training
    module.eval()
    try:
        with counter, torch.no_grad():
            functional_call(module, meta, (x,))
    finally:
        module.train(training)
    return int(counter.get_total_flops() // 2)


#: torchvision weight enums of each backbone; the file name comes from its URL.
_IMAGENET_WEIGHTS = {
    "resnet18": "ResNet18_Weights",
    "densenet121": "DenseNet121_Weights",
    "efficientnet_b2": "EfficientNet_B2_Weights",
    "mobilenet_v2": "MobileNet_V2_Weights",
}
#: Old DenseNet checkpoints name layers ``norm.1``; torchvision renames them ``norm1``.
_DENSENET_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


def imagenet_files(backbone: str, directory: Path | str | None = None) -> list[Path]:
    """Where torchvision's ImageNet weights for ``backbone`` would lie on disk (V1, V2, …).

    ``directory`` defaults to torch's cache (``$TORCH_HOME/hub/checkpoints``),
    where ``torchvision`` keeps the files it downloaded.
    """
    import torchvision.models as tvm

    folder = Path(directory) if directory else Path(torch.hub.get_dir()) / "checkpoints"
    return [folder / w.url.rsplit("/", 1)[-1] for w in getattr(tvm, _IMAGENET_WEIGHTS[backbone])]


def _imagenet_state(backbone: str, directory: Path | str | None) -> dict | None:
    path = next((p for p in imagenet_files(backbone, directory) if p.exists()), None)
    if path is None:
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if backbone == "densenet121":
        state = {_DENSENET_KEY.sub(r"\1\2", k): v for k, v in state.items()}
    return state


def _strip(state: dict, prefix: str) -> dict:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def init_from_imagenet(model: nn.Module, directory: Path | str | None = None) -> list[str]:
    """Copy torchvision ImageNet weights into ``model``'s backbones where the files exist.

    Never downloads: backbones whose file is missing keep their random
    initialisation. Returns the names of the backbones that were loaded.
    """
    loaded = []
    if isinstance(model, MultiStreamROP):
        streams = {
            "resnet18": (model.resnet, lambda s: {k: v for k, v in s.items() if "fc." not in k}),
            "densenet121": (model.densenet, lambda s: _strip(s, "features.")),
            "efficientnet_b2": (model.efficientnet, lambda s: _strip(s, "features.")),
        }
    elif isinstance(model, MobileNetROP):
        if model.mobilenet.classifier[1].out_features == 1000:  # the ImageNet head is kept
            streams = {"mobilenet_v2": (model.mobilenet, lambda s: s)}
        else:
            streams = {"mobilenet_v2": (model.mobilenet.features, lambda s: _strip(s, "features."))}
    else:
        raise TypeError(f"no ImageNet backbones known for {type(model).__name__}")
    for backbone, (module, select) in streams.items():
        state = _imagenet_state(backbone, directory)
        if state is None:
            continue
        module.load_state_dict(select(state))
        loaded.append(backbone)
    return loaded
