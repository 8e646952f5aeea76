"""Losses: cross-entropy for the classifiers, Faster R-CNN's four losses for the detector."""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F

#: The losses torchvision's Faster R-CNN returns in training mode (RPN and RoI head).
DETECTOR_LOSSES = ("loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg")


def make_cross_entropy(label_smoothing: float = 0.0, **_: Any):
    """Cross-entropy of the N×2 logits against ``batch["label"]``."""

    def loss(outputs: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        return F.cross_entropy(outputs, batch["label"], label_smoothing=label_smoothing)

    return loss


def detector_component(name: str):
    """One of Faster R-CNN's losses, read from the dict the model returns."""

    def loss(outputs: dict[str, torch.Tensor], batch: dict[str, Any]) -> torch.Tensor:
        return outputs[name]

    return loss


def make_detector_loss(**_: Any):
    """The sum of Faster R-CNN's four losses (RPN objectness and box, RoI class and box)."""

    def loss(outputs: dict[str, torch.Tensor], batch: dict[str, Any]) -> torch.Tensor:
        return sum(outputs[name] for name in DETECTOR_LOSSES)

    return loss
