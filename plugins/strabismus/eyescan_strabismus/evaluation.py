"""Evaluation of both stages, with 95 % bootstrap intervals over images.

The detector: AP@0.5 (VOC all-point), the share of images whose best box
(score ≥ 0.5) overlaps the truth by IoU ≥ 0.5, mean IoU, boxes wrongly found
on images without an eye region. A classifier: the seed's table (TP, TN, FP,
FN, sensitivity, specificity, accuracy, AUC) on crops of the annotated boxes,
and the whole pipeline (detector → crop → classifier, ``pipeline_*``) on the
same images with the counts it stands on (``pipeline_images`` scored,
``pipeline_no_eye_region`` without an eye region found). The scored split
follows the core's rule (:func:`eyescan.api.read_split`) and is recorded in
``summary["data_split"]``; every headline metric gets ``summary["ci95"]``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eyescan.api import DataError, WeightsError, bootstrap, get_registry, metrics, read_task_split
from eyescan_strabismus.data import (
    BOX_LABEL,
    LoadedEye,
    classifier_tensor,
    crop,
    load_sample,
    main_box,
)
from eyescan_strabismus.models import CLASSES
from eyescan_strabismus.pipeline import (
    DETECTOR,
    FOUND_SCORE,
    THRESHOLD,
    best_detection,
    classify,
    detect,
    detector_choice,
    input_size,
    load_detector,
)

#: Classifier metrics that get an interval (summary key -> binary_metrics key).
CLASSIFIER_METRICS = {
    "accuracy": "accuracy",
    "auc": "auc_roc",
    "sensitivity": "sensitivity",
    "specificity": "specificity",
    "precision": "precision",
    "f1": "f1",
}
#: Pipeline metrics (on the images where an eye region was found).
PIPELINE_METRICS = ("accuracy", "sensitivity", "specificity", "auc")


def evaluate(task: Any, model: Any, data: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Detector: AP@0.5; classifier: TP/TN/FP/FN, Se, Sp, Acc, AUC (the seed's table)."""
    registry = get_registry()
    split = options.get("split") or "test"
    chosen = read_task_split("strabismus", data, options, split)
    base = {"data": str(data), "reader": chosen.reader, "split": split}
    if model.name == DETECTOR:
        result = evaluate_detector(model, chosen.samples, base)
    else:
        result = evaluate_classifier(task, registry, model, chosen.samples, base)
    result["summary"]["data_split"] = chosen.info
    return result


def detector_ap(detector: torch.nn.Module, items: list[LoadedEye]) -> dict[str, Any]:
    """AP@0.5 of the detector on annotated images, its detections and best box per image."""
    predictions, truths, best = [], [], []
    for start in range(0, len(items), 16):
        chunk = items[start : start + 16]
        for item, det in zip(chunk, detect(detector, [i.image for i in chunk])):
            predictions.append(
                {
                    "boxes": det["boxes"],
                    "labels": [BOX_LABEL] * len(det["boxes"]),
                    "scores": det["scores"],
                }
            )
            truths.append(
                {
                    "boxes": np.asarray(item.boxes).reshape(-1, 4),
                    "labels": [BOX_LABEL] * len(item.boxes),
                }
            )
            best.append(best_detection(det))
    ap = metrics.detection_ap(predictions, truths, iou_threshold=0.5)
    value = ap["per_class"].get(BOX_LABEL, {}).get("ap", float("nan"))
    return {"ap50": value, "detail": ap, "best": best, "truths": truths, "predictions": predictions}


