"""Evaluation of Red-Seg at the resolution of the ground truth.

Each image's maps are computed at the model's input width and **up-sampled to
the image's (= the masks') size**; the masks are never down-sampled, so a
microaneurysm of one or two pixels still counts. Per lesion type (MA, HE):

- pixel metrics (P/R/F1/AUC-PR/AUC-ROC, lesion-level component counts) pool all
  pixels of the images that have a mask of that lesion (the seed's protocol);
- image level: AUC of "the image has this lesion" scored by the maximum
  probability inside the field of view; truth: a non-empty mask or at least one box;
- lesion level (FROC) on the images with boxes: the connected components of the
  map at the lesion's candidate threshold, each scored by its maximum probability,
  hit a box when they overlap it (``api.metrics.froc_matches``/``froc``).

The images come from ``api.read_split`` (IDRiD: the official test set; unsplit
data: the core's hold-out), recorded in ``summary["data_split"]``. The operating
threshold (P, R, F1, presence, component counts) is the model card's
``thresholds`` (chosen on validation images of the training set; 0.5 without),
never one chosen on the scored images. Intervals resample images: per-image
additive statistics are summed over each resample; point estimates are exact, the
resampled pixel AUCs use score histograms.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eyescan.api import Sample, bootstrap, fundus, get_registry, imageio, metrics, read_task_split
from eyescan_redlesion.data import (
    LESIONS,
    LesionSample,
    card_view,
    read_truth,
    reader_mask_threshold,
)
from eyescan_redlesion.lesions import card_thresholds, detection_counts, detection_rates
from eyescan_redlesion.models import lesion_probabilities

#: Lesion-count fields of :func:`detection_counts`, in the order they are stored.
COUNT_KEYS = ("truths", "detected", "predicted", "true_predicted")
#: Summary keys of the FROC sensitivities, one per rate of false positives per image.
FROC_KEYS = tuple(f"froc_at_{rate:g}_fp" for rate in metrics.FROC_RATES)
_EMPTY_STATS = np.zeros(4 + 2 * bootstrap.BINS)


def pooled(
    model: torch.nn.Module, samples: list[LesionSample]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """All pixels' truth and probability per lesion type of decoded samples at the model's
    scale (training's validation images, where the card's thresholds are chosen)."""
    was_training = model.training
    model.eval()
    truth: dict[str, list[np.ndarray]] = {name: [] for name in LESIONS}
    score: dict[str, list[np.ndarray]] = {name: [] for name in LESIONS}
    with torch.no_grad():
        for sample in samples:
            probs = lesion_probabilities(model, sample.image)
            for name in LESIONS:
                truth[name].append(getattr(sample, name).ravel())
                score[name].append(probs[name].ravel())
    model.train(was_training)
    return (
        {k: np.concatenate(v) for k, v in truth.items()},
        {k: np.concatenate(v) for k, v in score.items()},
    )


@dataclass
class ScoredImage:
    """One image's maps (at the truth's size), truths and field of view."""

    probabilities: dict[str, np.ndarray]
    masks: dict[str, np.ndarray | None]  # None: no pixel truth for that lesion
    boxes: dict[str, list] | None  # None: no boxes
    fov: np.ndarray


def score_image(
    module: torch.nn.Module,
    sample: Sample,
    view: dict[str, int | None] | None = None,
    mask_threshold: int | None = None,
) -> ScoredImage:
    """The model's MA/HE maps of ``sample`` up-sampled to its masks' size, with the masks.

    The network sees the model's ``view`` of the image (``data.card_view``:
    ``input_width`` / ``fov_width``); its maps are resized back to the image, whose
    size the masks must have.
    """
    image = imageio.read_image(sample.image)
    masks = read_truth(sample, image.shape[:2], mask_threshold)
    fov = fundus.fov_mask(image)
    was_training = module.training
    module.eval()
    with torch.no_grad():
        probs = lesion_probabilities(module, image, **(view or {}), fov=fov)
    module.train(was_training)
    return ScoredImage(probs, masks, getattr(sample, "boxes", None), fov)


@dataclass
class LesionEvidence:
    """Per-image additive evidence of one lesion type, for the summary and its resamples."""

    stats: list[np.ndarray] = field(default_factory=list)  # pooled_pixel_stats (zeros: no mask)
    counts: list[list[int]] = field(default_factory=list)  # COUNT_KEYS (zeros: no mask)
    has_mask: list[bool] = field(default_factory=list)
    present: list[float] = field(default_factory=list)  # 1 / 0, NaN: unknown
    score: list[float] = field(default_factory=list)  # max probability in the FOV
    froc: list[metrics.FrocMatches | None] = field(default_factory=list)  # None: no boxes
    truth: list[np.ndarray] = field(default_factory=list)  # pixels of masked images
    pixels: list[np.ndarray] = field(default_factory=list)

    def arrays(self) -> dict[str, Any]:
        return {
            "stats": np.stack(self.stats) if self.stats else np.zeros((0, len(_EMPTY_STATS))),
            "counts": np.asarray(self.counts, np.float64).reshape(-1, len(COUNT_KEYS)),
            "present": np.asarray(self.present, np.float64),
            "score": np.asarray(self.score, np.float64),
            "froc": list(self.froc),
        }


def add_image(
    evidence: LesionEvidence,
    prob: np.ndarray,
    mask: np.ndarray | None,
    boxes: list | None,
    fov: np.ndarray,
    threshold: float,
    froc_threshold: float,
    froc_hit: str = "overlap",
) -> dict[str, Any]:
    """Add one image's evidence of one lesion type; returns its per-image fields."""
    region = fov if fov.any() else np.ones_like(fov)
    score = float(prob[region].max())
    row: dict[str, Any] = {"score": score, "present": score >= threshold}
    truth_present = None
    if mask is not None:
        found = detection_counts(mask, prob >= threshold)
        evidence.stats.append(bootstrap.pooled_pixel_stats(prob, mask, threshold))
        evidence.counts.append([found[k] for k in COUNT_KEYS])
        evidence.truth.append(mask.ravel())
        evidence.pixels.append(prob.ravel().astype(np.float32))
        truth_present = bool(mask.any())
        row.update(
            truth_count=found["truths"],
            count=found["predicted"],
            detected=found["detected"],
            auc_pr=metrics.auc_pr(mask, prob),
        )
    else:
        evidence.stats.append(_EMPTY_STATS)
        evidence.counts.append([0] * len(COUNT_KEYS))
    evidence.has_mask.append(mask is not None)
    if boxes is not None:
        matches = metrics.froc_matches(prob, boxes, froc_threshold, region, froc_hit)
        evidence.froc.append(matches)
        truth_present = bool(truth_present) or bool(len(boxes))
        row.update(boxes=len(boxes), boxes_hit=int(np.isfinite(matches[0]).sum()))
    else:
        evidence.froc.append(None)
    evidence.present.append(np.nan if truth_present is None else float(truth_present))
    evidence.score.append(score)
    row["true_present"] = truth_present
    return row


