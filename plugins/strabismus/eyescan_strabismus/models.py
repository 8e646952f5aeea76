"""RF-CNN networks: the plain CNN, the RF-CNN Lite classifier and the eye-region detector.

The inverted-residual networks follow the seed's tables row by row (``LITE_TABLE``
for the classifier at 224², ``DETECTOR_TABLE`` for the detector backbone at
256²); each table row is one named stage, so tests can check the shapes stage
by stage. ``t`` is the expansion factor, ``c`` the output channels, ``n`` the
repeats and ``s`` the stride of the first repeat (as in MobileNetV2, whose
blocks these are; the tables keep the t = 1 bottleneck at stride 2).

The eye-region detector is torchvision's Faster R-CNN on the table's backbone
(R-FCN, the seed's detector, is not in torchvision; see the README).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

#: Class index of the classifiers' outputs: 0 normal, 1 strabismus.
CLASSES = ("normal", "strabismus")


@dataclass(frozen=True)
class Row:
    """One row of a seed table: input size and channels, operator, t, c, n, s."""

    size: int
    channels: int
    operator: str  # "conv3x3", "bottleneck", "conv1x1", "avgpool"
    t: int | None
    c: int | None
    n: int
    s: int | None


#: RF-CNN Lite classifier, input 224×224×3 (the seed's table).
LITE_TABLE: tuple[Row, ...] = (
    Row(224, 3, "conv3x3", None, 32, 1, 2),
    Row(112, 32, "bottleneck", 1, 16, 1, 2),
    Row(56, 16, "bottleneck", 6, 32, 2, 2),
    Row(28, 32, "bottleneck", 6, 64, 3, 2),
    Row(14, 64, "bottleneck", 6, 128, 4, 2),
    Row(7, 128, "conv1x1", None, 1024, 1, 1),
    Row(7, 1024, "avgpool", None, None, 1, None),
    Row(1, 1024, "conv1x1", None, 2, 1, None),
)

#: Detector backbone, input 256×256×3 (the seed's table).
DETECTOR_TABLE: tuple[Row, ...] = (
    Row(256, 3, "conv3x3", None, 32, 1, 2),
    Row(128, 32, "bottleneck", 1, 16, 1, 2),
    Row(64, 16, "bottleneck", 6, 32, 2, 2),
    Row(32, 32, "bottleneck", 6, 64, 3, 2),
    Row(16, 64, "bottleneck", 6, 128, 4, 2),
    Row(8, 128, "bottleneck", 6, 256, 3, 1),
    Row(8, 256, "conv1x1", None, 1024, 1, 1),
)


def _scaled(channels: int, width: float) -> int:
    """Channels times the width multiplier, rounded to a multiple of 8 (at least 8)."""
    return max(8, int(channels * width + 4) // 8 * 8) if width != 1.0 else channels


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True):
    """Convolution + batch norm (+ ReLU6)."""
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2 bottleneck: 1×1 expand (t), 3×3 depthwise (stride), linear 1×1 project.

    The identity shortcut is added when the stride is 1 and channels are equal.
    """

    def __init__(self, cin: int, cout: int, stride: int, expansion: int):
        super().__init__()
        hidden = cin * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(conv_bn(cin, hidden, 1))
        layers += [
            conv_bn(hidden, hidden, 3, stride, groups=hidden),
            conv_bn(hidden, cout, 1, act=False),
        ]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.residual else y


def table_stages(table: Sequence[Row], width: float = 1.0) -> nn.Sequential:
    """One named stage per convolutional table row (``stem``, ``bottleneck1``…, ``conv1x1``)."""
    stages: OrderedDict[str, nn.Module] = OrderedDict()
    cin = table[0].channels
    count = 0
    for row in table:
        if row.operator == "avgpool" or row.s is None:
            break  # the classifier's head is built by the classifier
        cout = _scaled(row.c, width) if row.operator != "conv1x1" else row.c
        if row.operator == "conv3x3":
            stages["stem"] = conv_bn(cin, cout, 3, row.s)
        elif row.operator == "bottleneck":
            count += 1
            blocks = [
                InvertedResidual(cin if i == 0 else cout, cout, row.s if i == 0 else 1, row.t)
                for i in range(row.n)
            ]
            stages[f"bottleneck{count}"] = nn.Sequential(*blocks)
        else:  # conv1x1
            stages["conv1x1"] = conv_bn(cin, cout, 1, row.s)
        cin = cout
    return nn.Sequential(stages)