def evaluate_detector(model: Any, samples: list, base: dict[str, Any]) -> dict[str, Any]:
    """AP@0.5 and the best-box figures of the detector, with intervals over images."""
    items = [load_sample(s) for s in samples if getattr(s, "boxes", None) is not None]
    if not items:
        raise DataError(f"{base['data']}: no eye-region boxes to evaluate the detector on")
    started = time.perf_counter()
    result = detector_ap(model.module, items)
    seconds = time.perf_counter() - started
    rows = []
    for item, (box, score), truth in zip(items, result["best"], result["truths"]):
        found = box is not None and score >= FOUND_SCORE
        has_eyes = len(truth["boxes"]) > 0
        iou = float(metrics.box_iou(box, truth["boxes"]).max()) if found and has_eyes else 0.0
        rows.append(
            {
                "id": item.id,
                "truths": len(truth["boxes"]),
                "score": score,
                "iou": iou,
                "found": found,
            }
        )
    with_eyes = np.array([r["truths"] > 0 for r in rows])
    found = np.array([r["found"] for r in rows])
    ious = np.array([r["iou"] for r in rows])
    parts = [
        metrics.match_detections(p, t) for p, t in zip(result["predictions"], result["truths"])
    ]

    def figures(idx: np.ndarray) -> dict[str, float]:
        eyes = idx[with_eyes[idx]]
        return {
            "ap50": metrics.pooled_detection([parts[i] for i in idx])["map"],
            "best_box_found_iou50": (
                float(np.mean(found[eyes] & (ious[eyes] >= 0.5))) if len(eyes) else float("nan")
            ),
            "mean_best_iou": float(np.mean(ious[eyes])) if len(eyes) else float("nan"),
        }

    detail = result["detail"]["per_class"].get(BOX_LABEL, {})
    summary = {
        **base,
        "images": len(items),
        "images_with_eye_region": int(with_eyes.sum()),
        **figures(np.arange(len(items))),
        "ap50": result[
            "ap50"
        ],  # the core's detection_ap (pooled_detection agrees; used for the CI)
        "false_regions_on_images_without_eyes": int((found & ~with_eyes).sum()),
        "precision_all_detections": detail.get("precision", float("nan")),
        "recall_all_detections": detail.get("recall", float("nan")),
        "found_score": FOUND_SCORE,
        "ms_per_image": 1000 * seconds / len(items),
    }
    bootstrap.with_ci(summary, len(items), figures)
    return {"summary": summary, "images": rows}


def evaluate_classifier(
    task: Any, registry: Any, model: Any, samples: list, base: dict[str, Any]
) -> dict[str, Any]:
    """The seed's table on the annotated crops, and the pipeline on the same images."""
    items = [load_sample(s) for s in samples if s.label is not None]
    if not items:
        raise DataError(f"{base['data']}: no labelled images to evaluate the classifier on")
    size = input_size(model)
    module = model.module.eval()
    probs = []
    started = time.perf_counter()
    with torch.no_grad():
        for start in range(0, len(items), 32):
            chunk = items[start : start + 32]
            x = classifier_tensor(
                [crop(i.image, main_box(i.boxes, i.image.shape), size) for i in chunk]
            )
            probs.append(torch.softmax(module(x), 1)[:, 1].numpy())
    seconds = time.perf_counter() - started
    prob = np.concatenate(probs)
    truth = np.array([i.label for i in items]) == 1
    m = metrics.binary_metrics(truth, prob, threshold=THRESHOLD)
    summary: dict[str, Any] = {
        **base,
        "images": len(items),
        "crops": "annotated boxes" if any(i.boxes for i in items) else "whole images",
        "input_size": size,
        **{k: m[k] for k in ("tp", "tn", "fp", "fn")},
        **{name: m[key] for name, key in CLASSIFIER_METRICS.items()},
        "threshold": THRESHOLD,
        "ms_per_image": 1000 * seconds / len(items),
    }
    rows = [
        {"id": i.id, "label": int(i.label), "strabismus_probability": float(p)}
        for i, p in zip(items, prob)
    ]
    pipeline_prob = pipeline_probabilities(task, registry, model, items, rows, summary)

    def figures(idx: np.ndarray) -> dict[str, float]:
        out = _classifier_figures(truth[idx], prob[idx])
        if pipeline_prob is not None:
            out.update(_pipeline_figures(truth[idx], pipeline_prob[idx]))
        return out

    if pipeline_prob is not None:
        summary.update(_pipeline_figures(truth, pipeline_prob))
        scored = ~np.isnan(pipeline_prob)
        if scored.any():  # point estimates: the core's binary_metrics
            m = metrics.binary_metrics(truth[scored], pipeline_prob[scored], threshold=THRESHOLD)
            summary.update({f"pipeline_{k}": m[CLASSIFIER_METRICS[k]] for k in PIPELINE_METRICS})
    bootstrap.with_ci(summary, len(items), figures)
    if pipeline_prob is not None and summary["pipeline_images"] < 2:
        for key in PIPELINE_METRICS:  # as the core's rule for fewer than 2 images: none
            summary["ci95"][f"pipeline_{key}"] = None
    scores = {
        "y_true": [int(t) for t in truth],
        "y_prob": [[float(1 - p), float(p)] for p in prob],
        "classes": list(CLASSES),
    }
    return {"summary": summary, "images": rows, "scores": scores}


