"""The strabismus task: detect the eye region, crop it, classify strabismus vs normal.

``eyescan predict strabismus`` loads the classifier (``--model``/``--weights``,
default the shipped ``rfcnn-lite``); the task finds its detector, in order:

1. the path in the classifier's model card field ``detector`` (relative to
   the card's folder, or absolute);
2. ``eye-detector.safetensors`` beside the classifier's weights;
3. the plugin's shipped ``weights/eye-detector.safetensors``;

and loads it with the core's hash-checked loader. ``--model eye-detector``
predicts with the detector alone (boxes and scores, no classification).
``eyescan predict --explain`` adds a Grad-CAM heat map of the classifier on the crop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from eyescan.api import Prediction, Task, WeightsError, get_registry, imageio

WEIGHTS_DIR = Path(__file__).parent / "weights"
DETECTOR = "eye-detector"
#: Below this detector score no eye region is reported ("no eye region found").
FOUND_SCORE = 0.5
#: Detections scoring under this are flagged ``low_detector_confidence`` (unusual photos).
CONFIDENT_SCORE = 0.8
#: Strabismus probability at or above which the label is "strabismus".
THRESHOLD = 0.5
#: Side of the square classifier input when the model card does not say.
DEFAULT_INPUT_SIZE = 224
COLOURS = {"normal": (40, 200, 60), "strabismus": (230, 40, 40), "low": (250, 200, 0)}


class StrabismusTask(Task):
    name = "strabismus"
    kind = "detect"
    description = "Strabismus from face photographs: eye-region detection, then RF-CNN (Lite)"
    default_model = "rfcnn-lite"
    weights_dir = WEIGHTS_DIR

    def __init__(self, explain: bool = False):
        self.explain = explain  # set by eyescan predict --explain
        self._detectors: dict[str, Any] = {}

    def preprocess(self, image: np.ndarray, source: str) -> dict[str, Any]:
        return {"image": image}

    def predict(self, model: Any, batch: list[dict[str, Any]]) -> list[Prediction]:
        images = [item["image"] for item in batch]
        if model.name == DETECTOR:
            detections = detect(model.module, images)
            return [_detector_prediction(img, det) for img, det in zip(images, detections)]
        detector = self.detector_for(model)
        detections = detect(detector.module, images)
        return classify(model, images, detections, detector.sha256, explain=self.explain)

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

    def example_input(self, size: int) -> dict[str, Any]:
        """A synthetic face photograph, so that benchmarks time the whole pipeline."""
        from eyescan_strabismus.synthetic import make_face

        return self.preprocess(make_face(size, seed=0).image, "<benchmark>")

    def train(self, data: Path, options: dict[str, Any]) -> dict[str, Any]:
        from eyescan_strabismus.training import train

        return train(self, data, options)

    def evaluate(self, model: Any, data: Path, options: dict[str, Any]) -> dict[str, Any]:
        from eyescan_strabismus.training import evaluate

        return evaluate(self, model, data, options)

    def detector_path(self, classifier: Any) -> Path:
        """Where the classifier's detector is (see the module docstring for the order)."""
        weights = Path(classifier.weights) if classifier.weights is not None else None
        named = (classifier.card or {}).get("detector")
        candidates = []
        if named:
            named = Path(named)
            candidates.append(
                named if named.is_absolute() or weights is None else weights.parent / named
            )
        if weights is not None:
            candidates.append(weights.parent / f"{DETECTOR}.safetensors")
        shipped = self.default_weights(DETECTOR)
        if shipped is not None:
            candidates.append(shipped)
        for path in candidates:
            if path.exists():
                return path
        raise WeightsError(
            "no eye-region detector found for the classifier (looked for "
            + ", ".join(str(p) for p in candidates or [WEIGHTS_DIR / f"{DETECTOR}.safetensors"])
            + f"); train one with 'eyescan train strabismus DATA --model {DETECTOR}'"
        )

    def detector_for(self, classifier: Any) -> Any:
        """The loaded detector that goes with ``classifier`` (loaded once, hash-checked)."""
        from eyescan.api import models

        path = self.detector_path(classifier)
        key = str(path.resolve())
        if key not in self._detectors:
            self._detectors[key] = models.load(get_registry(), self.name, DETECTOR, path)
        return self._detectors[key]