class RFCNNLite(nn.Module):
    """RF-CNN Lite classifier: the seed's inverted-residual table, 7×7 average pool, 1×1 conv.

    Average pooling is adaptive, so inputs other than 224² work (at 224² it is
    exactly the table's 7×7 pooling). Outputs N×2 logits (normal, strabismus).
    """

    table = LITE_TABLE

    def __init__(self, num_classes: int = 2, width: float = 1.0, dropout: float = 0.0):
        super().__init__()
        self.features = table_stages(LITE_TABLE, width)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.classifier = nn.Conv2d(LITE_TABLE[-2].channels, num_classes, 1)
        _init_weights(self)
        nn.init.normal_(self.classifier.weight, 0, 0.01)  # small logits at the start

    @property
    def gradcam_layer(self) -> nn.Module:
        """The last convolutional stage (7×7×1024 at 224²), for Grad-CAM."""
        return self.features.conv1x1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x))
        return self.classifier(self.dropout(x)).flatten(1)


class RFCNNPlain(nn.Module):
    """The original RF-CNN classifier: 5 conv, 3 max-pool and 3 fully connected layers.

    AlexNet-like (the seed names only the layer counts; its figure with the
    channels is not in the text): conv 96 (11, 4), pool, conv 256 (5, 1), pool,
    conv 384, 384, 256 (3, 1), pool, then FC 1024, FC 256, FC 2. Each conv
    carries batch norm (not in the seed) so that it trains from scratch in few
    epochs. A 6×6 adaptive pool before the FC layers (the identity at 224²)
    keeps other input sizes usable.
    """

    channels = (96, 256, 384, 384, 256)
    hidden = (1024, 256)

    def __init__(self, num_classes: int = 2, dropout: float = 0.5):
        super().__init__()
        c1, c2, c3, c4, c5 = self.channels

        def conv(cin: int, cout: int, kernel: int, stride: int, padding: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, kernel, stride, padding, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            )

        self.features = nn.Sequential(
            OrderedDict(
                conv1=conv(3, c1, 11, 4, 2),
                pool1=nn.MaxPool2d(3, 2),
                conv2=conv(c1, c2, 5, 1, 2),
                pool2=nn.MaxPool2d(3, 2),
                conv3=conv(c2, c3, 3, 1, 1),
                conv4=conv(c3, c4, 3, 1, 1),
                conv5=conv(c4, c5, 3, 1, 1),
                pool3=nn.MaxPool2d(3, 2),
            )
        )
        self.pool = nn.AdaptiveAvgPool2d(6)
        h1, h2 = self.hidden
        self.classifier = nn.Sequential(
            OrderedDict(
                drop1=nn.Dropout(dropout),
                fc1=nn.Linear(c5 * 36, h1),
                relu1=nn.ReLU(inplace=True),
                drop2=nn.Dropout(dropout),
                fc2=nn.Linear(h1, h2),
                relu2=nn.ReLU(inplace=True),
                fc3=nn.Linear(h2, num_classes),
            )
        )
        _init_weights(self)

    @property
    def gradcam_layer(self) -> nn.Module:
        return self.features.conv5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)).flatten(1))