def _classifier_figures(truth: np.ndarray, prob: np.ndarray) -> dict[str, float]:
    """The headline classifier metrics of one resample (counts at the threshold, AUC)."""
    rates = metrics.binary_rates(truth, prob, THRESHOLD)
    out = {name: rates[name] for name in CLASSIFIER_METRICS if name != "auc"}
    return {**out, "auc": rates["auc_roc"]}


def _pipeline_figures(truth: np.ndarray, prob: np.ndarray) -> dict[str, float]:
    """Pipeline metrics on the images with an eye region found (``prob`` not NaN)."""
    scored = ~np.isnan(prob)
    if not scored.any():
        return {f"pipeline_{k}": float("nan") for k in PIPELINE_METRICS}
    figures = _classifier_figures(truth[scored], prob[scored])
    return {f"pipeline_{k}": figures[k] for k in PIPELINE_METRICS}


def pipeline_probabilities(
    task: Any, registry: Any, model: Any, items: list[LoadedEye], rows: list[dict], summary: dict
) -> np.ndarray | None:
    """Detector → crop → classifier on ``items``: probabilities (NaN: no eye region found).

    Writes the counts and the detector used into ``summary`` (and
    ``pipeline_probability`` into ``rows``). Without a detector (the card
    names none and the plugin ships none) the pipeline is skipped and the
    summary says why; a detector the card names but that is not found with
    its SHA-256 is an error.
    """
    card_names_one = bool((getattr(model, "card", None) or {}).get("detector"))
    try:
        detector_choice(task, model)
    except WeightsError as exc:
        if card_names_one:
            raise
        summary.update(pipeline_images=0, pipeline_no_eye_region=None, pipeline_skipped=str(exc))
        return None
    detector = load_detector(registry, task, model)
    out = np.full(len(items), np.nan)
    for start in range(0, len(items), 16):
        chunk = items[start : start + 16]
        images = [i.image for i in chunk]
        predictions = classify(model, images, detect(detector.module, images), detector.sha256)
        for k, (row, prediction) in enumerate(zip(rows[start : start + 16], predictions)):
            p = prediction.values["strabismus_probability"]
            row["pipeline_probability"] = p
            if p is not None:
                out[start + k] = p
    scored = int((~np.isnan(out)).sum())
    missing = len(items) - scored
    summary.update(
        pipeline_images=scored,
        pipeline_no_eye_region=missing,
        pipeline_note=(
            f"pipeline metrics on {scored} of {len(items)} images "
            f"({missing} without an eye region found)"
        ),
        pipeline_detector={
            "weights": str(detector.weights),
            "sha256": detector.sha256,
            "synthetic_only": bool(detector.card.get("synthetic_only")),
            "chosen_by": getattr(detector, "chosen_by", None),
        },
    )
    return out
