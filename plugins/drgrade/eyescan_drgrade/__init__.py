"""eyescan plugin: diabetic retinopathy grading and lesion detection (hook implementations only).

Where things live: models in ``models.py``, losses in ``losses.py``, data
readers and the square FOV view in ``data.py``, readers of published layouts
(IDRiD part B, Kaggle APTOS/EyePACS) in ``datasets.py``, the table combining them
in ``manifest.py``, lesion classes and the
lesion-based grade in ``lesions.py``, running the models on square views in
``inference.py``, the Task (prediction, outputs) in ``task.py``, training in
``training.py``, evaluation and its metrics in ``evaluation.py``, the
synthetic data set and its grading rule in ``synthetic_set.py``, shipped
weights + model cards in ``weights/``. Imports go one way: task -> training ->
evaluation -> inference -> data/models/losses/lesions.
"""

from __future__ import annotations

from eyescan.api import hookimpl

EYESCAN_HOOK_CONTRACT = 2


@hookimpl
def register_tasks(register):
    from eyescan_drgrade.task import DrGradeTask

    register(DrGradeTask())


def _model(name: str, **defaults):
    def factory(**options):
        from eyescan_drgrade import models

        return getattr(models, name)(**{**defaults, **options})

    return factory


@hookimpl
def register_models(register):
    register(
        "drgrade",
        "screen",
        _model("screen"),
        description="grader + lesion detector in one file; grade combined by rule (default)",
    )
    register(
        "drgrade",
        "grader",
        _model("grader"),
        description="MobileNetV3-Small grader, ordinal head (option head='ce')",
    )
    register(
        "drgrade",
        "grader-resnet18",
        _model("grader", backbone="resnet18"),
        description="ResNet-18 grader, ordinal head",
    )
    register(
        "drgrade",
        "grader-efficientnet-b0",
        _model("grader", backbone="efficientnet_b0"),
        description="EfficientNet-B0 grader, ordinal head",
    )
    register(
        "drgrade",
        "detector",
        _model("detector"),
        description="Faster R-CNN, MobileNetV3-Small FPN: MA, haemorrhage, hard exudate",
    )
    register(
        "drgrade",
        "detector-large",
        _model("large_detector"),
        description="torchvision fasterrcnn_mobilenet_v3_large_320_fpn at 512 px",
    )


@hookimpl
def register_losses(register):
    def ce(**options):
        from eyescan_drgrade.losses import make_ce

        return make_ce(**options)

    def ordinal(**options):
        from eyescan_drgrade.losses import make_ordinal

        return make_ordinal(**options)

    def dme(**options):
        from eyescan_drgrade.losses import make_dme

        return make_dme(**options)

    def detector(**options):
        from eyescan_drgrade.losses import make_detector

        return make_detector(**options)

    register("drgrade-ce", ce, description="5-class cross-entropy on the DR grade")
    register("drgrade-ordinal", ordinal, description="BCE of the 4 'grade > k' logits")
    register("drgrade-dme", dme, description="3-class DME-risk cross-entropy, known labels only")
    register("drgrade-detector", detector, description="Faster R-CNN RPN + box losses, summed")


@hookimpl
def register_readers(register):
    from eyescan_drgrade.data import (
        BoxTableReader,
        GradeTableReader,
        VocFolderReader,
        class_folder_reader,
    )
    from eyescan_drgrade.datasets import IdridGradingReader, KaggleGradingReader
    from eyescan_drgrade.manifest import GradingManifestReader

    register("drgrade", "idrid", IdridGradingReader())
    register("drgrade", "kaggle", KaggleGradingReader())
    register("drgrade", "manifest", GradingManifestReader())
    register("drgrade", "voc", VocFolderReader())
    register("drgrade", "boxes", BoxTableReader())
    register("drgrade", "grades", GradeTableReader())
    register("drgrade", "class-folders", class_folder_reader())