def froc_curve(arrays: dict[str, Any], idx: np.ndarray) -> dict[str, Any]:
    """``api.metrics.froc`` of the images ``idx`` (may repeat) that have boxes."""
    return metrics.froc([arrays["froc"][i] for i in idx if arrays["froc"][i] is not None])


def image_and_froc_metrics(
    name: str, arrays: dict[str, Any], idx: np.ndarray, curve: dict[str, Any] | None = None
) -> dict[str, float]:
    """Image-level AUC and FROC of one lesion type over the images ``idx`` (may repeat;
    ``curve``: their :func:`froc_curve` when already computed)."""
    present, score = arrays["present"][idx], arrays["score"][idx]
    known = np.isfinite(present)
    out = {f"{name}_image_auc": metrics.rank_auc(present[known] > 0, score[known])}
    curve = froc_curve(arrays, idx) if curve is None else curve
    out[f"{name}_froc"] = curve["froc"]
    out.update({f"{name}_{k}": s for k, s in zip(FROC_KEYS, curve["sensitivities"])})
    return out


def resampled_metrics(
    stats: dict[str, np.ndarray],
    counts: dict[str, np.ndarray],
    images: dict[str, dict[str, Any]] | None = None,
) -> Callable[[np.ndarray], dict[str, float]]:
    """``compute(indices)`` of the headline metrics for ``api.bootstrap.bootstrap_ci``.

    ``stats[name]`` holds one ``pooled_pixel_stats`` row per image, ``counts[name]``
    one row of :data:`COUNT_KEYS` per image (zeros for images without a mask);
    ``images[name]`` (:meth:`LesionEvidence.arrays`) adds the image-level AUC and FROC.
    """

    def compute(idx: np.ndarray) -> dict[str, float]:
        out: dict[str, float] = {}
        for name in LESIONS:
            total = stats[name][idx].sum(axis=0)
            pixel = bootstrap.pixel_metrics(total)
            tp, fp = total[0], total[1]
            lesions = dict(zip(COUNT_KEYS, counts[name][idx].sum(axis=0).tolist()))
            out.update(
                {
                    f"{name}_auc_pr": pixel["auc_pr"],
                    f"{name}_auc_roc": pixel["auc_roc"],
                    f"{name}_precision": float(tp / (tp + fp)) if tp + fp else float("nan"),
                    f"{name}_recall": pixel["sensitivity"],
                    f"{name}_f1": pixel["f1"],
                    **{f"{name}_{k}": v for k, v in detection_rates(lesions).items()},
                }
            )
            if images is not None:
                out.update(image_and_froc_metrics(name, images[name], idx))
        return out

    return compute


