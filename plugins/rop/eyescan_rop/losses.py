"""ROP losses: cross-entropy, and the seed's knowledge-distillation loss.

Distillation (Hinton et al., 2015; the seed's eq. 5):

    L = α·T²·KL(q_teacher ‖ q_student) + (1 − α)·CE(student, y),  q = softmax(z / T).

Defaults α = 0.95, T = 5. The seed's text says "α = 5, T = 0.95", which
cannot be meant: α = 5 makes the cross-entropy weight (1 − α) = −4, pushing the
student *away* from the true labels, and T = 0.95 < 1 sharpens rather than
softens the teacher's distribution. Swapped, they are the usual Hinton
setting: a high temperature exposes the teacher's relative confidence in the
wrong class ("dark knowledge"), and since the soft term's gradients shrink as
1/T², the T² factor keeps it on the same scale as the hard term whatever T is.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F

ALPHA = 0.95
TEMPERATURE = 5.0


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    target: torch.Tensor,
    alpha: float = ALPHA,
    temperature: float = TEMPERATURE,
) -> torch.Tensor:
    """α·T²·KL(softmax(t/T) ‖ softmax(s/T)) + (1 − α)·CE(s, y), both batch means."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    t = float(temperature)
    soft_teacher = F.softmax(teacher_logits.detach() / t, dim=1)
    log_student = F.log_softmax(student_logits / t, dim=1)
    kl = F.kl_div(log_student, soft_teacher, reduction="batchmean")
    return alpha * t * t * kl + (1.0 - alpha) * F.cross_entropy(student_logits, target)


def cross_entropy(outputs: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
    """Softmax cross-entropy of the logits against ``batch["label"]``."""
    return F.cross_entropy(outputs, batch["label"])


def make_cross_entropy(**_: Any):
    return cross_entropy


def make_distillation(alpha: float = ALPHA, temperature: float = TEMPERATURE, **_: Any):
    """Loss ``fn(student_logits, batch)`` reading ``batch["teacher_logits"]`` and ``["label"]``."""

    def loss(outputs: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        return distillation_loss(
            outputs, batch["teacher_logits"], batch["label"], alpha, temperature
        )

    return loss
