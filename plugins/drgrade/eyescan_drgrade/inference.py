"""Running DR models on square fundus views: inputs, decoding, one record per image.

Used by prediction (``task.py``), validation during training and evaluation.
Items are :func:`eyescan_drgrade.data.fundus_item` dicts (the photograph and its
FOV mask); each model part crops its square view with its own ``fov_margin``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from eyescan.api import EyescanError, Prediction, fundus
from eyescan_drgrade.data import Frame, square_fundus
from eyescan_drgrade.lesions import (
    COMBINE_RULES,
    LESION_CLASSES,
    combine_grades,
    grade_from_lesions,
    grade_record,
    lesion_summary,
)

#: Environment overrides of the model card's settings at prediction time.
COMBINE_ENV = "EYESCAN_DRGRADE_COMBINE"


def predict_settings(module: Any, explain: bool = False) -> dict[str, Any]:
    """Combination rule (the model's, unless the environment says) and Grad-CAM switch
    (``eyescan predict --explain`` or the model option ``gradcam``)."""
    combine = os.environ.get(COMBINE_ENV) or getattr(module, "combine", "max")
    if combine not in COMBINE_RULES:
        raise EyescanError(
            f"{COMBINE_ENV}={combine!r} is not a combination rule ({', '.join(COMBINE_RULES)})"
        )
    gradcam = explain or bool(getattr(module, "gradcam", 0))
    return {"combine": combine, "gradcam": gradcam}


def image_tensor(image: np.ndarray, size: int):
    """A uint8 RGB image resized to ``size``² as a float C×H×W tensor in [0, 1]."""
    import torch

    resized = fundus.resize(image, size) if image.shape[0] != size else image
    return torch.from_numpy(np.ascontiguousarray(resized.transpose(2, 0, 1))).float() / 255.0


def normalise(x):
    """ImageNet normalisation of [0, 1] image tensors (C×H×W or N×C×H×W)."""
    import torch

    from eyescan_drgrade.models import MEAN, STD

    shape = (3, 1, 1) if x.dim() == 3 else (1, 3, 1, 1)
    return (x - torch.tensor(MEAN).view(shape)) / torch.tensor(STD).view(shape)


def grader_input(grader: Any, squares: list[np.ndarray]):
    """Square fundus views as the grader's normalised N×3×S×S batch."""
    import torch

    return normalise(torch.stack([image_tensor(s, grader.image_size) for s in squares]))


def detector_input(detector: Any, squares: list[np.ndarray]) -> list:
    """Square fundus views as the detector's list of C×S×S images in [0, 1]."""
    return [image_tensor(s, detector.image_size) for s in squares]


def decode_grades(grader: Any, logits: Any) -> dict[str, np.ndarray]:
    """Probabilities, grades and P(referable) from grader logits; with the DME head,
    the DME-risk probabilities and risk (argmax) too."""
    out = {
        "probabilities": grader.probabilities(logits).numpy(),
        "grades": grader.grades(logits).numpy(),
        "referable": grader.referable_probability(logits).numpy(),
    }
    dme = grader.dme_probabilities(logits)
    if dme is not None:
        out["dme_probabilities"] = dme.numpy()
        out["dme_risk"] = dme.argmax(dim=1).numpy()
    return out


def decode_detections(outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Boxes (detector frame), class names and scores from Faster R-CNN outputs."""
    return [
        {
            "boxes": o["boxes"].numpy().astype(np.float64),
            "labels": [LESION_CLASSES[int(k) - 1] for k in o["labels"]],
            "scores": o["scores"].numpy().astype(np.float64),
        }
        for o in outputs
    ]


def square_views(module: Any, items: list[dict[str, Any]]) -> dict[str, list[tuple]]:
    """``{"grader" | "detector": [(square, frame), …]}``: each item's square FOV view for
    each part the model has, cropped with that part's ``fov_margin`` (once per margin)."""
    from eyescan_drgrade.models import parts

    done: dict[float, list[tuple[np.ndarray, Frame]]] = {}
    views = {}
    for name, part in zip(("grader", "detector"), parts(module)):
        if part is not None:
            margin = float(getattr(part, "fov_margin", 0.0))
            if margin not in done:
                done[margin] = [
                    square_fundus(item["original"], margin, item.get("fov")) for item in items
                ]
            views[name] = done[margin]
    return views


def run_model(module: Any, squares: dict[str, list[np.ndarray]]) -> tuple[Any, Any, Any]:
    """Call the model once on square views (``squares[part]``, one list per part it
    has): (grader input, decoded grades, detections).

    A ``screen`` model is called as a whole (``module(views)``), so the pipeline
    sees one model call per batch (benchmarks rely on it).
    """
    import torch

    from eyescan_drgrade.models import parts

    grader, detector = parts(module)
    x = grader_input(grader, squares["grader"]) if grader is not None else None
    images = detector_input(detector, squares["detector"]) if detector is not None else None
    module.eval()
    with torch.no_grad():
        if grader is not None and detector is not None:
            logits, outputs = module([{"grader": g, "detector": d} for g, d in zip(x, images)])
        elif grader is not None:
            logits, outputs = module(x), None
        else:
            logits, outputs = None, module(images)
    graded = decode_grades(grader, logits) if logits is not None else None
    detected = decode_detections(outputs) if outputs is not None else None
    return x, graded, detected


def run_detector(detector: Any, squares: list[np.ndarray]) -> list[dict[str, Any]]:
    """Detections (detector frame) of square fundus views."""
    return run_model(detector, {"detector": squares})[2]


def cam_target(grader: Any, grade: int) -> int:
    """The logit Grad-CAM explains: the grade's (CE) or "grade ≥ predicted" (ordinal)."""
    return int(grade) if grader.head == "ce" else max(int(grade), 1) - 1


def predict_items(
    module: Any,
    items: list[dict[str, Any]],
    explain: bool = False,
    referable_threshold: float | None = None,
) -> list[Prediction]:
    """Grade, DME risk and/or lesions of preprocessed items (:func:`fundus_item`), as
    the prediction records show them.

    ``arrays["detections"]`` keeps every detection (original pixels, with scores)
    for evaluation; ``values["lesions"]`` only those at the operating threshold.
    ``referable`` is ``grade >= 2`` (the final grade); with ``referable_threshold``
    (``eyescan predict --threshold``) it is ``referable_probability >= threshold``
    instead (the recorded, rounded probability), the grade unchanged, and the
    threshold is recorded as ``referable_threshold``. That needs the grader.
    """
    from eyescan_drgrade.models import parts

    grader, detector = parts(module)
    if referable_threshold is not None and grader is None:
        raise EyescanError(
            "drgrade --threshold decides referable DR on P(referable), which this model "
            "(a lesion detector without a grader) does not give"
        )
    settings = predict_settings(module, explain)
    views = square_views(module, items)
    squares = {part: [square for square, _ in found] for part, found in views.items()}
    x, graded, detected = run_model(module, squares)
    results = []
    for i, item in enumerate(items):
        original = item["original"]
        values: dict[str, Any] = {}
        arrays: dict[str, Any] = {}
        by_classifier = by_lesions = None
        if graded is not None:
            by_classifier = int(graded["grades"][i])
            values["referable_probability"] = round(float(graded["referable"][i]), 4)
            values["grade_classifier"] = by_classifier
            values["probabilities"] = [round(float(p), 4) for p in graded["probabilities"][i]]
            if "dme_risk" in graded:
                values["dme_risk"] = int(graded["dme_risk"][i])
                values["dme_probabilities"] = [
                    round(float(p), 4) for p in graded["dme_probabilities"][i]
                ]
        if detected is not None:
            found = detected[i]
            frame = views["detector"][i][1]
            boxes = frame.to_original(found["boxes"], detector.image_size)
            h, w = original.shape[:2]
            boxes = np.clip(boxes, 0, [w, h, w, h])
            arrays["detections"] = {**found, "boxes": boxes}
            keep = found["scores"] >= detector.score_threshold
            names = [n for n, k in zip(found["labels"], keep) if k]
            summary = lesion_summary(names, boxes[keep])
            by_lesions = grade_from_lesions(
                summary["counts"], detector.severe_haemorrhages, detector.moderate_lesions
            )
            values["grade_lesions"] = by_lesions
            values["lesion_counts"] = summary["counts"]
            values["lesion_areas_px"] = summary["areas"]
            lesions = [
                {"label": n, "score": round(float(s), 3), "box": [round(float(v), 1) for v in b]}
                for n, s, b in zip(names, found["scores"][keep], boxes[keep])
            ]  # by falling score; ties by position, so the order is the same on any backend
            values["lesions"] = sorted(lesions, key=lambda x: (-x["score"], x["box"], x["label"]))
        if graded is not None and detected is not None:
            values["combine"] = settings["combine"]
        final = combine_grades(by_classifier, by_lesions, settings["combine"])
        values = {**grade_record(final), **values}
        if referable_threshold is not None:  # predict --threshold: on P(referable)
            values["referable"] = bool(values["referable_probability"] >= referable_threshold)
            values["referable_threshold"] = referable_threshold
        if settings["gradcam"] and grader is not None:
            from eyescan.api import explain

            heat = explain.grad_cam(
                grader,
                grader.cam_layer,
                x[i : i + 1],
                cam_target(grader, by_classifier),
            )
            arrays["gradcam"] = views["grader"][i][1].heat_to_original(heat, original.shape[:2])
        results.append(Prediction(values, arrays, original))
    return results
