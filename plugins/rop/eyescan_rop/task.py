"""The rop task: the two-stage cascade per image and its outputs.

Stage 1 says normal or ROP; for images it calls ROP, stage 2 says non-TR or
treatment-requiring (TR) ROP (:mod:`eyescan_rop.cascade`: the stage-1 card
names the stage-2 weights and their SHA-256, so one ``--weights`` file selects
the whole cascade). Grad-CAM overlays are written with ``eyescan predict
--explain`` (``self.options["explain"]``). Training and evaluation live in
``training.py`` and ``evaluation.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from eyescan.api import Need, Prediction, Task, imageio, operating_threshold
from eyescan_rop.cascade import Cascade

#: Why ``vascular_severity`` is null when no task provided a vessel map.
NO_VESSELS = (
    "unavailable: no vessel_probability map was provided "
    "(no installed task provides one: install the eyescan-vessels plugin)"
)

WEIGHTS_DIR = Path(__file__).parent / "weights"


class RopTask(Task):
    name = "rop"
    kind = "classify"
    description = "Retinopathy of prematurity: normal/ROP, then non-TR/treatment-requiring ROP"
    default_model = "mn-rop"
    weights_dir = WEIGHTS_DIR
    needs: ClassVar[tuple[Need, ...]] = (
        Need("vessel_probability", help="vessel map for the plus-disease vascular severity"),
    )
    min_side = 32  # smaller or thinner photos: refused by the core
    max_aspect = 4

    def prepare(self, model: Any) -> None:
        """Load the stage-2 companion the stage-1 card names (hash-checked), before any record."""
        Cascade.of(model)

    def preprocess(self, image: np.ndarray, source: str, provided: Any = None) -> dict[str, Any]:
        """The enhanced infant FOV view; the vessel map when another task provided one."""
        from eyescan_rop.data import enhance
        from eyescan_rop.fov import infant_fov

        fov = infant_fov(image)
        vessels = (provided or {}).get("vessel_probability")
        return {"image": enhance(image, fov), "original": image, "fov": fov, "vessels": vessels}

    def predict(self, model: Any, batch: list[dict[str, Any]]) -> list[Prediction]:
        cascade = Cascade.of(model)
        user = operating_threshold(self.options)  # predict --threshold: the ROP decision
        stage1, _ = cascade.thresholds(user)
        p_rop, p_tr = cascade.probabilities([item["image"] for item in batch], stage1)
        explain = bool(self.options.get("explain"))  # eyescan predict --explain
        results = []
        for i, item in enumerate(batch):
            values = {**cascade.values(p_rop[i], p_tr[i], user), **severity_of(item)}
            arrays = {}
            if explain:
                arrays = cascade.explain(item["image"], item["original"], values, item.get("fov"))
            results.append(Prediction(values, arrays, item["original"]))
        return results

    def report(self, prediction: Prediction, out_dir: Path, stem: str) -> dict[str, str]:
        files = {}
        for name, overlay in prediction.arrays.items():
            files[name] = f"{stem}_{name}.png"
            imageio.save_png(out_dir / files[name], overlay)
        return files

    def train(self, data: Path, options: dict[str, Any]) -> dict[str, Any]:
        from eyescan_rop.training import train

        return train(self, data, options)

    def evaluate(self, model: Any, data: Path, options: dict[str, Any]) -> dict[str, Any]:
        from eyescan_rop.evaluation import evaluate

        return evaluate(model, data, options)


def severity_of(item: dict[str, Any]) -> dict[str, Any]:
    """``vascular_severity`` and its parts for a preprocessed item (null without a vessel map)."""
    from eyescan_rop.severity import vascular_severity

    vessels = item.get("vessels")
    if vessels is None:
        return {"vascular_severity": None, "vascular": {"status": NO_VESSELS}}
    return vascular_severity(np.asarray(vessels), item["fov"])