def _init_weights(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


class DetectorBackbone(nn.Module):
    """The seed's detector backbone table: 256² → 8×8×1024 (stride 32), one feature map.

    ``width`` scales the bottleneck channels (1.0 = the table); the final 1×1
    conv keeps ``out_channels`` (1024 in the table).
    """

    table = DETECTOR_TABLE

    def __init__(self, width: float = 1.0, out_channels: int = 1024):
        super().__init__()
        rows = list(DETECTOR_TABLE)
        rows[-1] = Row(8, rows[-1].channels, "conv1x1", None, out_channels, 1, 1)
        self.features = table_stages(rows, width)
        self.out_channels = out_channels
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class LightRPNHead(nn.Module):
    """RPN head without torchvision's 3×3 full conv (1024² × 9 weights): depthwise 3×3,
    1×1 to ``hidden`` channels, then objectness and box-delta 1×1 convs per anchor."""

    def __init__(self, in_channels: int, num_anchors: int, hidden: int = 128):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, in_channels, 3, padding=1, groups=in_channels),
            nn.Conv2d(in_channels, hidden, 1),
            nn.ReLU(inplace=True),
        )
        self.cls_logits = nn.Conv2d(hidden, num_anchors, 1)
        self.bbox_pred = nn.Conv2d(hidden, num_anchors * 4, 1)
        for layer in (self.cls_logits, self.bbox_pred):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)

    def forward(
        self, features: list[torch.Tensor]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        logits, deltas = [], []
        for feature in features:
            t = self.conv(feature)
            logits.append(self.cls_logits(t))
            deltas.append(self.bbox_pred(t))
        return logits, deltas


def reduced_roi_align(in_channels: int, reduced: int = 32, output_size: int = 7) -> nn.Module:
    """1×1 conv to ``reduced`` channels on the whole feature map, then RoIAlign to 7×7.

    Reducing once per image before pooling (R-FCN's idea of sharing the work
    that would otherwise be done per RoI) makes RoIAlign, whose CPU backward
    pass dominated training at 512–1024 channels, 16–32× cheaper. A subclass
    of torchvision's ``MultiScaleRoIAlign``, which Faster R-CNN requires.
    """
    from torchvision.ops import MultiScaleRoIAlign

    class ReducedRoIAlign(MultiScaleRoIAlign):
        def __init__(self) -> None:
            super().__init__(["0"], output_size=output_size, sampling_ratio=2)
            self.reduce = nn.Sequential(nn.Conv2d(in_channels, reduced, 1), nn.ReLU(inplace=True))
            self.out_channels = reduced

        def forward(self, x, boxes, image_shapes):
            features = OrderedDict((name, self.reduce(f)) for name, f in x.items())
            return super().forward(features, boxes, image_shapes)

    return ReducedRoIAlign()


class RoIBoxHead(nn.Sequential):
    """Box head on the reduced 7×7 RoI features: one fully connected layer."""

    def __init__(self, in_channels: int, representation: int = 128):
        super().__init__(
            nn.Flatten(),
            nn.Linear(in_channels * 49, representation),
            nn.ReLU(inplace=True),
        )
        self.out_channels = representation


#: Anchor sizes (√area, pixels at the 256² detector input) and aspect ratios (h / w):
#: the eye region (both eyes) is a wide, flat box.
ANCHOR_SIZES = (32, 64, 128)
ANCHOR_RATIOS = (0.25, 0.4, 0.7)


def eye_detector(
    width: float = 1.0,
    out_channels: int = 1024,
    min_size: int = 256,
    max_size: int = 256,
    score_thresh: float = 0.05,
    **_: Any,
) -> nn.Module:
    """Faster R-CNN (torchvision) with the seed's inverted-residual backbone; one class.

    Images are resized so the short side is ``min_size`` (256, the seed's
    detector input) and the long side at most ``max_size``. Class 1 is the eye
    region (one box around both eyes). Nothing is downloaded: the backbone is
    the table's network, initialised at random.
    """
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor

    backbone = DetectorBackbone(width, out_channels)
    anchors = AnchorGenerator(sizes=(ANCHOR_SIZES,), aspect_ratios=(ANCHOR_RATIOS,))
    roi_pool = reduced_roi_align(out_channels)
    box_head = RoIBoxHead(roi_pool.out_channels)
    return FasterRCNN(
        backbone,
        num_classes=None,
        min_size=min_size,
        max_size=max_size,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.25, 0.25, 0.25],
        rpn_anchor_generator=anchors,
        rpn_head=LightRPNHead(out_channels, anchors.num_anchors_per_location()[0]),
        rpn_pre_nms_top_n_train=300,
        rpn_post_nms_top_n_train=100,
        rpn_pre_nms_top_n_test=150,
        rpn_post_nms_top_n_test=30,
        rpn_batch_size_per_image=64,
        box_roi_pool=roi_pool,
        box_head=box_head,
        box_predictor=FastRCNNPredictor(box_head.out_channels, 2),
        box_batch_size_per_image=32,
        box_score_thresh=score_thresh,
        box_detections_per_img=5,
    )


def rfcnn_lite(**options: Any) -> RFCNNLite:
    return RFCNNLite(**options)


def rfcnn_cnn(**options: Any) -> RFCNNPlain:
    return RFCNNPlain(**options)


def parameter_megabytes(module: nn.Module) -> float:
    """Size of the float32 parameters in MB (10⁶ bytes), as the seed's "param memory"."""
    return sum(p.numel() for p in module.parameters()) * 4 / 1e6
