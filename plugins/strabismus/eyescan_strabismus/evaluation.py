"""Evaluation of both stages, with 95 % bootstrap intervals over images.

The detector: AP@0.5 (VOC all-point), the share of images whose best box
(score ≥ 0.5) overlaps the truth by IoU ≥ 0.5, mean IoU, boxes wrongly found
on images without an eye region. A classifier: the seed's table (TP, TN, FP,
FN, sensitivity, specificity, accuracy, AUC) on crops of the annotated boxes,
and the whole pipeline (detector → crop → classifier, ``pipeline_*``) on all
the same photographs: a photograph without an eye region found is a failure
of the screening, never left out (:func:`pipeline_figures`). ``summary["n"]``
gives the number of images each metric stands on; with sub-types in the data
(the manifest's ``subtype`` column) ``by_subtype`` and ``pipeline_by_subtype``
count how each sub-type was called. The scored split follows the core's rule
(:func:`eyescan.api.read_split`) and is recorded in ``summary["data_split"]``;
every headline metric gets ``summary["ci95"]``.
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
#: The end-to-end AUC's score for a photograph without an eye region found: decision-
#: neutral (no evidence either way; it ties with other such photographs, a tie counts one
#: half). The thresholded metrics do not use it: such a photograph is a failure there.
NO_REGION_SCORE = 0.5


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
        {
            "id": i.id,
            "label": int(i.label),
            **({"subtype": i.subtype} if i.subtype else {}),
            "strabismus_probability": float(p),
        }
        for i, p in zip(items, prob)
    ]
    pipeline_prob = pipeline_probabilities(task, registry, model, items, rows, summary)

    def figures(idx: np.ndarray) -> dict[str, float]:
        out = _classifier_figures(truth[idx], prob[idx])
        if pipeline_prob is not None:
            out.update(pipeline_figures(truth[idx], pipeline_prob[idx]))
        return out

    summary["n"] = metric_counts(truth, prob >= THRESHOLD)
    if pipeline_prob is not None:
        summary.update(pipeline_counts(truth, pipeline_prob))
        summary.update(pipeline_figures(truth, pipeline_prob))
        summary["n"].update(
            pipeline_accuracy=len(truth),
            pipeline_sensitivity=int(truth.sum()),
            pipeline_specificity=int((~truth).sum()),
            pipeline_auc=len(truth),
        )
    subtypes = [i.subtype for i in items]
    if any(subtypes):
        summary["by_subtype"] = by_subtype(subtypes, prob)
        if pipeline_prob is not None:
            summary["pipeline_by_subtype"] = by_subtype(subtypes, pipeline_prob)
    bootstrap.with_ci(summary, len(items), figures)
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


def metric_counts(truth: np.ndarray, called: np.ndarray) -> dict[str, int]:
    """The number of images each classifier metric stands on (``summary["n"]``)."""
    n = len(truth)
    return {
        "accuracy": n,
        "auc": n,
        "sensitivity": int(truth.sum()),
        "specificity": int((~truth).sum()),
        "precision": int(called.sum()),
        "f1": n,
    }


def decisions(prob: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(found, called, cleared)`` per photograph: an eye region found (``prob`` not NaN),
    called strabismus, called normal (never both; neither without an eye region)."""
    found = ~np.isnan(prob)
    return found, found & (prob >= THRESHOLD), found & (prob < THRESHOLD)