def detect(detector: Any, images: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Eye-region boxes (x0, y0, x1, y1, image pixels) and scores per image, best first."""
    import torch

    from eyescan_strabismus.data import detector_tensor

    detector.eval()
    with torch.no_grad():
        outputs = detector([detector_tensor(img) for img in images])
    return [
        {"boxes": out["boxes"].numpy().astype(np.float64), "scores": out["scores"].numpy()}
        for out in outputs
    ]


def best_detection(detection: dict[str, np.ndarray]) -> tuple[tuple[float, ...] | None, float]:
    """The highest-scoring box and its score (``None``, 0.0 when there is none)."""
    if len(detection["scores"]) == 0:
        return None, 0.0
    i = int(np.argmax(detection["scores"]))
    return tuple(float(v) for v in detection["boxes"][i]), float(detection["scores"][i])


def _region_values(box: tuple[float, ...] | None, score: float) -> dict[str, Any]:
    found = box is not None and score >= FOUND_SCORE
    return {
        "eye_region_found": found,
        "detector_score": round(score, 4),
        "low_detector_confidence": score < CONFIDENT_SCORE,
        "box": [round(v, 1) for v in box] if found else None,
    }


def eye_region(image: np.ndarray, detection: dict) -> tuple[dict[str, Any], dict[str, Any]]:
    """Values of the best detection and, when it counts as found, its crop (with margin)."""
    from eyescan_strabismus.data import with_margin

    box, score = best_detection(detection)
    values = _region_values(box, score)
    arrays: dict[str, Any] = {}
    if values["eye_region_found"]:
        left, top, right, bottom = with_margin(box, image.shape)
        arrays["crop"] = image[top:bottom, left:right]
    return values, arrays


def _detector_prediction(image: np.ndarray, detection: dict) -> Prediction:
    region, arrays = eye_region(image, detection)
    found = region["eye_region_found"]
    values = {"result": "eye region found" if found else "no eye region found", **region}
    values["detections"] = int((detection["scores"] >= FOUND_SCORE).sum())
    return Prediction(values, arrays, image)


def input_size(model: Any) -> int:
    """The classifier's input side, from its model card (training recipe) or the seed's 224."""
    card = getattr(model, "card", None) or {}
    return int(card.get("input_size") or DEFAULT_INPUT_SIZE)


def classify(
    model: Any,
    images: list[np.ndarray],
    detections: list[dict[str, np.ndarray]],
    detector_sha: str | None = None,
    explain: bool = False,
) -> list[Prediction]:
    """Crop each image's best eye-region box and classify it (one batch for all crops)."""
    import torch

    from eyescan_strabismus.data import classifier_tensor, crop

    size = input_size(model)
    predictions, crops, found = [], [], []
    for image, detection in zip(images, detections):
        region, arrays = eye_region(image, detection)
        values = {
            "result": "no eye region found",
            "strabismus_probability": None,
            **region,
            "threshold": THRESHOLD,
            "detector_sha256": detector_sha,
        }
        if region["eye_region_found"]:
            crops.append(crop(image, tuple(region["box"]), size))
            found.append(len(predictions))
        predictions.append(Prediction(values, arrays, image))
    if crops:
        module = model.module.eval()
        x = classifier_tensor(crops)
        with torch.no_grad():
            probs = torch.softmax(module(x), dim=1)[:, 1].numpy()
        for k, (index, p) in enumerate(zip(found, probs)):
            values = predictions[index].values
            values["strabismus_probability"] = round(float(p), 4)
            values["result"] = "strabismus" if p >= THRESHOLD else "normal"
            if explain:
                predictions[index].arrays["heat"] = heat_map(
                    module, x[k : k + 1], predictions[index]
                )
    return predictions


def heat_map(module: Any, x: Any, prediction: Prediction) -> np.ndarray:
    """Grad-CAM of the strabismus class on the classifier input, resized to the crop."""
    from PIL import Image

    from eyescan.api import explain

    heat = explain.grad_cam(module, module.gradcam_layer, x, target=1)
    h, w = prediction.arrays["crop"].shape[:2]
    resized = Image.fromarray(heat.astype(np.float32), mode="F").resize((w, h), Image.BILINEAR)
    return np.clip(np.asarray(resized), 0, 1)


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
