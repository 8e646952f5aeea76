"""Ship the detector and RF-CNN Lite trained by ``train_real.sh`` as the task's defaults.

    python plugins/strabismus/scripts/ship_real.py OUT

Copies ``OUT/eye-detector`` and ``OUT/rfcnn-lite`` (weights + card) into the plugin's
``weights/``, links the classifier's card to the shipped detector (relative path and
SHA-256) and records in both cards the data they learned from and its terms:
``training.data_sources``, ``research_only: true`` and ``use_terms`` (``eyescan predict``
prints them). No photograph is copied: weights and cards only.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from eyescan.api import weights
from eyescan_strabismus.pipeline import link_detector

WEIGHTS = Path(__file__).resolve().parents[1] / "eyescan_strabismus" / "weights"
SHIPPED = ("eye-detector", "rfcnn-lite")
SOURCE = "strabismus-faces"
TERMS = (
    "haiderShamil/Detection-Strabismus (GitHub, 2020): real frontal face photographs, "
    "no licence stated, identifiable faces including minors: research use only, "
    "never redistributed"
)
USE_TERMS = (
    "trained on face photographs with no stated licence (strabismus-faces): research use "
    "only, not for diagnosis or any commercial use"
)


def ship(out: Path, target: Path = WEIGHTS) -> list[Path]:
    """Copy, link and annotate; returns the shipped weights files."""
    shipped = []
    for name in SHIPPED:
        for suffix in (".safetensors", ".json"):
            shutil.copyfile(out / name / f"{name}{suffix}", target / f"{name}{suffix}")
        shipped.append(target / f"{name}.safetensors")
    link_detector(shipped[1], shipped[0])
    for path in shipped:
        card = weights.read_card(path)
        data = card["training"].get("data")
        count = data.get("count") if isinstance(data, dict) else None
        training = {
            **card["training"],
            "data_sources": [{"source": SOURCE, "images": count, "terms": TERMS}],
        }
        weights.update_card(path, training=training, research_only=True, use_terms=USE_TERMS)
    return shipped


if __name__ == "__main__":
    for shipped in ship(Path(sys.argv[1])):
        print(shipped)