def pipeline_figures(truth: np.ndarray, prob: np.ndarray) -> dict[str, float]:
    """End-to-end metrics over all photographs (``prob`` NaN: no eye region found).

    A photograph without an eye region found is a failure whatever its label:
    a strabismus photograph is missed (it counts against sensitivity), a normal
    one is not cleared (against specificity) — it is neither a true positive
    nor a true negative, so sensitivity = TP / strabismus photographs,
    specificity = TN / normal photographs, accuracy = (TP + TN) / photographs.
    The AUC ranks every photograph, those without an eye region at
    :data:`NO_REGION_SCORE` (0.5).
    """
    found, called, cleared = decisions(prob)
    positives, negatives = int(truth.sum()), int((~truth).sum())
    tp, tn = int((truth & called).sum()), int((~truth & cleared).sum())

    def ratio(num: int, den: int) -> float:
        return num / den if den else float("nan")

    return {
        "pipeline_accuracy": ratio(tp + tn, len(truth)),
        "pipeline_sensitivity": ratio(tp, positives),
        "pipeline_specificity": ratio(tn, negatives),
        "pipeline_auc": metrics.rank_auc(truth, np.where(found, prob, NO_REGION_SCORE)),
    }


def pipeline_counts(truth: np.ndarray, prob: np.ndarray) -> dict[str, Any]:
    """The end-to-end confusion: TP/TN/FP/FN among the photographs with an eye region
    found, and the photographs without one, by label (all failures)."""
    found, called, cleared = decisions(prob)
    missing = int((~found).sum())
    return {
        "pipeline_tp": int((truth & called).sum()),
        "pipeline_tn": int((~truth & cleared).sum()),
        "pipeline_fp": int((~truth & called).sum()),
        "pipeline_fn": int((truth & cleared).sum()),
        "pipeline_no_eye_region_strabismus": int((truth & ~found).sum()),
        "pipeline_no_eye_region_normal": int((~truth & ~found).sum()),
        "pipeline_no_region_score": NO_REGION_SCORE,
        "pipeline_note": (
            f"pipeline metrics on all {len(truth)} images; {missing} without an eye region "
            "found count as failures (a strabismus photograph missed, a normal one not "
            f"cleared; AUC score {NO_REGION_SCORE})"
        ),
    }


def by_subtype(subtypes: list[str | None], prob: np.ndarray) -> dict[str, dict[str, Any]]:
    """How the photographs of each sub-type were called: ``images``, ``strabismus``
    (called strabismus), ``normal`` (called normal), ``no_eye_region`` (``prob`` NaN),
    and ``strabismus_rate`` = strabismus / images with its 95 % bootstrap interval
    (for a normal sub-type, the false-positive rate; a photograph without an eye
    region counts as not called strabismus). Images without a sub-type are left out.
    """
    out: dict[str, dict[str, Any]] = {}
    names = np.array([s or "" for s in subtypes])
    for name in sorted({s for s in subtypes if s}):
        p = prob[names == name]
        found, called, cleared = decisions(p)

        def rate(idx: np.ndarray, called: np.ndarray = called) -> dict[str, float]:
            return {"strabismus_rate": float(called[idx].mean())}

        out[name] = {
            "images": len(p),
            "strabismus": int(called.sum()),
            "normal": int(cleared.sum()),
            "no_eye_region": int((~found).sum()),
            "strabismus_rate": float(called.mean()),
            "ci95": bootstrap.bootstrap_ci(len(p), rate)["strabismus_rate"],
        }
    return out


def pipeline_probabilities(
    task: Any, registry: Any, model: Any, items: list[LoadedEye], rows: list[dict], summary: dict
) -> np.ndarray | None:
    """Detector → crop → classifier on ``items``: probabilities (NaN: no eye region found).

    Writes the counts (``pipeline_images``: all photographs run,
    ``pipeline_eye_region_found``, ``pipeline_no_eye_region``) and the detector
    used into ``summary`` (and
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
    found = int((~np.isnan(out)).sum())
    summary.update(
        pipeline_images=len(items),
        pipeline_eye_region_found=found,
        pipeline_no_eye_region=len(items) - found,
        pipeline_detector={
            "weights": str(detector.weights),
            "sha256": detector.sha256,
            "synthetic_only": bool(detector.card.get("synthetic_only")),
            "chosen_by": getattr(detector, "chosen_by", None),
        },
    )
    return out
