"""The vessels task: preprocessing, prediction, outputs, training and evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from eyescan.api import Prediction, Task, fundus, imageio, metrics, overlays

WEIGHTS_DIR = Path(__file__).parent / "weights"
THRESHOLD = 0.5
#: Images larger than this (either side) are predicted in overlapping tiles.
TILE = 1024


class VesselsTask(Task):
    name = "vessels"
    kind = "segment"
    description = "Retinal vessel segmentation of colour fundus photographs"
    default_model = "unet-isam"
    weights_dir = WEIGHTS_DIR

    def preprocess(self, image: np.ndarray, source: str) -> dict[str, Any]:
        from eyescan_vessels.data import enhance

        return {"image": enhance(image), "fov": fundus.fov_mask(image), "original": image}

    def predict(self, model: Any, batch: list[dict[str, Any]]) -> list[Prediction]:
        results = []
        for item in batch:
            prob = probability_map(model.module, item["image"])
            fov = item["fov"]
            vessels = (prob >= THRESHOLD) & fov
            fov_pixels = int(fov.sum())
            values = {
                "vessel_fraction": float(vessels.sum() / fov_pixels) if fov_pixels else 0.0,
                "vessel_pixels": int(vessels.sum()),
                "fov_pixels": fov_pixels,
                "height": int(prob.shape[0]),
                "width": int(prob.shape[1]),
                "threshold": THRESHOLD,
            }
            arrays = {"probability": prob, "mask": vessels, "fov": fov}
            if getattr(self, "morphometry", False):  # predict --morphometry
                from eyescan_vessels.morphometry import measure

                extra, arrays["skeleton"] = measure(vessels, fov)
                values.update(extra)
            results.append(Prediction(values, arrays, item["original"]))
        return results

    def report(self, prediction: Prediction, out_dir: Path, stem: str) -> dict[str, str]:
        files = {
            "probability": f"{stem}_probability.png",
            "mask": f"{stem}_mask.png",
            "overlay": f"{stem}_overlay.png",
        }
        arrays = prediction.arrays
        imageio.save_png(
            out_dir / files["probability"], imageio.probability_to_uint8(arrays["probability"])
        )
        imageio.save_png(out_dir / files["mask"], arrays["mask"])
        imageio.save_png(
            out_dir / files["overlay"],
            overlays.overlay_mask(prediction.image, arrays["mask"], (0, 255, 0), 0.6),
        )
        if "skeleton" in arrays:
            files["skeleton"] = f"{stem}_skeleton.png"
            imageio.save_png(out_dir / files["skeleton"], arrays["skeleton"])
        return files

    def train(self, data: Path, options: dict[str, Any]) -> dict[str, Any]:
        from eyescan_vessels.training import train

        return train(self, data, options)

    def evaluate(self, model: Any, data: Path, options: dict[str, Any]) -> dict[str, Any]:
        from eyescan_vessels.training import evaluate

        return evaluate(model, data, options)


def probability_map(module: Any, image: np.ndarray) -> np.ndarray:
    """Vessel probability (float32 H×W) of a preprocessed image of any size."""
    import torch

    from eyescan.api import segmentation

    x = segmentation.to_tensor(normalise(image))
    stride = getattr(module, "stride", 16)
    logits = segmentation.predict_logits(module, x, stride, tile=TILE)
    return torch.sigmoid(logits)[0, 0].numpy().astype(np.float32)


def normalise(image: np.ndarray) -> np.ndarray:
    """Centre the [0, 1] enhanced image for the network."""
    return (image - 0.5) / 0.25


def evaluation_metrics(prob: np.ndarray, vessels: np.ndarray, fov: np.ndarray) -> dict[str, float]:
    """DRIVE-protocol metrics of one probability map, inside the FOV."""
    return metrics.binary_metrics(vessels, prob, mask=fov, threshold=THRESHOLD)
