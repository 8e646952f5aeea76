"""DR losses: cross-entropy over grades, cumulative (ordinal) BCE, Faster R-CNN's sum."""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F


def grade_cross_entropy(outputs: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
    """Plain 5-class cross-entropy on the grade."""
    return F.cross_entropy(outputs, batch["grade"])


def ordinal_targets(grade: torch.Tensor, thresholds: int) -> torch.Tensor:
    """Cumulative targets: column ``k`` is 1 where grade > k."""
    return (grade[:, None] > torch.arange(thresholds, device=grade.device)[None]).float()


def grade_ordinal(outputs: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
    """Binary cross-entropy of the 4 "grade > k" logits (cumulative-link model)."""
    targets = ordinal_targets(batch["grade"], outputs.shape[1])
    return F.binary_cross_entropy_with_logits(outputs, targets)


def detector_total(outputs: dict[str, torch.Tensor], batch: dict[str, Any]) -> torch.Tensor:
    """Faster R-CNN's own losses (RPN objectness + box, classifier + box), summed."""
    return sum(outputs.values())


def make_ce(**_: Any):
    return grade_cross_entropy


def make_ordinal(**_: Any):
    return grade_ordinal


def make_detector(**_: Any):
    return detector_total
