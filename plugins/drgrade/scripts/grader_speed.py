"""Time the grader on this CPU: ms per image for inference and for a training step.

    OMP_NUM_THREADS=1 python plugins/drgrade/scripts/grader_speed.py \
        --backbones mobilenet_v3_small,mobilenet_v3_large,efficientnet_b0,resnet18 \
        --sizes 256,384,448,512 --batch 8 --repeats 3

One batch of random images per backbone and size (the DME head on, as a real
run has it): inference is ``model(x)`` in eval mode without gradients; a
training step is forward, both losses, backward and an AdamW step. The median
of ``--repeats`` timed runs after one warm-up, divided by the batch size.
Prints one JSON object per line.
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch

from eyescan.api import benchmarking
from eyescan_drgrade.losses import dme_cross_entropy, grade_ordinal
from eyescan_drgrade.models import GradeNet


def _median_ms(run, repeats: int) -> float:
    return statistics.median(benchmarking.timed(run, repeats, warmup=1)) * 1000


def measure(backbone: str, size: int, batch: int, repeats: int) -> dict:
    torch.manual_seed(0)
    model = GradeNet(backbone=backbone, image_size=size, dme=True)
    x = torch.randn(batch, 3, size, size)
    target = {"grade": torch.arange(batch) % 5, "dme": torch.arange(batch) % 3}
    optimiser = torch.optim.AdamW(model.parameters(), 1e-4)

    def infer() -> None:
        model.eval()
        with torch.no_grad():
            model(x)

    def step() -> None:
        model.train()
        out = model(x)
        loss = grade_ordinal(out, target) + dme_cross_entropy(out, target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    return {
        "backbone": backbone,
        "size": size,
        "batch": batch,
        "threads": torch.get_num_threads(),
        "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "infer_ms_per_image": round(_median_ms(infer, repeats) / batch, 1),
        "train_ms_per_image": round(_median_ms(step, repeats) / batch, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", default="mobilenet_v3_small,efficientnet_b0,resnet18")
    parser.add_argument("--sizes", default="256,384,448,512")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for backbone in args.backbones.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            print(json.dumps(measure(backbone, size, args.batch, args.repeats)), flush=True)


if __name__ == "__main__":
    main()
