"""eyescan plugin: red-lesion segmentation with Red-Seg (hook implementations only).

Where things live: the model and its probability maps in ``models.py``, the two
stages' losses in ``losses.py``, data readers and sample decoding in ``data.py``,
prediction and outputs in ``task.py``, lesion counting and lesion-level metrics
in ``lesions.py``, training in ``training.py``, evaluation in ``evaluation.py``,
recipes in ``recipes/``.
"""

from __future__ import annotations

from eyescan.api import hookimpl

EYESCAN_HOOK_CONTRACT = 2

_MODELS = {
    "redseg": ("redseg", "Red-Seg: VGG16, MA branch conv2-4, HE branch conv3-5 (seed)"),
    "redseg-mobilenet": (
        "redseg_mobilenet",
        "Red-Seg branches on a MobileNetV3-Small encoder (fundus-pretrained file can init it)",
    ),
    "redseg-ma-c2345": ("redseg_ma_c2345", "Red-Seg ablation: MA branch fuses conv2-5"),
    "redseg-ma-c1234": ("redseg_ma_c1234", "Red-Seg ablation: MA branch fuses conv1-4"),
}


@hookimpl
def register_tasks(register):
    from eyescan_redlesion.task import RedLesionTask

    register(RedLesionTask())


def _factory(function: str):
    def create(**options):
        from eyescan_redlesion import models

        return getattr(models, function)(**options)

    return create


@hookimpl
def register_models(register):
    for name, (function, description) in _MODELS.items():
        register("redlesion", name, _factory(function), description=description)


@hookimpl
def register_losses(register):
    def topk(**options):
        from eyescan_redlesion.losses import make_topk

        return make_topk(**options)

    def mse(**options):
        from eyescan_redlesion.losses import make_mse

        return make_mse(**options)

    register(
        "redlesion-topk-bce",
        topk,
        description="stage 1: top-k balanced BCE with decaying λ, on all 8 Red-Seg maps",
    )
    register("redlesion-mse", mse, description="stage 2: FN + FP = MSE on probabilities, 8 maps")


@hookimpl
def register_readers(register):
    from eyescan_redlesion.data import (
        Idrid512Reader,
        IdridHaemorrhageReader,
        IdridReader,
        IdridYoloReader,
        manifest_reader,
    )

    register("redlesion", "idrid", IdridReader())
    register("redlesion", "idrid-512", Idrid512Reader())
    register("redlesion", "idrid-he", IdridHaemorrhageReader())
    register("redlesion", "idrid-yolo", IdridYoloReader())
    register("redlesion", "manifest", manifest_reader())
