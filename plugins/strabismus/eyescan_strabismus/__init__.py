"""eyescan plugin: strabismus from face photographs, RF-CNN and RF-CNN Lite (hooks only).

Where things live: networks in ``models.py``, losses in ``losses.py``, data
readers and crops in ``data.py``, detect → crop → classify and the choice of
the classifier's companion detector in ``pipeline.py``, the task and its
outputs in ``task.py``, training of both stages in ``training.py``, their
evaluation (bootstrap intervals, pipeline counts) in ``evaluation.py``, the
synthetic Hirschberg-photo generator in ``synthetic.py``, shipped weights +
model cards in ``weights/``, recipes in ``recipes/``. Imports go one way:
task → training → evaluation → pipeline → data/models/losses.
"""

from __future__ import annotations

from eyescan.api import hookimpl

EYESCAN_HOOK_CONTRACT = 1


@hookimpl
def register_tasks(register):
    from eyescan_strabismus.task import StrabismusTask

    register(StrabismusTask())


@hookimpl
def register_models(register):
    def rfcnn_lite(**options):
        from eyescan_strabismus.models import rfcnn_lite

        return rfcnn_lite(**options)

    def rfcnn_cnn(**options):
        from eyescan_strabismus.models import rfcnn_cnn

        return rfcnn_cnn(**options)

    def eye_detector(**options):
        from eyescan_strabismus.models import eye_detector

        return eye_detector(**options)

    register(
        "strabismus",
        "rfcnn-lite",
        rfcnn_lite,
        description="RF-CNN Lite classifier: the seed's inverted-residual table (224²)",
    )
    register(
        "strabismus",
        "rfcnn-cnn",
        rfcnn_cnn,
        description="RF-CNN plain classifier: 5 conv, 3 max-pool, 3 FC (AlexNet-like)",
    )
    register(
        "strabismus",
        "eye-detector",
        eye_detector,
        description="eye-region detector: Faster R-CNN on the seed's inverted-residual backbone",
    )


@hookimpl
def register_losses(register):
    def cross_entropy(**options):
        from eyescan_strabismus.losses import make_cross_entropy

        return make_cross_entropy(**options)

    def detector_loss(**options):
        from eyescan_strabismus.losses import make_detector_loss

        return make_detector_loss(**options)

    register("strabismus-ce", cross_entropy, description="cross-entropy, normal vs strabismus")
    register(
        "strabismus-detector",
        detector_loss,
        description="Faster R-CNN: RPN objectness + box, RoI class + box",
    )


@hookimpl
def register_readers(register):
    from eyescan_strabismus.data import BoxManifestReader, FolderReader
    from eyescan_strabismus.faces import FacesReader

    register("strabismus", "strabismus-faces", FacesReader())  # before folders: it is one too
    register("strabismus", "folders", FolderReader())
    register("strabismus", "manifest", BoxManifestReader())
