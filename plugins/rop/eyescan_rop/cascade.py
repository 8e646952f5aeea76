"""The two-stage cascade: stage 1 (normal/ROP), then stage 2 (non-TR/TR-ROP) on ROP images.

One ``--weights`` file selects the whole cascade: the stage-1 model card
names its stage-2 weights and their SHA-256 (``stage2_weights``, relative to
the card, and ``stage2_sha256``). Stage 2 is loaded as a hash-checked
companion (``eyescan.api.models.load_companion``), so it appears in every
record with its own hash; a card whose recorded hash does not match the
stage-2 file, or that records none, is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eyescan.api import WeightsError, get_registry

THRESHOLD = 0.5
STAGE_CLASSES = {1: ("normal", "rop"), 2: ("non-tr-rop", "tr-rop")}
#: Stage-2 models already loaded: (weights path, sha256) -> LoadedModel.
_STAGE2_CACHE: dict[tuple[str, str], Any] = {}


def positive_probability(module: Any, images: Any) -> np.ndarray:
    """Softmax probability of class 1 for a float N×3×S×S tensor in [0, 1]."""
    import torch

    module.eval()
    with torch.no_grad():
        return torch.softmax(module(images), dim=1)[:, 1].numpy().astype(np.float64)


def batch_of(enhanced: list[np.ndarray], size: int):
    """Enhanced H×W×3 images as a float N×3×size×size tensor."""
    import torch

    from eyescan_rop.data import to_input

    return torch.from_numpy(np.stack([to_input(e, size).transpose(2, 0, 1) for e in enhanced]))


def stage2_link(stage1_weights: str | Path, stage2_weights: str | Path) -> dict[str, str]:
    """The stage-1 card fields that name ``stage2_weights``: relative path and SHA-256."""
    import os

    from eyescan.api import weights

    stage1_weights, stage2_weights = Path(stage1_weights), Path(stage2_weights)
    relative = os.path.relpath(stage2_weights.resolve(), stage1_weights.resolve().parent)
    sha = weights.read_card(stage2_weights).get("sha256")
    if not sha or sha != weights.sha256_file(stage2_weights):
        raise WeightsError(f"{stage2_weights}: its card's sha256 does not match the file")
    return {"stage2_weights": relative, "stage2_sha256": sha}


def load_stage2(model: Any) -> Any | None:
    """The stage-2 companion that ``model``'s card names (hash-checked twice), or ``None``.

    The stage-1 card's ``stage2_sha256`` must equal the stage-2 card's
    ``sha256``, which ``load_companion`` checks against the file.
    """
    from eyescan.api import models, weights

    card = model.card or {}
    link = card.get("stage2_weights")
    if not link or model.weights is None:
        return None
    path = (Path(model.weights).parent / link).resolve()
    expected = card.get("stage2_sha256")
    if not expected:
        raise WeightsError(
            f"{model.weights}: its card links stage 2 ({link}) without a stage2_sha256; "
            "re-link it (eyescan train rop with stage1_weights, or scripts/ship_weights.py)"
        )
    if not path.exists():
        raise WeightsError(f"{model.weights}: its stage-2 weights {path} are missing")
    found = weights.read_card(path).get("sha256")
    if found != expected:
        raise WeightsError(
            f"{model.weights}: stage-2 weights {path.name} have sha256 {str(found)[:12]}…, "
            f"its card expects {expected[:12]}…"
        )
    listed = any(
        c.get("role") == "stage2" and c.get("sha256") == expected for c in model.companions
    )
    key = (str(path), expected)
    if key not in _STAGE2_CACHE or not listed:
        stage2 = models.load_companion(get_registry(), "rop", "stage2", weights=path, parent=model)
        if (stage2.card or {}).get("stage") != 2:
            stage = (stage2.card or {}).get("stage")
            raise WeightsError(f"{path}: linked as stage 2, but its card says stage {stage}")
        _STAGE2_CACHE[key] = stage2
    return _STAGE2_CACHE[key]


@dataclass
class Cascade:
    """Stage-1 and stage-2 models (either may be missing) with their input sizes."""

    stage1: Any | None  # LoadedModel
    stage2: Any | None

    @classmethod
    def of(cls, model: Any) -> Cascade:
        """The cascade a loaded model stands for: stage-2 weights alone, or stage 1 + its link."""
        if (model.card or {}).get("stage") == 2:
            return cls(None, model)
        return cls(model, load_stage2(model))

    @staticmethod
    def size(model: Any) -> int:
        return int((model.card or {}).get("image_size", 256))

    def thresholds(self, user: float | None = None) -> tuple[float, float]:
        """The (stage 1, stage 2) decision thresholds: :data:`THRESHOLD` both, unless the
        user gives one (``eyescan predict --threshold``). It sets the ROP decision (stage
        1), which also picks the images stage 2 sees; stage 2 keeps :data:`THRESHOLD`.
        A cascade of stage 2 alone makes only the TR-ROP decision: the value sets that."""
        if user is None:
            return THRESHOLD, THRESHOLD
        return (THRESHOLD, user) if self.stage1 is None else (user, THRESHOLD)

    def probabilities(
        self, enhanced: list[np.ndarray], threshold: float = THRESHOLD
    ) -> tuple[np.ndarray, np.ndarray]:
        """P(ROP) (NaN without stage 1) and P(TR-ROP) (NaN where stage 2 did not run:
        stage 2 runs on images whose P(ROP) reaches the stage-1 ``threshold``)."""
        n = len(enhanced)
        p_rop = np.full(n, np.nan)
        p_tr = np.full(n, np.nan)
        if self.stage1 is not None:
            p_rop = positive_probability(
                self.stage1.module, batch_of(enhanced, self.size(self.stage1))
            )
        if self.stage2 is not None:
            todo = [i for i in range(n) if self.stage1 is None or p_rop[i] >= threshold]
            if todo:
                x = batch_of([enhanced[i] for i in todo], self.size(self.stage2))
                p_tr[todo] = positive_probability(self.stage2.module, x)
        return p_rop, p_tr

    def values(self, p_rop: float, p_tr: float, user: float | None = None) -> dict[str, Any]:
        """The JSON outputs of one image (``user``: the ``--threshold``, see
        :meth:`thresholds`; recorded as ``threshold`` with both ``stage_thresholds``)."""
        t1, t2 = self.thresholds(user)
        stage1 = None if np.isnan(p_rop) else STAGE_CLASSES[1][int(p_rop >= t1)]
        stage2 = None if np.isnan(p_tr) else STAGE_CLASSES[2][int(p_tr >= t2)]
        if stage1 == "normal":
            diagnosis = "normal"
        elif stage2 is None:
            diagnosis = "rop"  # stage 2 not available
        else:
            diagnosis = "tr-rop" if stage2 == "tr-rop" else "rop"
        out = {
            "diagnosis": diagnosis,
            "rop_probability": None if stage1 is None else float(p_rop),
            "tr_rop_probability": None if stage2 is None else float(p_tr),
            "stage1": stage1,
            "stage2": stage2,
            "stage2_run": stage2 is not None,
            "threshold": THRESHOLD if user is None else user,
            "models": {
                "stage1": None if self.stage1 is None else self.stage1.name,
                "stage2": None if self.stage2 is None else self.stage2.name,
            },
        }
        if user is not None:  # predict --threshold: which stage it set
            out["stage_thresholds"] = {"stage1": t1, "stage2": t2}
        return out

    def explain(
        self,
        enhanced: np.ndarray,
        original: np.ndarray,
        values: dict[str, Any],
        fov: Any = None,
    ) -> dict[str, np.ndarray]:
        """Grad-CAM overlays (on the photo's square FOV view) for each stage that ran."""
        from eyescan.api import explain, fundus
        from eyescan_rop.data import WORK_SIZE
        from eyescan_rop.fov import infant_fov, square_view

        out = {}
        square, _ = square_view(original, fov or infant_fov(original))
        if square.shape[0] > WORK_SIZE:
            square = fundus.resize(square, WORK_SIZE)
        for stage, model, answer in (
            (1, self.stage1, values["stage1"]),
            (2, self.stage2, values["stage2"]),
        ):
            if model is None or answer is None:
                continue
            x = batch_of([enhanced], self.size(model))
            target = STAGE_CLASSES[stage].index(answer)
            heat = explain.grad_cam(model.module, model.module.cam_layer, x, target)
            heat = np.clip(fundus.resize(heat, square.shape[:2]), 0.0, 1.0)
            out[f"gradcam_stage{stage}"] = explain.heat_overlay(square, heat)
        return out
