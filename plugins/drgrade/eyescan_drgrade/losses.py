"""DR losses: cross-entropy over grades, cumulative (ordinal) BCE, the masked DME-risk
cross-entropy, Faster R-CNN's sum.

Grader outputs are ``[grade logits | DME logits]`` (``models.GradeNet``): the grade
losses read the first columns, the DME loss the last three.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F

from eyescan_drgrade.lesions import DME_LEVELS, N_GRADES

#: Target of an image whose DME risk is not known (APTOS): left out of the DME loss.
UNKNOWN = -1


def grade_cross_entropy(outputs: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
    """Plain 5-class cross-entropy on the grade."""
    return F.cross_entropy(outputs[:, :N_GRADES], batch["grade"])


def ordinal_targets(grade: torch.Tensor, thresholds: int) -> torch.Tensor:
    """Cumulative targets: column ``k`` is 1 where grade > k."""
    return (grade[:, None] > torch.arange(thresholds, device=grade.device)[None]).float()


def grade_ordinal(outputs: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
    """Binary cross-entropy of the 4 "grade > k" logits (cumulative-link model)."""
    logits = outputs[:, : N_GRADES - 1]
    return F.binary_cross_entropy_with_logits(logits, ordinal_targets(batch["grade"], N_GRADES - 1))


def dme_cross_entropy(outputs: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
    """3-class cross-entropy of the DME-risk logits of the images whose risk is known
    (``batch["dme"]`` ≥ 0; :data:`UNKNOWN` elsewhere), summed and divided by the
    batch size: every labelled image weighs as much as in the grade loss, and a batch
    without any gives 0 (never NaN), so a batch of APTOS images trains the grade only.

    Not the mean over the labelled images: with IDRiD's 412 beside APTOS's 3 000, a
    batch of 16 holds about two, and their mean cross-entropy, at full weight,
    swamped the grade's gradient (in a one-off diagnostic run, 47 steps on the real
    mix at 128 px: grade loss 0.54 with it, 0.42 without the DME head).
    """
    target = batch["dme"]
    known = target != UNKNOWN
    logits = outputs[:, -DME_LEVELS:]
    if not bool(known.any()):
        return logits.sum() * 0.0  # keeps the graph (and DDP's gradient bookkeeping)
    return F.cross_entropy(logits[known], target[known], reduction="sum") / len(target)


def detector_total(outputs: dict[str, torch.Tensor], batch: dict[str, Any]) -> torch.Tensor:
    """Faster R-CNN's own losses (RPN objectness + box, classifier + box), summed."""
    return sum(outputs.values())


def make_ce(**_: Any):
    return grade_cross_entropy


def make_ordinal(**_: Any):
    return grade_ordinal


def make_dme(**_: Any):
    return dme_cross_entropy


def make_detector(**_: Any):
    return detector_total
