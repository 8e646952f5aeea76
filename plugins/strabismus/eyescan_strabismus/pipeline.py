"""Detect → crop → classify, and which detector a classifier runs with.

Shared by prediction (``task.py``) and evaluation (``evaluation.py``), so that
both run the same steps. The detector is a *companion* of the classifier:
loaded with :func:`eyescan.api.models.load_companion` (SHA-256 checked, and
listed in the classifier's ``companions``, hence in every record and in the
synthetic-data warning). Which one (:func:`detector_choice`):

1. the detector the classifier's model card names, ``"detector": {"model",
   "file", "sha256"}`` (written by training with ``"detector": PATH`` in the
   recipe, or by :func:`link_detector`): the file (relative to the card's
   folder, or absolute) or else the shipped detector, whichever has that
   SHA-256 — any other is refused;
2. a card that names none: the plugin's shipped detector.

A card whose ``detector`` is a bare path (no SHA-256) is refused: an unhashed
link is never followed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from eyescan.api import Prediction, WeightsError

DETECTOR = "eye-detector"
#: Role of the detector in the classifier's ``companions``.
DETECTOR_ROLE = "detector"
#: Below this detector score no eye region is reported ("no eye region found").
FOUND_SCORE = 0.5
#: Detections scoring under this are flagged ``low_detector_confidence`` (unusual photos).
CONFIDENT_SCORE = 0.8
#: Strabismus probability at or above which the label is "strabismus".
THRESHOLD = 0.5
#: Side of the square classifier input when the model card does not say.
DEFAULT_INPUT_SIZE = 224


def _card_sha(weights: Path) -> str | None:
    from eyescan.api import weights as weights_io

    try:
        return weights_io.read_card(weights).get("sha256")
    except WeightsError:
        return None


def detector_choice(task: Any, classifier: Any) -> tuple[Path, str | None, str]:
    """``(weights, expected sha256 or None, how it was chosen)`` of ``classifier``'s detector.

    Raises :class:`WeightsError` when the card names a detector that is not
    found with its SHA-256, names one without a hash, or names none and the
    plugin ships none.
    """
    card = getattr(classifier, "card", None) or {}
    named = card.get("detector")
    shipped = task.default_weights(DETECTOR)
    if named is None:
        if shipped is None:
            raise WeightsError(
                "no eye-region detector: the classifier's model card names none and the "
                f"plugin ships none; train one (eyescan train strabismus DATA --model "
                f"{DETECTOR}) and train the classifier with the recipe key detector: PATH"
            )
        return shipped, None, "shipped (the classifier's card names no detector)"
    if not isinstance(named, dict) or not named.get("sha256"):
        raise WeightsError(
            f"the classifier's model card names its detector without a sha256 ({named!r}); "
            "an unhashed link is not followed: relink it with "
            "eyescan_strabismus.pipeline.link_detector(CLASSIFIER, DETECTOR)"
        )
    expected = str(named["sha256"])
    candidates: list[Path] = []
    if named.get("file"):
        path = Path(named["file"])
        if not path.is_absolute() and classifier.weights is not None:
            path = Path(os.path.normpath(Path(classifier.weights).parent / path))
        candidates.append(path)
    if shipped is not None:
        candidates.append(shipped)
    seen = []
    for path in candidates:
        if not path.exists():
            seen.append(f"{path} (missing)")
            continue
        sha = _card_sha(path)
        if sha == expected:
            how = "the classifier's card" + (" (shipped copy)" if path == shipped else "")
            return path, expected, how
        seen.append(f"{path} (sha256 {str(sha)[:12]}…)")
    raise WeightsError(
        f"the classifier was trained with detector sha256 {expected[:12]}…, not found: "
        + "; ".join(seen or ["no candidate file"])
        + " — put that detector (with its card) where the card says"
    )


def link_detector(classifier_weights: Path, detector_weights: Path) -> dict[str, Any]:
    """Name ``detector_weights`` (by relative path and SHA-256) in the classifier's card."""
    from eyescan.api import weights as weights_io

    sha = _card_sha(Path(detector_weights))
    if sha is None:
        raise WeightsError(f"{detector_weights}: no model card with a sha256 beside it")
    link = detector_link(Path(detector_weights), Path(classifier_weights).parent, sha)
    return weights_io.update_card(Path(classifier_weights), detector=link)


def detector_link(detector: Path, folder: Path, sha256: str) -> dict[str, str]:
    """The card's ``detector`` entry: model, path relative to ``folder`` and SHA-256."""
    relative = os.path.relpath(Path(detector).resolve(), Path(folder).resolve())
    return {"model": DETECTOR, "file": Path(relative).as_posix(), "sha256": sha256}


def load_detector(registry: Any, task: Any, classifier: Any) -> Any:
    """The classifier's detector, loaded as its companion (listed in ``companions``)."""
    from eyescan.api import models

    path, expected, how = detector_choice(task, classifier)
    detector = models.load_companion(
        registry, task.name, DETECTOR_ROLE, model=DETECTOR, weights=path, parent=classifier
    )
    if expected is not None and detector.sha256 != expected:
        raise WeightsError(f"{path}: sha256 {detector.sha256} is not the card's {expected}")
    detector.chosen_by = how
    return detector


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


def region_values(box: tuple[float, ...] | None, score: float) -> dict[str, Any]:
    """Record values of the best detection: found, score, low confidence, box."""
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
    values = region_values(box, score)
    arrays: dict[str, Any] = {}
    if values["eye_region_found"]:
        left, top, right, bottom = with_margin(box, image.shape)
        arrays["crop"] = image[top:bottom, left:right]
    return values, arrays


def detector_prediction(image: np.ndarray, detection: dict) -> Prediction:
    """The record of the detector alone (``--model eye-detector``)."""
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
    threshold: float = THRESHOLD,
) -> list[Prediction]:
    """Crop each image's best eye-region box and classify it (one batch for all crops):
    "strabismus" when P(strabismus) reaches ``threshold`` (recorded as ``threshold``)."""
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
            "threshold": threshold,
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
            values["result"] = "strabismus" if p >= threshold else "normal"
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
