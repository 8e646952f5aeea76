"""How fast does a from-scratch grader learn under each augmentation? A short probe on APTOS.

    OMP_NUM_THREADS=1 python plugins/drgrade/scripts/augment_probe.py ../shared/data/APTOS2019 \
        --augment none,geometric,colour,camera --images 900 --size 128 --epochs 6

The first ``--images`` images of the Kaggle set's training part (the core's
hold-out, which ``eyescan evaluate`` scores, is left out; the first 5/6 train,
the rest validate; a probe, not a result: the shipped model's numbers come from
``eyescan evaluate``), square FOV views at ``--size`` px, MobileNetV3-Small with
the ordinal head, AdamW, batch 16, precise batch-norm statistics before each
validation. Augmentations: ``none``; ``geometric`` (rotation 180°, flips);
``colour`` (the shipped recipe's augment object: geometric, zoom, shift and
mild colour); ``camera`` (the recipe's plus Gaussian blur, down-sampling and
JPEG round trips, 30 % each). One JSON object per epoch and augmentation.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from eyescan.api import augment, fundus, imageio, read_task_split
from eyescan_drgrade.data import FOV_MARGIN, square_fundus
from eyescan_drgrade.datasets import kaggle_layout
from eyescan_drgrade.inference import normalise
from eyescan_drgrade.losses import grade_ordinal
from eyescan_drgrade.models import GradeNet
from eyescan_drgrade.training import recalibrate_batch_norm

RECIPE = Path(__file__).resolve().parents[1] / "eyescan_drgrade" / "recipes"
CAMERA = {"blur": 1.0, "blur_p": 0.3, "resample": [0.5, 1.0], "resample_p": 0.3, "jpeg": 0.3}
GEOMETRIC = {"rotation": 180.0, "hflip": True, "vflip": True, "transpose": False}
PLAIN = {"brightness": 0.0, "contrast": 0.0, "saturation": 0.0, "noise_std": 0.0}


def augmentations() -> dict[str, dict | None]:
    shipped = json.loads((RECIPE / "grader-idrid-aptos-cpu.json").read_text())["augment"]
    return {
        "none": None,
        "geometric": {**GEOMETRIC, **PLAIN},
        "colour": shipped,
        "camera": {**shipped, **CAMERA},
    }


def load(root: Path, count: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``count`` images of the data set's training part by the core's rule (the
    APTOS hold-out that ``eyescan evaluate`` scores is never read), square FOV views."""
    samples = read_task_split("drgrade", root, {}, "train").samples[:count]
    images = []
    for sample in samples:
        square, _ = square_fundus(imageio.read_image(sample.image), FOV_MARGIN)
        images.append(fundus.resize(square, size))
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return x, torch.tensor([s.label for s in samples])


def probe(x, y, spec, size: int, epochs: int, train_n: int, name: str):
    torch.manual_seed(0)
    model = GradeNet(image_size=size)
    optimiser = torch.optim.AdamW(model.parameters(), 2e-3, weight_decay=1e-4)
    config = augment.AugmentConfig.from_dict(spec) if spec else None
    generator = torch.Generator().manual_seed(0)
    train_x, train_y, val_x, val_y = x[:train_n], y[:train_n], x[train_n:], y[train_n:]
    for epoch in range(1, epochs + 1):
        model.train()
        order, losses = torch.randperm(train_n, generator=generator), []
        for begin in range(0, train_n, 16):
            index = order[begin : begin + 16]
            views = train_x[index].float() / 255.0
            if config is not None:
                views = torch.stack([augment.augment_image(v, config, generator) for v in views])
            loss = grade_ordinal(model(normalise(views)), {"grade": train_y[index]})
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
        plain = (normalise(train_x[b : b + 16].float() / 255.0) for b in range(0, 320, 16))
        recalibrate_batch_norm(model, plain, model)
        model.eval()
        with torch.no_grad():
            predicted = model.grades(model(normalise(val_x.float() / 255.0)))
        accuracy = float((predicted == val_y).float().mean())
        print(json.dumps({"augment": name, "epoch": epoch, "train_loss": round(np.mean(losses), 4),
                          "val_accuracy": round(accuracy, 3)}), flush=True)  # fmt: skip


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="a Kaggle layout (APTOS 2019)")
    parser.add_argument("--augment", default="none,geometric,colour,camera")
    parser.add_argument("--images", type=int, default=900)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args(argv)
    if kaggle_layout(args.data) is None:
        print(
            f"error: {args.data}: not a Kaggle layout (train.csv + train_images/)", file=sys.stderr
        )
        return 1
    x, y = load(args.data, args.images, args.size)
    known = augmentations()
    for name in args.augment.split(","):
        probe(x, y, known[name], args.size, args.epochs, int(len(x) * 5 / 6), name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
