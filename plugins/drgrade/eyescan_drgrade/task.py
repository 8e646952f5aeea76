"""The drgrade task: square FOV view, grade, DME risk and lesions per image, annotated outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from eyescan.api import (
    Need,
    Prediction,
    Task,
    given_fov,
    imageio,
    operating_threshold,
)
from eyescan_drgrade.data import fundus_item
from eyescan_drgrade.inference import COMBINE_ENV, predict_items

__all__ = ["COMBINE_ENV", "DrGradeTask", "draw_lesions"]

WEIGHTS_DIR = Path(__file__).parent / "weights"
#: Box colours in the annotated image (RGB).
LESION_COLOURS = {
    "microaneurysm": (0, 255, 255),
    "haemorrhage": (0, 255, 0),
    "hard_exudate": (40, 80, 255),
}


class DrGradeTask(Task):
    name = "drgrade"
    kind = "classify"
    description = "DR 5-grade classification; lesion detection (MA, haemorrhage, hard exudate)"
    default_model = "screen"
    weights_dir = WEIGHTS_DIR
    needs: ClassVar[tuple[Need, ...]] = (
        Need("fov", help="field-of-view mask used instead of the estimated one"),
    )
    fundus = True
    min_side = 32  # smaller or thinner photos: refused by the core
    max_aspect = 4
    summary_outputs: ClassVar[dict[str, str]] = {
        "grade": "DR",
        "referable": "refer",
        "dme_risk": "DME",
    }

    def preprocess(self, image: np.ndarray, source: str, provided: Any = None) -> dict[str, Any]:
        """The photo and its FOV: ``provided["fov"]`` (``eyescan predict --fov``) when
        given, else estimated. The FOV frames the square view each model sees."""
        given = given_fov(provided, image, source)
        item = fundus_item(image, given)
        if given is not None:
            item["fov_given"] = True
        return item

    def predict(self, model: Any, batch: list[dict[str, Any]]) -> list[Prediction]:
        explain = bool(self.options.get("explain"))
        threshold = operating_threshold(self.options)  # predict --threshold: referable
        results = predict_items(model.module, batch, bool(explain), threshold)
        for item, result in zip(batch, results):
            if item.get("fov_given"):  # predict --fov
                result.values["fov_source"] = "given"
        return results

    def report(self, prediction: Prediction, out_dir: Path, stem: str) -> dict[str, str]:
        files = {}
        if "lesions" in prediction.values:
            files["lesions"] = f"{stem}_lesions.png"
            imageio.save_png(
                out_dir / files["lesions"],
                draw_lesions(prediction.image, prediction.values["lesions"]),
            )
        if "gradcam" in prediction.arrays:
            from eyescan.api import explain

            files["gradcam"] = f"{stem}_gradcam.png"
            imageio.save_png(
                out_dir / files["gradcam"],
                explain.heat_overlay(prediction.image, prediction.arrays["gradcam"]),
            )
        return files

    def train(self, data: Path, options: dict[str, Any]) -> dict[str, Any]:
        from eyescan_drgrade.training import train

        return train(self, data, options)

    def evaluate(self, model: Any, data: Path, options: dict[str, Any]) -> dict[str, Any]:
        from eyescan_drgrade.evaluation import evaluate

        return evaluate(model, data, options)


def draw_lesions(image: np.ndarray, lesions: list[dict[str, Any]]) -> np.ndarray:
    """The image with a coloured rectangle around every lesion (a margin keeps
    tiny lesions visible)."""
    from PIL import Image, ImageDraw

    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    width = max(1, round(min(image.shape[:2]) / 400))
    for lesion in lesions:
        x0, y0, x1, y1 = lesion["box"]
        m = width + 1
        draw.rectangle(
            (x0 - m, y0 - m, x1 + m - 1, y1 + m - 1),
            outline=LESION_COLOURS.get(lesion["label"], (255, 255, 255)),
            width=width,
        )
    return np.asarray(canvas)
