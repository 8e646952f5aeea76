"""eyescan plugin: retinal vessel segmentation (hook implementations only).

Where things live: models in ``models.py``, losses in ``losses.py``, data
readers in ``data.py``, prediction and outputs in ``task.py``, training and
evaluation in ``training.py``, shipped weights + model cards in ``weights/``.
"""

from __future__ import annotations

from eyescan.api import hookimpl

EYESCAN_HOOK_CONTRACT = 1


@hookimpl
def register_tasks(register):
    from eyescan_vessels.task import VesselsTask

    register(VesselsTask())


@hookimpl
def register_models(register):
    def unet(**options):
        from eyescan_vessels.models import unet

        return unet(**options)

    register("vessels", "unet", unet, description="slim U-Net (width 8, depth 4), CPU-friendly")


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
    from eyescan_vessels.data import DriveReader, manifest_reader

    register("vessels", "drive", DriveReader())
    register("vessels", "manifest", manifest_reader())
