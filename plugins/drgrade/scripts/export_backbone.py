"""Save a trained grader's backbone as a fundus-pretrained weights file other tasks start from.

    python plugins/drgrade/scripts/export_backbone.py \
        plugins/drgrade/eyescan_drgrade/weights/grader/grader.safetensors \
        plugins/drgrade/eyescan_drgrade/weights/fundus-backbone/mobilenet_v3_small.safetensors

The file holds the torchvision backbone (``features.*``: a ``mobilenet_v3_small``
without its classifier) as safetensors with a card (SHA-256, the grader it came
from, the training data and their terms: APTOS images make it non-commercial).
A recipe starts from it with the core's initialisation from a file, e.g. a
drgrade grader ``"init": {"file": "…/mobilenet_v3_small.safetensors", "into": "net"}``
or any torchvision MobileNetV3-Small trunk at ``into`` its ``features`` parent.
"""

from __future__ import annotations

import sys
from pathlib import Path

from torch import nn

from eyescan.api import EyescanError, get_registry, weights
from eyescan.api import models as loading
from eyescan_drgrade.models import BACKBONES, GradeNet


def backbone_of(grader: GradeNet) -> nn.Module:
    """The grader's torchvision network with its classifier removed (``features.*`` only)."""
    build, classifier, _ = BACKBONES[grader.backbone]
    net = build(weights=None)
    setattr(net, classifier, nn.Identity())
    state = {k: v for k, v in grader.net.state_dict().items() if not k.startswith(classifier)}
    net.load_state_dict(state)
    return net


def export(grader_path: Path, out: Path) -> dict:
    """Write ``out`` (+ card) from the grader at ``grader_path`` (hash-checked); its card."""
    loaded = loading.load_companion(get_registry(), "drgrade", "grader", "grader", grader_path)
    if not isinstance(loaded.module, GradeNet):
        raise EyescanError(f"{grader_path}: not a drgrade grader")
    source = loaded.card
    card = {
        "task": "backbone",
        "model": f"torchvision {loaded.module.backbone}",
        "purpose": (
            "initialisation from a file (recipe 'init') for models of fundus photographs; "
            "the classifier is removed, tensors are named as torchvision's (features.*)"
        ),
        "image_size": loaded.module.image_size,
        "normalisation": "ImageNet mean/std on RGB in [0, 1]",
        "from_weights": {"file": grader_path.name, "sha256": loaded.sha256},
        "training": source.get("training", {}),
    }
    if source.get("synthetic_only"):
        card["synthetic_only"] = True
    out.parent.mkdir(parents=True, exist_ok=True)
    return weights.save_weights(backbone_of(loaded.module), out, card)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        card = export(Path(argv[0]), Path(argv[1]))
    except EyescanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{argv[1]}: {card['parameters']} parameters, sha256 {card['sha256']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
