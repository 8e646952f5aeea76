"""Red-Seg's two training losses and their deep supervision.

Stage 1 — top-k balanced cross-entropy (seed eq. 1–3): per image,

    L1 = (−β Σ_{y=1} log p − (1−β) Σ_{i∈top} log(1−p_i)) / N

``top`` are the k negative pixels with the largest loss, k = ⌈λ·N−⌉ (λ is a
fraction of the negatives), β = k / (k + N+). λ decays stepwise with the
iteration r of M: λ(r) = λ0 − (λ0/(M/S))·⌊r/S⌋ (:class:`LambdaSchedule`).
Stage 2 — FN + FP = Σ (y − p)², divided by N (MSE on probabilities).

Both are divided by N, the image's (valid) pixel count, where the seed's Caffe
losses are sums: so the seed's learning rate η corresponds to η·N here (N =
1072·712 for its images); see the recipes. A batch's loss is the mean of its
images' losses. Logits, targets and ``valid`` masks are N×1×H×W tensors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn import functional as F


@dataclass
class LambdaSchedule:
    """λ(r) = λ0 − (λ0 / (M/S))·⌊r/S⌋: ``lambda0`` λ0, ``period`` S, ``total`` M iterations."""

    lambda0: float = 0.14
    period: int = 10_000
    total: int = 97_200

    def __call__(self, iteration: int) -> float:
        steps = self.total / self.period
        return self.lambda0 - (self.lambda0 / steps) * (int(iteration) // self.period)


def _flat(
    logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    n = logits.shape[0]
    keep = torch.ones_like(target, dtype=torch.bool) if valid is None else valid > 0.5
    return logits.reshape(n, -1), target.reshape(n, -1) > 0.5, keep.reshape(n, -1)


def topk_balanced_bce(
    logits: torch.Tensor,
    target: torch.Tensor,
    fraction: float,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Top-k balanced cross-entropy: the λ = ``fraction`` hardest negatives, β-weighted."""
    logits, positive, keep = _flat(logits, target, valid)
    losses = []
    for z, pos, ok in zip(logits, positive, keep):
        pos_loss = F.softplus(-z[pos & ok])  # −log p
        neg_loss = F.softplus(z[~pos & ok])  # −log(1 − p)
        n_valid = int(ok.sum())
        k = min(neg_loss.numel(), max(1, math.ceil(fraction * neg_loss.numel())))
        top = torch.topk(neg_loss, k, sorted=False).values if k else neg_loss[:0]
        beta = k / (k + pos_loss.numel()) if k + pos_loss.numel() else 0.0
        total = beta * pos_loss.sum() + (1.0 - beta) * top.sum()
        losses.append(total / max(1, n_valid))
    return torch.stack(losses).mean()


def probability_mse(
    logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """(FN + FP) / N = mean of (y − p)² over the valid pixels, per image, then batch mean."""
    logits, positive, keep = _flat(logits, target, valid)
    error = (positive.float() - torch.sigmoid(logits)) ** 2 * keep
    return (error.sum(dim=1) / keep.sum(dim=1).clamp_min(1)).mean()


def weighted_bce(
    logits: torch.Tensor,
    target: torch.Tensor,
    valid: torch.Tensor | None = None,
    pos_weight: float = 20.0,
) -> torch.Tensor:
    """Cross-entropy with lesion pixels weighted ``pos_weight`` times, mean over the valid
    pixels per image, then over the batch (the stage-1 alternative to the top-k loss)."""
    logits, positive, keep = _flat(logits, target, valid)
    weight = torch.where(positive, pos_weight, 1.0) * keep
    losses = F.binary_cross_entropy_with_logits(
        logits, positive.float(), weight=weight, reduction="none"
    )
    return (losses.sum(dim=1) / keep.sum(dim=1).clamp_min(1)).mean()


class TopKBalancedBCE:
    """Stage-1 loss with its λ schedule and the iteration counter that drives it.

    The training loop sets :attr:`iteration` (1-based) before each step; a batch
    may carry ``"topk_fraction"`` to fix λ instead (validation does, so its
    losses compare across epochs).
    """

    def __init__(self, lambda0: float = 0.14, period: int = 10_000, total: int = 97_200):
        self.schedule = LambdaSchedule(lambda0, period, total)
        self.iteration = 1

    @property
    def fraction(self) -> float:
        """λ now, kept positive (at least one negative pixel stays in the loss)."""
        return max(self.schedule(self.iteration), 0.0)

    def __call__(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        valid: torch.Tensor | None = None,
        fraction: float | None = None,
    ) -> torch.Tensor:
        return topk_balanced_bce(
            logits, target, self.fraction if fraction is None else fraction, valid
        )


class DeepSupervision:
    """One pixel loss applied to every supervised map of Red-Seg, summed.

    ``outputs`` is :meth:`RedSeg.deep_outputs`' dict (``ma/conv2`` … ``he/fused``);
    the batch holds targets ``ma`` and ``he``, optionally ``valid`` and (top-k
    only) ``topk_fraction``. Call it for the sum (the registry's loss), or use
    :meth:`term` for one map's loss.
    """

    def __init__(self, pixel_loss: Any):
        self.pixel_loss = pixel_loss

    def term(self, name: str):
        branch = name.split("/")[0]

        def loss(outputs: dict[str, torch.Tensor], batch: dict[str, Any]) -> torch.Tensor:
            fixed = {"fraction": batch["topk_fraction"]} if "topk_fraction" in batch else {}
            return self.pixel_loss(outputs[name], batch[branch], batch.get("valid"), **fixed)

        return loss

    def __call__(self, outputs: dict[str, torch.Tensor], batch: dict[str, Any]) -> torch.Tensor:
        return torch.stack([self.term(name)(outputs, batch) for name in outputs]).sum()


def make_topk(lambda0: float = 0.14, period: int = 10_000, total: int = 97_200, **_: Any):
    return DeepSupervision(TopKBalancedBCE(lambda0, period, total))


def make_mse(**_: Any):
    return DeepSupervision(probability_mse)
