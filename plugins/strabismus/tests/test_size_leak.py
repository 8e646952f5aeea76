"""The photograph's size never reaches a classifier (strabismus-faces' normals are all
640×480, most strabismus photographs other sizes): every crop is resized to one input.

One drawn pattern (smooth blobs and stripes, not a face) at 640×480 and at 583×438,
its box scaled with it, gives crops of one shape that match within a small tolerance,
through each path that feeds a classifier: the crop itself, ``eyescan predict``
(:meth:`StrabismusTask.predict` → :func:`pipeline.classify`), training batches and
validation batches (:func:`training._classifier_parts`) and evaluation.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from eyescan.api import get_registry
from eyescan_strabismus import task as task_module
from eyescan_strabismus.data import LoadedEye, classifier_tensor, crop
from eyescan_strabismus.task import StrabismusTask
from eyescan_strabismus.training import CLASSIFIER_RECIPE, _classifier_parts, recipe_for

SIZE = 64
LARGE, SMALL = (640, 480), (583, 438)  # strabismus-faces' normal size and a common other one
#: The "eye region" as fractions of the picture: x0, y0, x1, y1.
BOX = (0.28, 0.36, 0.72, 0.5)
#: Mean and largest absolute difference allowed between the two crops (uint8 levels).
MEAN_TOLERANCE, MAX_TOLERANCE = 1.0, 16


def pattern(width: int = LARGE[0], height: int = LARGE[1]) -> np.ndarray:
    """A drawn test picture: a colour gradient, soft stripes and two dark blobs with a
    bright dot each (eye-like spacing, nothing like a face)."""
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    u, v = (u + 0.5) / width, (v + 0.5) / height
    red = 120 + 60 * np.sin(2 * np.pi * 3 * u) * np.cos(2 * np.pi * 2 * v)
    green = 80 + 120 * u
    blue = 200 - 120 * v
    image = np.stack([red, green, blue], -1)
    for cx in (0.38, 0.62):
        blob = np.exp(-((u - cx) ** 2 + ((v - 0.43) * 0.75) ** 2) / (2 * 0.025**2))
        dot = np.exp(-((u - cx - 0.006) ** 2 + ((v - 0.425) * 0.75) ** 2) / (2 * 0.004**2))
        image = image * (1 - 0.8 * blob[..., None]) + 255 * dot[..., None]
    return np.clip(image, 0, 255).astype(np.uint8)


def at_size(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The picture resampled to ``size`` (width, height), as a smaller camera image is."""
    return np.asarray(Image.fromarray(image).resize(size, Image.LANCZOS))


def box_at(size: tuple[int, int]) -> tuple[float, float, float, float]:
    w, h = size
    return (BOX[0] * w, BOX[1] * h, BOX[2] * w, BOX[3] * h)


@pytest.fixture(scope="module")
def pictures() -> dict[tuple[int, int], np.ndarray]:
    large = pattern()
    return {LARGE: large, SMALL: at_size(large, SMALL)}


