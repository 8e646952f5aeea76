"""What a model costs: parameters and FLOPs of one forward call (torch's own counter)."""

from __future__ import annotations

from typing import Any


def count_parameters(module: Any) -> int:
    """Number of parameters (trainable or not)."""
    return int(sum(p.numel() for p in module.parameters()))


def count_flops(module: Any, *args: Any) -> int:
    """FLOPs of one forward call ``module(*args)`` (2 per multiply-add), in eval mode.

    Counted by ``torch.utils.flop_counter`` (convolutions, matmuls, attention);
    element-wise operations are not counted, as in the papers' tables.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    was_training = module.training
    module.eval()
    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            module(*args)
    finally:
        module.train(was_training)
    return int(counter.get_total_flops())


def count_macs(module: Any, size: int | tuple[int, int], channels: int = 3) -> int:
    """Multiply-adds of one forward call on a zero image of ``size`` (half the FLOPs)."""
    import torch

    h, w = (size, size) if isinstance(size, int) else size
    return count_flops(module, torch.zeros(1, channels, h, w)) // 2
