"""eyescan plugin: retinopathy of prematurity (hook implementations only).

Where things live: models in ``models.py`` (MS-ROP teacher, MN-ROP student),
losses in ``losses.py`` (cross-entropy, distillation), data readers,
preprocessing and folds in ``data.py``, the two-stage cascade (stage 2 as a
hash-checked companion) in ``cascade.py``, the task's prediction and outputs in
``task.py``, training and cross-validation in ``training.py``, evaluation and
the cross-validation tables in ``evaluation.py``, the synthetic ROP generator
in ``synthetic.py``, shipped weights + model cards in ``weights/``, recipes in
``recipes/``.
"""

from __future__ import annotations

from eyescan.api import hookimpl

EYESCAN_HOOK_CONTRACT = 1


@hookimpl
def register_tasks(register):
    from eyescan_rop.task import RopTask

    register(RopTask())


@hookimpl
def register_models(register):
    def ms_rop(**options):
        from eyescan_rop.models import ms_rop

        return ms_rop(**options)

    def mn_rop(**options):
        from eyescan_rop.models import mn_rop

        return mn_rop(**options)

    register(
        "rop",
        "ms-rop",
        ms_rop,
        description="MS-ROP teacher: ResNet18 + DenseNet121 + EfficientNetB2 streams, 1×1 fusion",
    )
    register("rop", "mn-rop", mn_rop, description="MN-ROP student: MobileNetV2 (distilled)")


@hookimpl
def register_losses(register):
    def cross_entropy(**options):
        from eyescan_rop.losses import make_cross_entropy

        return make_cross_entropy(**options)

    def distillation(**options):
        from eyescan_rop.losses import make_distillation

        return make_distillation(**options)

    register("rop-ce", cross_entropy, description="softmax cross-entropy on batch['label']")
    register(
        "rop-distillation",
        distillation,
        description="α·T²·KL(teacher‖student) + (1−α)·CE; α = 0.95, T = 5",
    )


@hookimpl
def register_readers(register):
    from eyescan_rop.data import RopManifestReader, folder_reader

    register("rop", "manifest", RopManifestReader())
    register("rop", "folders", folder_reader())