def _close(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    assert diff.mean() < MEAN_TOLERANCE and diff.max() <= MAX_TOLERANCE, (
        diff.mean(),
        diff.max(),
    )


def test_crops_of_both_sizes_match(pictures):
    crops = [crop(pictures[s], box_at(s), SIZE) for s in (LARGE, SMALL)]
    assert crops[0].shape == crops[1].shape == (SIZE, SIZE, 3)
    _close(*crops)
    # the tolerance is tight enough to see a shifted box (a real difference in content)
    shifted = crop(pictures[SMALL], tuple(c + 20 for c in box_at(SMALL)), SIZE)
    assert np.abs(crops[0].astype(float) - shifted.astype(float)).mean() > 2 * MEAN_TOLERANCE


class Recorder(torch.nn.Module):
    """A stand-in classifier that keeps every input it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[torch.Tensor] = []
        self.bias = torch.nn.Parameter(torch.zeros(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.detach().clone())
        return torch.zeros(len(x), 2) + self.bias


class FakeModel:
    name = "rfcnn-lite"
    card = {"input_size": SIZE}
    companions: list = []

    def __init__(self) -> None:
        self.module = Recorder()


class FakeDetector:
    sha256 = "0" * 64
    module = None


def test_predict_gives_the_classifier_one_input_shape(pictures, monkeypatch):
    sizes = (LARGE, SMALL)

    def detect(detector, images):  # the pattern's box, in each photograph's own pixels
        return [
            {"boxes": np.array([box_at((im.shape[1], im.shape[0]))]), "scores": np.array([0.99])}
            for im in images
        ]

    monkeypatch.setattr(task_module, "detect", detect)
    task = StrabismusTask()
    monkeypatch.setattr(task, "detector_for", lambda model: FakeDetector())
    model = FakeModel()
    batch = [task.preprocess(pictures[s], f"{s[0]}x{s[1]}") for s in sizes]
    predictions = task.predict(model, batch)
    assert all(p.values["eye_region_found"] for p in predictions)
    (x,) = model.module.inputs  # one batch, both photographs
    assert tuple(x.shape) == (2, 3, SIZE, SIZE)
    # the classifier's input is the normalised crop, the same for both sizes
    expected = classifier_tensor([crop(pictures[s], box_at(s), SIZE) for s in sizes])
    assert torch.equal(x, expected)
    as_uint8 = ((x * 0.25 + 0.5) * 255).round().permute(0, 2, 3, 1).numpy()
    _close(as_uint8[0], as_uint8[1])


def test_training_and_validation_batches_carry_only_the_resized_crop(pictures):
    items = [
        LoadedEye(f"{s[0]}x{s[1]}", pictures[s], label, [box_at(s)])
        for label, s in enumerate((LARGE, SMALL))
    ]
    for augment in (False, True):
        options = {"config": {"input_size": SIZE, "batch_size": 2, "augment": augment}}
        config = recipe_for(CLASSIFIER_RECIPE, options)
        (train_batches, val_batches), _, _, _ = _classifier_parts(
            get_registry(), items, items, config
        )
        for batch in [*train_batches(0), *val_batches()]:
            assert set(batch) == {"image", "label"}  # nothing else reaches the model
            assert tuple(batch["image"].shape) == (2, 3, SIZE, SIZE)
            if not augment:  # without jitter, the two crops are the same picture
                x = batch["image"][batch["label"].argsort()]
                as_uint8 = ((x * 0.25 + 0.5) * 255).round().permute(0, 2, 3, 1).numpy()
                _close(as_uint8[0], as_uint8[1])


def test_evaluation_gives_the_classifier_one_input_shape(pictures, tmp_path, monkeypatch):
    from eyescan.api import imageio
    from eyescan_strabismus.data import EyeSample
    from eyescan_strabismus.evaluation import evaluate_classifier

    samples = []
    for label, s in enumerate((LARGE, SMALL)):
        path = tmp_path / f"pattern_{s[0]}x{s[1]}.png"  # a drawn pattern, under /tmp
        imageio.save_png(path, pictures[s])
        samples.append(EyeSample(path.stem, path, label=label, boxes=[box_at(s)]))
    task = StrabismusTask()
    monkeypatch.setattr(task, "default_weights", lambda name: None)  # crops only
    model = FakeModel()
    result = evaluate_classifier(task, get_registry(), model, samples, {"data": "patterns"})
    assert result["summary"]["input_size"] == SIZE and "pipeline_skipped" in result["summary"]
    (x,) = model.module.inputs
    assert tuple(x.shape) == (2, 3, SIZE, SIZE)
    as_uint8 = ((x * 0.25 + 0.5) * 255).round().permute(0, 2, 3, 1).numpy()
    _close(as_uint8[0], as_uint8[1])
