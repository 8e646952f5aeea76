"""DR models: a grading classifier on a torchvision backbone, a Faster R-CNN lesion
detector, and the two together (``DRScreen``).

Every network is built with ``weights=None``: nothing is downloaded. Transfer
learning starts from a local weights file named in the recipe's ``"init"``
(``eyescan.api.init``; see the README), never from torch's cache.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchvision import models as tv
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.ops import MultiScaleRoIAlign

from eyescan_drgrade.lesions import COMBINE_RULES, DME_LEVELS, LESION_CLASSES, N_GRADES

#: Backbones a grader can use: torchvision builder, classifier attribute, CAM layer.
BACKBONES: dict[str, tuple[Any, str, str]] = {
    "mobilenet_v3_small": (tv.mobilenet_v3_small, "classifier", "features"),
    "mobilenet_v3_large": (tv.mobilenet_v3_large, "classifier", "features"),
    "efficientnet_b0": (tv.efficientnet_b0, "classifier", "features"),
    "resnet18": (tv.resnet18, "fc", "layer4"),
}
HEADS = ("ordinal", "ce")
#: ImageNet normalisation (what torchvision backbones were trained with).
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def _in_features(head: nn.Module) -> int:
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    return linears[0].in_features if linears else int(head.in_features)


class GradeNet(nn.Module):
    """A torchvision backbone with a small DR-grade head and an optional DME-risk head.

    ``head="ce"``: 5 logits (softmax over grades). ``head="ordinal"``: 4 logits,
    one per threshold, logit ``k`` for "grade > k" (cumulative-link model).
    ``dme=True`` adds 3 logits for the risk of macular edema (0-2, softmax):
    the output is then ``[grade logits | DME logits]`` (N×7 or N×8), one tensor,
    so Grad-CAM, export and benchmarks see one output. Input: N×3×S×S,
    ImageNet-normalised, ``S = image_size``, the square FOV view cropped with
    ``fov_margin`` (0: as models made before the option were trained).
    """

    def __init__(
        self,
        backbone: str = "mobilenet_v3_small",
        head: str = "ordinal",
        image_size: int = 128,
        dropout: float = 0.2,
        dme: bool = False,
        fov_margin: float = 0.0,
    ):
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {backbone!r} ({', '.join(BACKBONES)})")
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r} ({', '.join(HEADS)})")
        build, classifier, self._cam_name = BACKBONES[backbone]
        self.backbone, self.head, self.image_size = backbone, head, int(image_size)
        self.dme, self.fov_margin = bool(dme), float(fov_margin)
        self.net = build(weights=None)
        self.grade_outputs = N_GRADES if head == "ce" else N_GRADES - 1
        outputs = self.grade_outputs + (DME_LEVELS if self.dme else 0)
        features = _in_features(getattr(self.net, classifier))
        setattr(
            self.net, classifier, nn.Sequential(nn.Dropout(dropout), nn.Linear(features, outputs))
        )

    @property
    def cam_layer(self) -> nn.Module:
        """The last convolutional stage (for Grad-CAM)."""
        layer = getattr(self.net, self._cam_name)
        return layer[-1] if isinstance(layer, nn.Sequential) else layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def grade_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """The grade part of the output (N×4 ordinal, N×5 CE)."""
        return logits[:, : self.grade_outputs]

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Per-grade probabilities (N×5) from the logits."""
        logits = self.grade_logits(logits)
        if self.head == "ce":
            return torch.softmax(logits, dim=1)
        above = torch.cummin(torch.sigmoid(logits), dim=1).values  # P(grade > k), monotone
        ones, zeros = torch.ones_like(above[:, :1]), torch.zeros_like(above[:, :1])
        cumulative = torch.cat([ones, above, zeros], dim=1)
        return cumulative[:, :-1] - cumulative[:, 1:]

    def grades(self, logits: torch.Tensor) -> torch.Tensor:
        """Predicted grades: argmax (CE) or the number of thresholds passed (ordinal)."""
        logits = self.grade_logits(logits)
        if self.head == "ce":
            return logits.argmax(dim=1)
        return (torch.cummin(torch.sigmoid(logits), dim=1).values > 0.5).sum(dim=1)

    def referable_probability(self, logits: torch.Tensor) -> torch.Tensor:
        """P(grade ≥ 2)."""
        return self.probabilities(logits)[:, 2:].sum(dim=1)

    def dme_probabilities(self, logits: torch.Tensor) -> torch.Tensor | None:
        """P(DME risk 0, 1, 2) (N×3), or None without the DME head."""
        if not self.dme:
            return None
        return torch.softmax(logits[:, self.grade_outputs :], dim=1)


