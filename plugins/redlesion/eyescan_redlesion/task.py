"""The redlesion task: prediction of MA/HE maps, counts, areas and a two-colour overlay.

Training and evaluation live in ``training.py`` and ``evaluation.py`` (imported
when called); the network and its probability maps in ``models.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from eyescan.api import (
    Need,
    Prediction,
    Task,
    fundus,
    given_fov,
    imageio,
    operating_threshold,
    overlays,
)
from eyescan_redlesion.data import LESIONS, card_view

WEIGHTS_DIR = Path(__file__).parent / "weights"
#: Overlay colours: microaneurysms green (ringed, they are tiny), haemorrhages blue.
COLOURS = {"ma": (0, 255, 0), "he": (0, 120, 255)}
#: At most this many microaneurysm rings are drawn on an overlay.
MAX_RINGS = 500


class RedLesionTask(Task):
    name = "redlesion"
    kind = "segment"
    description = "Red-lesion (microaneurysm, haemorrhage) segmentation of fundus photographs"
    default_model = "redseg-mobilenet"
    weights_dir = WEIGHTS_DIR
    needs: ClassVar[tuple[Need, ...]] = (
        Need("fov", help="field-of-view mask used instead of the estimated one"),
    )
    fundus = True
    min_side = 32  # smaller or thinner photos: refused by the core
    max_aspect = 4
    summary_outputs: ClassVar[dict[str, str]] = {"ma_count": "MA", "he_count": "HE"}

    def preprocess(self, image: np.ndarray, source: str, provided: Any = None) -> dict[str, Any]:
        """The photo and its FOV: ``provided["fov"]`` (``eyescan predict --fov``) when
        given, else estimated. The FOV frames the model's view and bounds the masks."""
        given = given_fov(provided, image, source)
        if given is None:
            return {"original": image, "fov": fundus.fov_mask(image)}
        return {"original": image, "fov": given, "fov_given": True}

    def predict(self, model: Any, batch: list[dict[str, Any]]) -> list[Prediction]:
        from eyescan_redlesion.lesions import card_thresholds, summarise
        from eyescan_redlesion.models import lesion_probabilities

        card = getattr(model, "card", {}) or {}
        view = card_view(card)
        thresholds = card_thresholds(card)
        user = operating_threshold(self.options)
        if user is not None:  # predict --threshold: one value for every lesion type
            thresholds = {name: user for name in LESIONS}
        results = []
        for item in batch:
            fov = item["fov"]
            probs = lesion_probabilities(model.module, item["original"], **view, fov=fov)
            arrays: dict[str, Any] = {"fov": fov}
            stats = {}
            for name in LESIONS:
                mask = (probs[name] >= thresholds[name]) & fov
                stats[name] = summarise(mask, probs[name], fov)
                arrays[name] = probs[name]
                arrays[f"{name}_mask"] = mask
            # counts first, then areas: the CLI's table shows the first few values
            values: dict[str, Any] = {
                f"{name}_{key}": stats[name][key]
                for key in ("count", "area_px", "area_fraction", "max_probability")
                for name in LESIONS
            }
            # image level: a lesion is present when its maximum probability in the
            # FOV reaches the card's operating threshold
            for name in LESIONS:
                values[f"{name}_score"] = stats[name]["max_probability"]
                values[f"{name}_present"] = stats[name]["max_probability"] >= thresholds[name]
            values.update(
                {
                    "thresholds": thresholds,
                    "height": int(fov.shape[0]),
                    "width": int(fov.shape[1]),
                    "fov_pixels": int(fov.sum()),
                    "model_input_width": view["input_width"] or int(fov.shape[1]),
                    "model_fov_width": view["fov_width"],
                }
            )
            if item.get("fov_given"):  # predict --fov
                values["fov_source"] = "given"
            results.append(Prediction(values, arrays, item["original"]))
        return results

    def report(self, prediction: Prediction, out_dir: Path, stem: str) -> dict[str, str]:
        files = {
            "ma_probability": f"{stem}_ma.png",
            "he_probability": f"{stem}_he.png",
            "overlay": f"{stem}_overlay.png",
        }
        arrays = prediction.arrays
        bits = 16 if self.options.get("prob16") else 8  # predict --prob16
        for name in LESIONS:
            imageio.save_probability(out_dir / files[f"{name}_probability"], arrays[name], bits)
        imageio.save_png(
            out_dir / files["overlay"],
            lesion_overlay(prediction.image, arrays["ma_mask"], arrays["he_mask"]),
        )
        return files

    def train(self, data: Path, options: dict[str, Any]) -> dict[str, Any]:
        from eyescan_redlesion.training import train

        return train(self, data, options)

    def evaluate(self, model: Any, data: Path, options: dict[str, Any]) -> dict[str, Any]:
        from eyescan_redlesion.evaluation import evaluate

        return evaluate(model, data, options)


def lesion_overlay(image: np.ndarray, ma: np.ndarray, he: np.ndarray) -> np.ndarray:
    """Haemorrhages and microaneurysms in two colours; each MA also gets a ring."""
    from skimage.draw import circle_perimeter

    from eyescan_redlesion.lesions import components

    out = overlays.overlay_mask(image, he, COLOURS["he"], 0.6)
    out = overlays.overlay_mask(out, ma, COLOURS["ma"], 0.8)
    labels, count = components(ma)
    if count:
        from scipy import ndimage

        radius = max(4, min(image.shape[:2]) // 100)
        centres = ndimage.center_of_mass(ma, labels, range(1, min(count, MAX_RINGS) + 1))
        for cy, cx in centres:
            rr, cc = circle_perimeter(int(round(cy)), int(round(cx)), radius, shape=image.shape[:2])
            out[rr, cc] = COLOURS["ma"]
    return out
