"""A complete task plugin defined inside the test suite (registered in-process)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from eyescan.api import Prediction, Task, hookimpl, imageio


class ToyTask(Task):
    """Scores an image by its mean brightness through a one-parameter model."""

    name = "toy"
    kind = "classify"
    description = "test task: mean brightness"
    default_model = "scale"

    def preprocess(self, image: np.ndarray, source: str) -> np.ndarray:
        return image.astype(np.float32).mean(axis=2) / 255.0

    def predict(self, model: Any, batch: list[np.ndarray]) -> list[Prediction]:
        import torch

        with torch.no_grad():
            out = [model.module(torch.from_numpy(x)) for x in batch]
        return [Prediction({"score": float(o)}, {"gray": x}, None) for o, x in zip(out, batch)]

    def report(self, prediction: Prediction, out_dir: Path, stem: str) -> dict[str, str]:
        name = f"{stem}_gray.png"
        imageio.save_png(out_dir / name, imageio.probability_to_uint8(prediction.arrays["gray"]))
        return {"gray": name}

    def train(self, data: Path, options: dict[str, Any]) -> dict[str, Any]:
        from eyescan.api import weights

        model = scale_model()
        path = Path(options["out"]) / "scale.safetensors"
        weights.save_weights(
            model, path, {"task": "toy", "model": "scale", "training": {"data": str(data)}}
        )
        return {"weights": str(path)}

    def evaluate(self, model: Any, data: Path, options: dict[str, Any]) -> dict[str, Any]:
        images = sorted(Path(data).glob("*.png"))
        scores = [
            self.predict(model, [self.preprocess(imageio.read_image(p), "")])[0].values["score"]
            for p in images
        ]
        return {
            "summary": {"images": len(images), "mean_score": float(np.mean(scores))},
            "images": [{"id": p.stem, "score": s} for p, s in zip(images, scores)],
        }


def scale_model():
    import torch

    class Scale(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.tensor(2.0))

        def forward(self, x):
            return x.mean() * self.weight

    return Scale()


class ToyPlugin:
    @hookimpl
    def register_tasks(self, register):
        register(ToyTask())

    @hookimpl
    def register_models(self, register):
        register("toy", "scale", lambda **_: scale_model(), description="x.mean() * w")