class LesionDetector(FasterRCNN):
    """Faster R-CNN for microaneurysms, haemorrhages and hard exudates.

    Light by default for the CPU: a MobileNetV3-Small trunk (up to stride 16)
    under a ``fpn_channels``-wide FPN on strides 4, 8 and 16, small anchors for
    small lesions, and a ``representation``-wide box head. Input: square images
    of ``image_size`` pixels (the FOV-cropped, padded view, resized).
    ``score_threshold`` is the operating point for counting and drawing lesions;
    ``severe_haemorrhages`` and ``moderate_lesions`` feed the lesion-based grade
    (``lesions.grade_from_lesions``); ``fov_margin`` as the
    grader's.
    """

    def __init__(
        self,
        image_size: int = 256,
        fpn_channels: int = 64,
        representation: int = 128,
        anchor_sizes: tuple[int, ...] = (6, 12, 24, 48),
        score_threshold: float = 0.5,
        severe_haemorrhages: int = 10,
        moderate_lesions: int = 1,
        detections_per_image: int = 150,
        fov_margin: float = 0.0,
    ):
        trunk = tv.mobilenet_v3_small(weights=None).features
        backbone = BackboneWithFPN(
            trunk, {"1": "0", "3": "1", "8": "2"}, [16, 24, 48], fpn_channels
        )
        levels = len(anchor_sizes)
        super().__init__(
            backbone,
            min_size=image_size,
            max_size=image_size,
            rpn_anchor_generator=AnchorGenerator(
                tuple((int(s),) for s in anchor_sizes), ((0.5, 1.0, 2.0),) * levels
            ),
            box_roi_pool=MultiScaleRoIAlign(["0", "1", "2"], 7, 2),
            box_head=TwoMLPHead(fpn_channels * 49, representation),
            box_predictor=FastRCNNPredictor(representation, len(LESION_CLASSES) + 1),
            rpn_pre_nms_top_n_train=1000,
            rpn_post_nms_top_n_train=500,
            rpn_pre_nms_top_n_test=600,
            rpn_post_nms_top_n_test=300,
            box_batch_size_per_image=128,
            box_detections_per_img=detections_per_image,
        )
        self.trunk = "mobilenet_v3_small"
        self.image_size = int(image_size)
        self.score_threshold = float(score_threshold)
        self.severe_haemorrhages = int(severe_haemorrhages)
        self.moderate_lesions = int(moderate_lesions)
        self.fov_margin = float(fov_margin)


def large_detector(
    image_size: int = 512,
    score_threshold: float = 0.5,
    fov_margin: float = 0.0,
    severe_haemorrhages: int = 10,
    moderate_lesions: int = 1,
    **_: Any,
) -> FasterRCNN:
    """torchvision's ``fasterrcnn_mobilenet_v3_large_320_fpn`` (19 M parameters), with
    anchors 16-256 for lesions; for GPUs or patient CPUs."""
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn

    model = fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None,
        weights_backbone=None,
        num_classes=len(LESION_CLASSES) + 1,
        min_size=image_size,
        max_size=image_size,
    )
    # Same number of anchors per location as torchvision's (15), so the RPN head fits.
    model.rpn.anchor_generator = AnchorGenerator(
        ((16, 32, 64, 128, 256),) * 3, ((0.5, 1.0, 2.0),) * 3
    )
    model.trunk = "mobilenet_v3_large"
    model.image_size = int(image_size)
    model.score_threshold = float(score_threshold)
    model.severe_haemorrhages = int(severe_haemorrhages)
    model.moderate_lesions = int(moderate_lesions)
    model.fov_margin = float(fov_margin)
    return model


class DRScreen(nn.Module):
    """Grader and lesion detector in one weights file, with the combination rule."""

    #: Read by ``eyescan export``: the task code needs the two parts, one graph cannot hold both.
    onnx_unsupported = (
        "a grader and a detector in one file; export each (--model grader, --model detector)"
    )

    def __init__(
        self,
        grader: dict[str, Any] | None = None,
        detector: dict[str, Any] | None = None,
        combine: str = "max",
        gradcam: bool = False,
    ):
        super().__init__()
        if combine not in COMBINE_RULES:
            raise ValueError(f"unknown combination rule {combine!r} ({', '.join(COMBINE_RULES)})")
        self.grader = GradeNet(**(grader or {}))
        self.detector = LesionDetector(**(detector or {}))
        self.combine, self.gradcam = combine, bool(gradcam)

    def forward(self, views: list[dict[str, torch.Tensor]]) -> tuple[torch.Tensor, Any]:
        """Grader logits (N×K) and detections of N images, each given as its two views:
        ``{"grader": 3×S×S normalised, "detector": 3×S'×S' in [0, 1]}``."""
        x = torch.stack([v["grader"] for v in views])
        return self.grader(x), self.detector([v["detector"] for v in views])


def parts(module: nn.Module) -> tuple[GradeNet | None, FasterRCNN | None]:
    """The grader and the detector inside a model (either may be None)."""
    if isinstance(module, DRScreen):
        return module.grader, module.detector
    if isinstance(module, GradeNet):
        return module, None
    if isinstance(module, FasterRCNN):
        return None, module
    raise TypeError(f"not a drgrade model: {type(module).__name__}")


def grader(**options: Any) -> GradeNet:
    return GradeNet(**options)


def detector(**options: Any) -> LesionDetector:
    return LesionDetector(**options)


def screen(**options: Any) -> DRScreen:
    return DRScreen(**options)
