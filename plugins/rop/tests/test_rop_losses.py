"""The distillation loss against a hand computation, including the T² scaling."""

from __future__ import annotations

import math

import pytest
import torch

from eyescan_rop.losses import ALPHA, TEMPERATURE, distillation_loss, make_distillation


def _softmax(z: list[float]) -> list[float]:
    e = [math.exp(v) for v in z]
    return [v / sum(e) for v in e]


def _hand(student, teacher, label, alpha, t):
    p = _softmax([v / t for v in teacher])
    q = _softmax([v / t for v in student])
    kl = sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
    ce = -math.log(_softmax(student)[label])
    return alpha * t * t * kl + (1 - alpha) * ce, kl, ce


def test_defaults_are_the_unswapped_seed_values():
    assert (ALPHA, TEMPERATURE) == (0.95, 5.0)


@pytest.mark.parametrize("alpha,t", [(0.95, 5.0), (0.5, 2.0), (1.0, 1.0), (0.0, 3.0)])
def test_matches_hand_computation(alpha, t):
    student, teacher = [[1.0, 2.0], [0.5, -1.0]], [[3.0, 0.0], [-2.0, 1.5]]
    labels = [1, 0]
    got = distillation_loss(
        torch.tensor(student), torch.tensor(teacher), torch.tensor(labels), alpha, t
    )
    hand = sum(_hand(s, te, y, alpha, t)[0] for s, te, y in zip(student, teacher, labels)) / 2
    assert float(got) == pytest.approx(hand, rel=1e-5)


def test_soft_term_is_scaled_by_t_squared():
    s, te, y = torch.tensor([[0.3, 1.1]]), torch.tensor([[2.0, -0.5]]), torch.tensor([0])
    for t in (1.0, 2.0, 5.0, 10.0):
        _, kl, _ = _hand([0.3, 1.1], [2.0, -0.5], 0, 1.0, t)
        assert float(distillation_loss(s, te, y, alpha=1.0, temperature=t)) == pytest.approx(
            t * t * kl, rel=1e-5
        )


def test_alpha_zero_is_cross_entropy_and_equal_logits_cost_no_kl():
    s, y = torch.tensor([[0.2, -0.7], [1.0, 0.0]]), torch.tensor([0, 1])
    ce = torch.nn.functional.cross_entropy(s, y)
    assert float(distillation_loss(s, s + 9.0, y, alpha=0.0)) == pytest.approx(float(ce))
    assert float(distillation_loss(s, s, y, alpha=1.0)) == pytest.approx(0.0, abs=1e-6)


def test_teacher_gets_no_gradient_and_bad_settings_fail():
    s = torch.tensor([[0.1, 0.4]], requires_grad=True)
    te = torch.tensor([[1.0, 0.0]], requires_grad=True)
    make_distillation()(s, {"teacher_logits": te, "label": torch.tensor([1])}).backward()
    assert s.grad is not None and te.grad is None
    with pytest.raises(ValueError, match="alpha"):
        distillation_loss(s, te, torch.tensor([1]), alpha=5.0, temperature=0.95)
    with pytest.raises(ValueError, match="temperature"):
        distillation_loss(s, te, torch.tensor([1]), temperature=0.0)
