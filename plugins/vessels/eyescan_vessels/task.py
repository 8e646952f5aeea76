"""The vessels task: preprocessing, prediction and output files.

Training and evaluation live in ``training.py`` and ``evaluation.py``; the
methods below import them when called.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from eyescan.api import Prediction, PredictOption, Task, fundus, imageio, overlays
from eyescan_vessels.data import enhance
from eyescan_vessels.inference import THRESHOLD, TILE, normalise, probability_map

__all__ = ["VesselsTask", "THRESHOLD", "TILE", "normalise", "probability_map"]

WEIGHTS_DIR = Path(__file__).parent / "weights"


class VesselsTask(Task):
    name = "vessels"
    kind = "segment"
    description = "Retinal vessel segmentation of colour fundus photographs"
    default_model = "unet-isam"
    weights_dir = WEIGHTS_DIR
    predict_options: ClassVar[tuple[PredictOption, ...]] = (
        PredictOption("morphometry", "skeleton length, density and mean width of the vessels"),
    )

    def preprocess(self, image: np.ndarray, source: str) -> dict[str, Any]:
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
            if self.options.get("morphometry", False):  # predict --morphometry
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
        from eyescan_vessels.evaluation import evaluate

        return evaluate(model, data, options)
