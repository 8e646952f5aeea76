"""The vessels task: preprocessing, prediction and output files.

Training and evaluation live in ``training.py`` and ``evaluation.py``; the
methods below import them when called.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from eyescan.api import (
    Need,
    Prediction,
    PredictOption,
    Task,
    fundus,
    given_fov,
    imageio,
    operating_threshold,
    overlays,
)
from eyescan_vessels.inference import (
    THRESHOLD,
    TILE,
    model_input,
    model_scale,
    normalise,
    probability_map,
    probability_maps,
)
from eyescan_vessels.scale import resize_probability

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
    needs: ClassVar[tuple[Need, ...]] = (
        Need("fov", help="field-of-view mask used instead of the estimated one"),
    )
    #: ``arrays["probability"]``: the vessel probability (float32) at the photo's size.
    provides: ClassVar[dict[str, str]] = {"vessel_probability": "probability"}
    fundus = True
    min_side = 8  # smaller or thinner photos: refused by the core
    max_aspect = 8
    summary_outputs: ClassVar[dict[str, str]] = {"vessel_fraction": "vessels"}

    #: FOV diameter of the model of this run (set by :meth:`prepare`; see ``scale.py``).
    target: float | None = None

    def prepare(self, model: Any) -> None:
        """Note the model's scale so that :meth:`preprocess` resamples at it."""
        self.target = model_scale(model)

    def preprocess(self, image: np.ndarray, source: str, provided: Any = None) -> dict[str, Any]:
        """Enhanced network input (at the model's scale), FOV, the photo.

        The FOV is ``provided["fov"]`` (``eyescan predict --fov``) when given, else
        estimated from the photo; it decides the model's scale and bounds the mask.
        """
        given = given_fov(provided, image, source)
        fov = fundus.fov_mask(image) if given is None else given
        enhanced, factor = model_input(image, fov, self.target)
        item = {
            "image": enhanced,
            "fov": fov,
            "original": image,
            "target": self.target,
            "factor": factor,
        }
        if given is not None:
            item["fov_given"] = True
        return item

    def example_input(self, size: int) -> dict[str, Any]:
        """A random ``size``² input taken as already at the model's scale (benchmarks time
        the network at the size asked for)."""
        item = super().example_input(size)
        item["at_model_scale"] = True
        return item

    def predict(self, model: Any, batch: list[dict[str, Any]]) -> list[Prediction]:
        results = []
        target = model_scale(model)
        threshold = operating_threshold(self.options, THRESHOLD)
        inputs = []
        for item in batch:
            image, factor = item["image"], item.get("factor", 1.0)
            if item.get("target") != target and not item.get("at_model_scale"):
                # preprocessed for another model's scale
                reuse = image if factor == 1.0 else None
                image, factor = model_input(item["original"], item["fov"], target, reuse)
            inputs.append((image, factor))
        maps = probability_maps(model.module, [image for image, _ in inputs])
        for item, (_, factor), prob in zip(batch, inputs, maps):
            fov = item["fov"]
            prob = resize_probability(prob, fov.shape)
            vessels = (prob >= threshold) & fov
            fov_pixels = int(fov.sum())
            values = {
                "vessel_fraction": float(vessels.sum() / fov_pixels) if fov_pixels else 0.0,
                "vessel_pixels": int(vessels.sum()),
                "fov_pixels": fov_pixels,
                "height": int(prob.shape[0]),
                "width": int(prob.shape[1]),
                "threshold": threshold,
            }
            if item.get("fov_given"):  # predict --fov
                values["fov_source"] = "given"
            if target is not None:  # a model with a scale says how the photo was resampled
                values["model_fov_diameter"] = target
                values["scale_factor"] = round(factor, 4)
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
        bits = 16 if self.options.get("prob16") else 8  # predict --prob16
        imageio.save_probability(out_dir / files["probability"], arrays["probability"], bits)
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
