"""The strabismus task: detect the eye region, crop it, classify strabismus vs normal.

``eyescan predict strabismus`` loads the classifier (``--model``/``--weights``,
default the shipped ``rfcnn-lite``); its detector is a companion model: the
one the classifier's card names by SHA-256, or else the shipped detector
(see :mod:`eyescan_strabismus.pipeline`), hash-checked and listed in the
classifier's ``companions`` (so records and the synthetic-data warning name
it), and its SHA-256 is in every record's outputs (``detector_sha256``).
``--model eye-detector`` predicts with the detector alone (boxes and scores,
no classification). ``eyescan predict --explain`` adds a Grad-CAM heat map of
the classifier on the crop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from eyescan.api import Prediction, Task, get_registry, imageio, operating_threshold
from eyescan_strabismus.pipeline import (
    CONFIDENT_SCORE,
    DEFAULT_INPUT_SIZE,
    DETECTOR,
    FOUND_SCORE,
    THRESHOLD,
    classify,
    detect,
    detector_prediction,
    load_detector,
)

__all__ = [
    "CONFIDENT_SCORE",
    "DEFAULT_INPUT_SIZE",
    "DETECTOR",
    "FOUND_SCORE",
    "THRESHOLD",
    "StrabismusTask",
    "annotate",
]

WEIGHTS_DIR = Path(__file__).parent / "weights"
COLOURS = {"normal": (40, 200, 60), "strabismus": (230, 40, 40), "low": (250, 200, 0)}


class StrabismusTask(Task):
    name = "strabismus"
    kind = "detect"
    description = "Strabismus from face photographs: eye-region detection, then RF-CNN (Lite)"
    default_model = "rfcnn-lite"
    weights_dir = WEIGHTS_DIR
    min_side = 32  # smaller or thinner photos: refused by the core
    max_aspect = 8

    def __init__(self) -> None:
        #: Loaded detectors by classifier (``id`` -> (classifier, detector)), loaded once each.
        self._detectors: dict[int, tuple[Any, Any]] = {}

    def preprocess(self, image: np.ndarray, source: str) -> dict[str, Any]:
        return {"image": image}

    def predict(self, model: Any, batch: list[dict[str, Any]]) -> list[Prediction]:
        images = [item["image"] for item in batch]
        if model.name == DETECTOR:
            detections = detect(model.module, images)
            return [detector_prediction(img, det) for img, det in zip(images, detections)]
        detector = self.detector_for(model)
        detections = detect(detector.module, images)
        explain = bool(self.options.get("explain", False))
        threshold = operating_threshold(self.options, THRESHOLD)  # predict --threshold
        return classify(
            model, images, detections, detector.sha256, explain=explain, threshold=threshold
        )

    def report(self, prediction: Prediction, out_dir: Path, stem: str) -> dict[str, str]:
        files = {"annotated": f"{stem}_annotated.png"}
        imageio.save_png(out_dir / files["annotated"], annotate(prediction))
        if "crop" in prediction.arrays:
            files["crop"] = f"{stem}_crop.png"
            imageio.save_png(out_dir / files["crop"], prediction.arrays["crop"])
        if "heat" in prediction.arrays:
            from eyescan.api import explain

            files["gradcam"] = f"{stem}_gradcam.png"
            overlay = explain.heat_overlay(prediction.arrays["crop"], prediction.arrays["heat"])
            imageio.save_png(out_dir / files["gradcam"], overlay)
        return files

    def reference_image(self) -> np.ndarray:
        """A drawn face from the synthetic generator (fixed seed), never a photograph."""
        from eyescan_strabismus.synthetic import make_face

        return make_face(size=320, seed=11, strabismus=True).image

    def example_input(self, size: int) -> dict[str, Any]:
        """A synthetic face photograph, so that benchmarks time the whole pipeline."""
        from eyescan_strabismus.synthetic import make_face

        return self.preprocess(make_face(size, seed=0).image, "<benchmark>")

    def train(self, data: Path, options: dict[str, Any]) -> dict[str, Any]:
        from eyescan_strabismus.training import train

        return train(self, data, options)

    def evaluate(self, model: Any, data: Path, options: dict[str, Any]) -> dict[str, Any]:
        from eyescan_strabismus.evaluation import evaluate

        return evaluate(self, model, data, options)

    def prepare(self, model: Any) -> None:
        """Load the classifier's detector before a run, so that ``model.companions``
        names it before any record or warning is made (cached: safe to call again)."""
        if model.name != DETECTOR:
            self.detector_for(model)

    def detector_for(self, classifier: Any) -> Any:
        """The detector that goes with ``classifier`` (a hash-checked companion, loaded once)."""
        key = id(classifier)
        if key not in self._detectors or self._detectors[key][0] is not classifier:
            detector = load_detector(get_registry(), self, classifier)
            self._detectors[key] = (classifier, detector)
        return self._detectors[key][1]


def annotate(prediction: Prediction) -> np.ndarray:
    """The input with the eye-region box and the result drawn on it."""
    from PIL import Image, ImageDraw

    values = prediction.values
    image = Image.fromarray(prediction.image)
    draw = ImageDraw.Draw(image)
    text = values.get("result", "")
    if values.get("strabismus_probability") is not None:
        text = f"{text} {values['strabismus_probability']:.2f}"
    if values.get("box"):
        if values["low_detector_confidence"]:
            colour = COLOURS["low"]
            text += " (low detector confidence)"
        else:
            colour = COLOURS.get(values.get("result"), COLOURS["normal"])
        line = max(1, round(min(prediction.image.shape[:2]) / 150))
        draw.rectangle(values["box"], outline=colour, width=line)
        x0, y0 = values["box"][:2]
        draw.text((x0, max(0, y0 - 12)), text, fill=colour)
    else:
        draw.text((4, 4), text, fill=COLOURS["low"])
    return np.asarray(image)
