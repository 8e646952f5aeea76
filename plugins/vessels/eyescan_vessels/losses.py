"""Vessel losses: binary cross-entropy (the seed's) and BCE + soft Dice."""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F


def _masked(
    outputs: torch.Tensor, batch: dict[str, Any]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    target = batch["target"]
    weight = batch.get("fov", torch.ones_like(target))
    return outputs, target, weight


def bce(outputs: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
    """Binary cross-entropy on logits, averaged over FOV pixels."""
    logits, target, weight = _masked(outputs, batch)
    loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return (loss * weight).sum() / weight.sum().clamp_min(1.0)


def soft_dice(outputs: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
    """1 − soft Dice of the sigmoid probabilities inside the FOV (whole batch)."""
    logits, target, weight = _masked(outputs, batch)
    prob = torch.sigmoid(logits) * weight
    target = target * weight
    return 1 - (2 * (prob * target).sum() + 1) / (prob.sum() + target.sum() + 1)


def make_bce(**_: Any):
    return bce


def make_bce_dice(dice_weight: float = 0.5, **_: Any):
    def loss(outputs: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        return bce(outputs, batch) + dice_weight * soft_dice(outputs, batch)

    return loss
