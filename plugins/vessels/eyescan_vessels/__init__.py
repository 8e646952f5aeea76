"""eyescan plugin: retinal vessel segmentation (hook implementations only).

Where things live: models in ``models.py``, losses in ``losses.py``, data
readers and sample loading in ``data.py``, the network's view of one image in
``inference.py``, prediction and outputs in ``task.py``, training in
``training.py``, evaluation in ``evaluation.py``, skeleton measurements in
``morphometry.py``, shipped weights + model cards in ``weights/``.
"""

from __future__ import annotations

from eyescan.api import hookimpl

EYESCAN_HOOK_CONTRACT = 2


@hookimpl
def register_tasks(register):
    from eyescan_vessels.task import VesselsTask

    register(VesselsTask())


#: The SCCU-Net ablation ladder (spec vessels.md): name → (factory in models.py, description).
#: All have ``unet``'s width 8 and depth 4, so the comparison is fair.
MODELS = {
    "unet": ("unet", "slim U-Net (width 8, depth 4), CPU-friendly"),
    "unet-scc": ("unet_scc", "unet with self-calibrated convolutions (SCConv) in every block"),
    "unet-sam": ("unet_sam", "unet with CBAM spatial attention at the bottleneck"),
    "unet-isam": ("unet_isam", "unet with improved spatial attention (map from pre-conv features)"),
    "sccunet": ("sccunet", "SCCU-Net: self-calibrated convolutions + improved spatial attention"),
}


def _lazy_factory(function: str):
    """A factory that imports torch and ``models.py`` only when called."""

    def factory(**options):
        from eyescan_vessels import models

        return getattr(models, function)(**options)

    return factory


@hookimpl
def register_models(register):
    for name, (function, description) in MODELS.items():
        register("vessels", name, _lazy_factory(function), description=description)


@hookimpl
def register_losses(register):
    def bce(**options):
        from eyescan_vessels.losses import make_bce

        return make_bce(**options)

    def bce_dice(**options):
        from eyescan_vessels.losses import make_bce_dice

        return make_bce_dice(**options)

    register("vessels-bce", bce, description="binary cross-entropy inside the FOV (seed)")
    register("vessels-bce-dice", bce_dice, description="BCE + 0.5 soft Dice inside the FOV")


@hookimpl
def register_readers(register):
    from eyescan_vessels.data import (
        ChaseReader,
        DriveReader,
        HrfReader,
        StareReader,
        manifest_reader,
    )

    # Each detects only its own layout; the first that detects a path reads it.
    register("vessels", "drive", DriveReader())
    register("vessels", "manifest", manifest_reader())
    register("vessels", "chase", ChaseReader())
    register("vessels", "stare", StareReader())
    register("vessels", "hrf", HrfReader())