def lesion_summary(
    name: str,
    evidence: LesionEvidence,
    arrays: dict[str, Any],
    threshold: float,
    froc_threshold: float,
) -> dict[str, Any]:
    """The summary fields of one lesion type (exact pixel metrics over masked images;
    ``arrays``: ``evidence.arrays()``)."""
    out: dict[str, Any] = {
        f"{name}_threshold": threshold,
        f"{name}_mask_images": int(sum(evidence.has_mask)),
    }
    if evidence.truth:
        truth, score = np.concatenate(evidence.truth), np.concatenate(evidence.pixels)
        m = metrics.binary_metrics(truth, score, threshold=threshold)
        out.update(
            {
                f"{name}_auc_pr": m["auc_pr"],
                f"{name}_auc_roc": m["auc_roc"],
                f"{name}_precision": m["precision"],
                f"{name}_recall": m["sensitivity"],
                f"{name}_f1": m["f1"],
            }
        )
    else:
        nan = float("nan")
        keys = ("auc_pr", "auc_roc", "precision", "recall", "f1")
        out.update({f"{name}_{k}": nan for k in keys})
    totals = dict(zip(COUNT_KEYS, np.asarray(evidence.counts).sum(axis=0).tolist()))
    known = np.isfinite(arrays["present"])
    every = np.arange(len(evidence.score))
    curve = froc_curve(arrays, every)
    out.update(
        {
            **{f"{name}_{k}": v for k, v in detection_rates(totals).items()},
            f"{name}_lesions": totals["truths"],
            f"{name}_lesions_detected": totals["detected"],
            f"{name}_components_predicted": totals["predicted"],
            f"{name}_present_images": int(np.sum(arrays["present"][known] > 0)),
            f"{name}_absent_images": int(np.sum(arrays["present"][known] == 0)),
            f"{name}_froc_images": curve["images"],
            f"{name}_froc_lesions": curve["lesions"],
            f"{name}_froc_false_positives": curve["false_positives"],
            f"{name}_froc_threshold": froc_threshold,
            **image_and_froc_metrics(name, arrays, every, curve),
        }
    )
    return out


def evaluate(model: Any, data: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Pixel, image-level and lesion-level (FROC) metrics per lesion type at the truth's
    resolution, 95 % CIs over images (``ci95``) and the images scored (``data_split``).

    ``options["froc_threshold"]`` sets the candidate threshold of the FROC
    components (default: the card's operating threshold of each lesion) and
    ``options["froc_hit"]`` their hit rule (``overlap``, the default, or ``peak``:
    see ``api.metrics.froc_matches``).
    """
    registry = get_registry()
    split = options.get("split") or "test"
    chosen = read_task_split("redlesion", Path(data), options, split)
    mask_threshold = reader_mask_threshold(registry, chosen.reader)
    card = model.card or {}
    view = card_view(card)
    thresholds = card_thresholds(card)
    froc_thresholds = {
        name: float(options.get("froc_threshold") or thresholds[name]) for name in LESIONS
    }
    froc_hit = options.get("froc_hit") or "overlap"
    evidence = {name: LesionEvidence() for name in LESIONS}
    per_image: list[dict[str, Any]] = []
    for sample in chosen.samples:
        scored = score_image(model.module, sample, view, mask_threshold)
        row: dict[str, Any] = {"id": sample.id, "input": str(sample.image)}
        for name in LESIONS:
            fields = add_image(
                evidence[name],
                scored.probabilities[name],
                scored.masks[name],
                None if scored.boxes is None else scored.boxes.get(name, []),
                scored.fov,
                thresholds[name],
                froc_thresholds[name],
                froc_hit,
            )
            row.update({f"{name}_{k}": v for k, v in fields.items()})
        per_image.append(row)
        if options.get("on_event"):
            options["on_event"]({"event": "image", "id": sample.id})
    summary: dict[str, Any] = {
        "data": str(data),
        "reader": chosen.reader,
        "split": split,
        "images": len(chosen.samples),
        "input_width": view["input_width"],
        "fov_width": view["fov_width"],
        "region": "all pixels of the images with masks, at the masks' resolution",
        "froc_hit": froc_hit,
    }
    arrays = {name: evidence[name].arrays() for name in LESIONS}
    for name in LESIONS:
        summary.update(
            lesion_summary(
                name, evidence[name], arrays[name], thresholds[name], froc_thresholds[name]
            )
        )
    compute = resampled_metrics(
        {n: a["stats"] for n, a in arrays.items()},
        {n: a["counts"] for n, a in arrays.items()},
        arrays,
    )
    bootstrap.with_ci(summary, len(chosen.samples), compute)
    summary["data_split"] = chosen.info
    return {"summary": summary, "images": per_image}
