"""Time a Red-Seg training step on this CPU, by channel width and crop size (to size a recipe).

    OMP_NUM_THREADS=1 python plugins/redlesion/scripts/train_speed.py \
        --widths 1.0,0.5,0.25 --sizes 256,384,512 --batch 2 --repeats 2 [--mobilenet]

One step: forward on a batch of random crops, the stage-1 loss (top-k balanced
BCE, λ = 0.14) on the fused MA and HE maps, backward, an Adam step. Median of
``--repeats`` timed steps after one warm-up, in ms per crop, and the estimated
minutes per epoch of ``--images`` training images at ``--crops`` crops each.
``--mobilenet`` also times ``redseg-mobilenet`` (the shipped model; its one width).
One JSON object per line.
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch

from eyescan.api import benchmarking
from eyescan_redlesion.losses import topk_balanced_bce
from eyescan_redlesion.models import redseg, redseg_mobilenet


def step_ms(model: torch.nn.Module, size: int, batch: int, repeats: int) -> float:
    torch.manual_seed(0)
    optimiser = torch.optim.Adam(model.parameters(), 1e-4)
    x = torch.rand(batch, 3, size, size)
    target = (torch.rand(batch, 2, size, size) > 0.995).float()

    def step() -> None:
        logits = model(x)
        loss = topk_balanced_bce(logits[:, :1], target[:, :1], 0.14)
        loss = loss + topk_balanced_bce(logits[:, 1:], target[:, 1:], 0.14)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    return 1000 * statistics.median(benchmarking.timed(step, repeats, warmup=1)) / batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widths", default="1.0,0.5,0.25")
    parser.add_argument("--sizes", default="256,384,512")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--images", type=int, default=54, help="training images per epoch")
    parser.add_argument("--crops", type=int, default=4, help="crops per image per epoch")
    parser.add_argument("--mobilenet", action="store_true", help="also time redseg-mobilenet")
    args = parser.parse_args()
    models = [("redseg", float(w), redseg) for w in args.widths.split(",") if w]
    if args.mobilenet:
        models.append(("redseg-mobilenet", 1.0, redseg_mobilenet))
    for name, width, factory in models:
        for size in (int(s) for s in args.sizes.split(",")):
            torch.manual_seed(0)
            model = factory(width=width)
            ms = step_ms(model, size, args.batch, args.repeats)
            epoch = ms * args.images * args.crops / 60_000
            print(json.dumps({
                "model": name, "width": width, "size": size, "batch": args.batch,
                "threads": torch.get_num_threads(),
                "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
                "train_ms_per_crop": round(ms, 1), "epoch_minutes": round(epoch, 1),
            }), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
