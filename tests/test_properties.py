"""Property-based tests (hypothesis): image loader, preprocessing, metrics.

- The loader returns ``uint8`` H×W×3 or raises :class:`ImageReadError`,
  never anything else, whatever the bytes (random, or corrupted real files).
- Preprocessing keeps the image geometry for any size, 1×1 included.
- Metrics stay within their bounds and do not depend on the order of pixels,
  items or images.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from eyescan.errors import ImageReadError
from eyescan.evaluation import metrics
from eyescan.imaging import fundus, imageio


def examples(n: int) -> settings:
    """``n`` examples, no deadline (shared CPUs), no example database on disk."""
    return settings(
        max_examples=n, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
    )


FAST = examples(60)

# -- the image loader ----------------------------------------------------------

MAGIC = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"II*\x00", b"MM\x00*", b"BM"]
SUFFIXES = [".png", ".jpg", ".gif", ".tif", ".bmp"]


def _encoded(fmt: str, mode: str) -> bytes:
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


VALID = [
    _encoded(fmt, mode)
    for fmt, mode in [
        ("PNG", "RGB"),
        ("PNG", "LA"),
        ("JPEG", "RGB"),
        ("JPEG", "CMYK"),
        ("GIF", "P"),
        ("TIFF", "RGB"),
        ("TIFF", "I;16"),
        ("BMP", "RGB"),
    ]
]


def _check_read(path) -> None:
    try:
        image = imageio.read_image(path)
    except ImageReadError as exc:
        assert str(exc).startswith(str(path)) and "\n" not in str(exc)
        return
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert min(image.shape[:2]) >= 1


@examples(150)
@given(magic=st.sampled_from(MAGIC), body=st.binary(max_size=600), suffix=st.sampled_from(SUFFIXES))
def test_loader_on_arbitrary_bytes(tmp_path_factory, magic, body, suffix):
    path = tmp_path_factory.mktemp("bytes") / f"x{suffix}"
    path.write_bytes(magic + body)
    _check_read(path)


@examples(150)
@given(
    source=st.sampled_from(VALID),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), max_size=6),
    cut=st.integers(0, 10_000),
)
def test_loader_on_corrupted_files(tmp_path_factory, source, flips, cut):
    data = bytearray(source)
    for position, xor in flips:
        data[position % len(data)] ^= xor
    path = tmp_path_factory.mktemp("corrupt") / "x.img"
    path.write_bytes(bytes(data[: max(1, len(data) - cut % len(data))]))
    _check_read(path)


@FAST
@given(arrays(np.uint8, st.tuples(st.integers(1, 24), st.integers(1, 24), st.just(3))))
def test_loader_round_trips_lossless_rgb(tmp_path_factory, image):
    path = tmp_path_factory.mktemp("rt") / "x.png"
    Image.fromarray(image).save(path)
    assert np.array_equal(imageio.read_image(path), image)


# -- preprocessing ---------------------------------------------------------------

SIZES = st.tuples(st.integers(1, 40), st.integers(1, 40))


def _image(size: tuple[int, int], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


@FAST
@given(size=SIZES, seed=st.integers(0, 2**16))
def test_vessels_preprocess_keeps_geometry(size, seed):
    from eyescan_vessels.task import VesselsTask

    image = _image(size, seed)
    item = VesselsTask().preprocess(image, "x.png")
    assert item["image"].shape == (*size, 3) and item["image"].dtype == np.float32
    assert 0.0 <= item["image"].min() and item["image"].max() <= 1.0
    assert item["fov"].shape == size and item["fov"].dtype == bool
    assert item["original"] is image


@pytest.fixture(scope="module")
def small_unet():
    from eyescan_vessels.models import unet

    return unet(width=2, depth=2).eval()


@examples(12)
@given(size=SIZES)
def test_probability_map_matches_any_input_size(small_unet, size):
    from eyescan_vessels.task import probability_map

    prob = probability_map(small_unet, np.full((*size, 3), 0.5, np.float32))
    assert prob.shape == size and np.all((prob >= 0) & (prob <= 1))


@FAST
@given(size=SIZES, multiple=st.integers(1, 32), seed=st.integers(0, 2**16))
def test_padding_and_cropping_shapes(size, multiple, seed):
    image = _image(size, seed)
    padded, original = fundus.pad_to_multiple(image, multiple)
    assert original == size
    assert padded.shape[0] % multiple == 0 and padded.shape[1] % multiple == 0
    assert np.array_equal(padded[: size[0], : size[1]], image)
    square = fundus.pad_to_square(image)
    assert square.shape[0] == square.shape[1] == max(size)
    mask = fundus.fov_mask(image)
    assert mask.shape == size
    top, left, bottom, right = fundus.crop_box(mask)
    assert 0 <= top < bottom <= size[0] and 0 <= left < right <= size[1]
    assert fundus.resize(image, (7, 5)).shape == (7, 5, 3)


# -- metrics -----------------------------------------------------------------------

RATES = ("accuracy", "sensitivity", "specificity", "precision", "f1", "iou", "auc_roc", "auc_pr")


@st.composite
def scored_pixels(draw):
    n = draw(st.integers(1, 200))
    truth = draw(arrays(bool, n))
    score = draw(arrays(np.float64, n, elements=st.floats(0, 1)))
    order = draw(st.permutations(range(n)))
    return truth, score, np.asarray(order, dtype=int)


def _same(a: float, b: float) -> bool:
    return (np.isnan(a) and np.isnan(b)) or abs(a - b) <= 1e-9


@FAST
@given(scored_pixels())
def test_binary_metrics_bounded_and_order_free(data):
    truth, score, order = data
    result = metrics.binary_metrics(truth, score)
    for key in RATES:
        assert np.isnan(result[key]) or 0.0 <= result[key] <= 1.0, key
    assert result["tp"] + result["tn"] + result["fp"] + result["fn"] == len(truth)
    shuffled = metrics.binary_metrics(truth[order], score[order])
    assert all(_same(result[k], shuffled[k]) for k in result)


@FAST
@given(scored_pixels(), st.data())
def test_mask_equals_selection(data, draw):
    truth, score, _ = data
    mask = draw.draw(arrays(bool, len(truth)))
    assume(mask.any())
    masked = metrics.binary_metrics(truth, score, mask=mask)
    selected = metrics.binary_metrics(truth[mask], score[mask])
    assert all(_same(masked[k], selected[k]) for k in masked)


@st.composite
def grades(draw):
    n = draw(st.integers(2, 60))
    a = draw(arrays(np.int64, n, elements=st.integers(0, 4)))
    b = draw(arrays(np.int64, n, elements=st.integers(0, 4)))
    return a, b, np.asarray(draw(st.permutations(range(n))), dtype=int)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.UndefinedMetricWarning")
@FAST
@given(grades())
def test_kappa_and_confusion_matrix(data):
    a, b, order = data
    labels = [0, 1, 2, 3, 4]
    kappa = metrics.quadratic_kappa(a, b, labels)
    assert np.isnan(kappa) or -1.0 - 1e-9 <= kappa <= 1.0 + 1e-9
    assert _same(kappa, metrics.quadratic_kappa(a[order], b[order], labels))
    assert _same(kappa, metrics.quadratic_kappa(b, a, labels))
    matrix = np.asarray(metrics.confusion_matrix(a, b, 5))
    assert matrix.sum() == len(a) and (matrix >= 0).all()
    assert np.array_equal(matrix, metrics.confusion_matrix(a[order], b[order], 5))


@FAST
@given(
    arrays(np.int64, st.integers(1, 60), elements=st.integers(0, 2)),
    st.integers(0, 2**16),
)
def test_classification_metrics_bounded(labels, seed):
    probs = np.random.default_rng(seed).dirichlet(np.ones(3), size=len(labels))
    result = metrics.classification_metrics(labels, probs, 3)
    assert 0.0 <= result["accuracy"] <= 1.0
    assert np.asarray(result["confusion_matrix"]).sum() == len(labels)


BOXES = arrays(
    np.float64,
    st.tuples(st.integers(1, 6), st.just(4)),
    elements=st.floats(0, 100, allow_nan=False),
).map(lambda b: np.concatenate([np.minimum(b[:, :2], b[:, 2:]), np.maximum(b[:, :2], b[:, 2:])], 1))


@FAST
@given(BOXES, BOXES)
def test_box_iou_bounded_and_symmetric(a, b):
    iou = metrics.box_iou(a, b)
    assert iou.shape == (len(a), len(b))
    assert np.all((iou >= 0) & (iou <= 1 + 1e-12))
    assert np.allclose(iou, metrics.box_iou(b, a).T)
    own = np.diag(metrics.box_iou(a, a))
    area = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    assert np.allclose(own[area > 0], 1.0)


@FAST
@given(st.lists(st.tuples(BOXES, st.integers(0, 2**16)), min_size=1, max_size=4), st.randoms())
def test_detection_ap_bounded_and_image_order_free(images, rnd):
    truths, predictions = [], []
    for boxes, seed in images:
        rng = np.random.default_rng(seed)
        labels = rng.integers(0, 2, len(boxes)).tolist()
        truths.append({"boxes": boxes, "labels": labels})
        jitter = boxes + rng.normal(0, 2, boxes.shape)
        predictions.append(
            {"boxes": jitter, "labels": labels, "scores": rng.random(len(boxes)).tolist()}
        )
    scores = [s for p in predictions for s in p["scores"]]
    assume(len(set(scores)) == len(scores))  # ties make the ranking (and AP) order-dependent
    result = metrics.detection_ap(predictions, truths)
    assert np.isnan(result["map"]) or 0.0 <= result["map"] <= 1.0 + 1e-12
    order = list(range(len(images)))
    rnd.shuffle(order)
    shuffled = metrics.detection_ap([predictions[i] for i in order], [truths[i] for i in order])
    assert _same(result["map"], shuffled["map"])
