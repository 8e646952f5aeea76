"""The rop task: the two-stage cascade per image, its outputs, training and evaluation.

Stage 1 says normal or ROP; for images it calls ROP, stage 2 says non-TR or
treatment-requiring (TR) ROP. The stage-1 weights' model card names the
stage-2 weights (``stage2_weights``, relative to the card), so one
``--weights`` file selects the whole cascade. Grad-CAM overlays are written
with ``eyescan predict --explain`` (the core sets ``task.explain``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eyescan.api import Prediction, Task, WeightsError, get_registry, imageio

WEIGHTS_DIR = Path(__file__).parent / "weights"
THRESHOLD = 0.5
STAGE_CLASSES = {1: ("normal", "rop"), 2: ("non-tr-rop", "tr-rop")}


class RopTask(Task):
    name = "rop"
    kind = "classify"
    description = "Retinopathy of prematurity: normal/ROP, then non-TR/treatment-requiring ROP"
    default_model = "mn-rop"
    weights_dir = WEIGHTS_DIR

    def preprocess(self, image: np.ndarray, source: str) -> dict[str, Any]:
        from eyescan_rop.data import enhance

        return {"image": enhance(image), "original": image}

    def predict(self, model: Any, batch: list[dict[str, Any]]) -> list[Prediction]:
        cascade = Cascade.of(model)
        p_rop, p_tr = cascade.probabilities([item["image"] for item in batch])
        explain = bool(getattr(self, "explain", False))  # eyescan predict --explain
        results = []
        for i, item in enumerate(batch):
            values = cascade.values(p_rop[i], p_tr[i])
            arrays = {}
            if explain:
                arrays = cascade.explain(item["image"], item["original"], values)
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
        from eyescan_rop.training import evaluate

        return evaluate(model, data, options)


def positive_probability(module: Any, images: Any) -> np.ndarray:
    """Softmax probability of class 1 for a float N×3×S×S tensor in [0, 1]."""
    import torch

    module.eval()
    with torch.no_grad():
        return torch.softmax(module(images), dim=1)[:, 1].numpy().astype(np.float64)


def _batch(enhanced: list[np.ndarray], size: int):
    import torch

    from eyescan_rop.data import to_input

    return torch.from_numpy(np.stack([to_input(e, size).transpose(2, 0, 1) for e in enhanced]))


_STAGE2_CACHE: dict[tuple[str, str], Any] = {}


@dataclass
class Cascade:
    """Stage-1 and stage-2 models (either may be missing) with their input sizes."""

    stage1: Any | None  # LoadedModel
    stage2: Any | None

    @classmethod
    def of(cls, model: Any) -> Cascade:
        """The cascade a loaded model stands for: stage-2 weights alone, or stage 1 + its link."""
        card = model.card or {}
        if card.get("stage") == 2:
            return cls(None, model)
        link = card.get("stage2_weights")
        if not link or model.weights is None:
            return cls(model, None)
        path = (Path(model.weights).parent / link).resolve()
        key = (str(path), str(model.sha256))
        if key not in _STAGE2_CACHE:
            from eyescan.api import models

            if not path.exists():
                raise WeightsError(f"{model.weights}: its stage-2 weights {path} are missing")
            _STAGE2_CACHE[key] = models.load(get_registry(), "rop", None, path)
        return cls(model, _STAGE2_CACHE[key])

    @staticmethod
    def size(model: Any) -> int:
        return int((model.card or {}).get("image_size", 256))

    def probabilities(self, enhanced: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """P(ROP) (NaN without stage 1) and P(TR-ROP) (NaN where stage 2 did not run)."""
        n = len(enhanced)
        p_rop = np.full(n, np.nan)
        p_tr = np.full(n, np.nan)
        if self.stage1 is not None:
            p_rop = positive_probability(
                self.stage1.module, _batch(enhanced, self.size(self.stage1))
            )
        if self.stage2 is not None:
            todo = [i for i in range(n) if self.stage1 is None or p_rop[i] >= THRESHOLD]
            if todo:
                x = _batch([enhanced[i] for i in todo], self.size(self.stage2))
                p_tr[todo] = positive_probability(self.stage2.module, x)
        return p_rop, p_tr

    def values(self, p_rop: float, p_tr: float) -> dict[str, Any]:
        """The JSON outputs of one image."""
        stage1 = None if np.isnan(p_rop) else STAGE_CLASSES[1][int(p_rop >= THRESHOLD)]
        stage2 = None if np.isnan(p_tr) else STAGE_CLASSES[2][int(p_tr >= THRESHOLD)]
        if stage1 == "normal":
            diagnosis = "normal"
        elif stage2 is None:
            diagnosis = "rop"  # stage 2 not available
        else:
            diagnosis = "tr-rop" if stage2 == "tr-rop" else "rop"
        return {
            "diagnosis": diagnosis,
            "rop_probability": None if stage1 is None else float(p_rop),
            "tr_rop_probability": None if stage2 is None else float(p_tr),
            "stage1": stage1,
            "stage2": stage2,
            "stage2_run": stage2 is not None,
            "threshold": THRESHOLD,
            "models": {
                "stage1": None if self.stage1 is None else self.stage1.name,
                "stage2": None if self.stage2 is None else self.stage2.name,
            },
        }

    def explain(
        self, enhanced: np.ndarray, original: np.ndarray, values: dict[str, Any]
    ) -> dict[str, np.ndarray]:
        """Grad-CAM overlays (on the original image) for each stage that ran."""
        from eyescan.api import explain, fundus
        from eyescan_rop.data import WORK_SIZE

        out = {}
        square = fundus.pad_to_square(original)
        if square.shape[0] > WORK_SIZE:
            square = fundus.resize(square, WORK_SIZE)
        for stage, model, answer in (
            (1, self.stage1, values["stage1"]),
            (2, self.stage2, values["stage2"]),
        ):
            if model is None or answer is None:
                continue
            x = _batch([enhanced], self.size(model))
            target = STAGE_CLASSES[stage].index(answer)
            heat = explain.grad_cam(model.module, model.module.cam_layer, x, target)
            heat = np.clip(fundus.resize(heat, square.shape[:2]), 0.0, 1.0)
            out[f"gradcam_stage{stage}"] = explain.heat_overlay(square, heat)
        return out
