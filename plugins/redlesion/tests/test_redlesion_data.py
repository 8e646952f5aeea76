"""IDRiD layout and manifest readers (splits marked), mask decoding, resizing, lesion counting."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from eyescan.api import DataError, splits
from eyescan_redlesion.data import (
    IdridReader,
    card_view,
    input_size,
    load_sample,
    manifest_reader,
    model_view,
    resize_mask,
)
from eyescan_redlesion.lesions import (
    best_f1_threshold,
    detection_counts,
    detection_rates,
    summarise,
)

SEG = "A. Segmentation"


def _red_tif(path, mask):
    path.parent.mkdir(parents=True, exist_ok=True)
    red = np.zeros((*mask.shape, 3), np.uint8)
    red[mask, 0] = 255  # IDRiD's masks: red on black (grey level 76)
    Image.fromarray(red).save(path)


def _zero_one_tif(path, mask):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask.astype(np.uint8)).save(path)  # 0/1 grey: not empty at > 127


def write_idrid(root, shape=(24, 36), writer=_red_tif):
    """Two training images (the second without haemorrhages) and one test image."""
    rng = np.random.default_rng(0)
    for split, numbers in (("a. Training Set", (1, 2)), ("b. Testing Set", (3,))):
        for n in numbers:
            stem = f"IDRiD_{n:02d}"
            images = root / SEG / "1. Original Images" / split
            images.mkdir(parents=True, exist_ok=True)
            image = rng.integers(0, 255, (*shape, 3), dtype=np.uint8)
            Image.fromarray(image).save(images / f"{stem}.jpg")
            truth = root / SEG / "2. All Segmentation Groundtruths" / split
            ma = np.zeros(shape, bool)
            ma[2:4, 2:4] = True
            writer(truth / "1. Microaneurysms" / f"{stem}_MA.tif", ma)
            he_dir = truth / "2. Haemorrhages"
            he_dir.mkdir(parents=True, exist_ok=True)
            if n != 2:
                he = np.zeros(shape, bool)
                he[10:20, 10:20] = True
                writer(he_dir / f"{stem}_HE.tif", he)
    return root


def test_idrid_reader_as_distributed_marks_the_official_split(tmp_path):
    root = write_idrid(tmp_path / "IDRiD")
    reader = IdridReader()
    assert reader.detect(root) and reader.detect(root / SEG)
    assert not reader.detect(tmp_path)
    samples = reader.read(root)
    assert [(s.id, s.split) for s in samples] == [
        ("IDRiD_01", "train"), ("IDRiD_02", "train"), ("IDRiD_03", "test")
    ]  # fmt: skip
    assert [s.id for s in reader.read(root / SEG)] == ["IDRiD_01", "IDRiD_02", "IDRiD_03"]
    train, _ = splits.select(samples, "train")
    test, info = splits.select(samples, "test")
    assert not splits.overlap(train, test) and info["rule"] == "the data set's own split"
    assert set(train[0].masks) == {"ma", "he"} and set(train[1].masks) == {"ma"}
    sample = load_sample(train[0])
    assert sample.ma.sum() == 4 and sample.he.sum() == 100
    assert load_sample(train[1]).he.sum() == 0  # no HE file: no haemorrhage


def test_idrid_reader_with_only_a_training_set_and_errors(tmp_path):
    root = write_idrid(tmp_path / "IDRiD")
    import shutil

    for part in ("1. Original Images", "2. All Segmentation Groundtruths"):
        shutil.rmtree(root / SEG / part / "b. Testing Set")
    assert {s.split for s in IdridReader().read(root)} == {"train"}
    with pytest.raises(DataError, match="no IDRiD"):
        IdridReader().read(tmp_path / "elsewhere")


def test_zero_one_idrid_masks_read_as_lesions(tmp_path):
    root = write_idrid(tmp_path / "IDRiD", writer=_zero_one_tif)
    first = IdridReader().read(root)[0]
    sample = load_sample(first)
    assert sample.ma.sum() == 4 and sample.he.sum() == 100


def test_masks_red_grey_zero_one_and_the_readers_threshold(tmp_path):
    image = np.zeros((6, 8, 3), np.uint8)
    Image.fromarray(image).save(tmp_path / "a.png")
    mask = np.zeros((6, 8), bool)
    mask[1:3, 2:5] = True
    _red_tif(tmp_path / "red.tif", mask)
    Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "grey.png")
    Image.fromarray(mask.astype(np.uint8)).save(tmp_path / "one.png")
    faint = mask.astype(np.uint8) * 60  # a JPEG-copy-like grey level with noise below 30
    faint[5, 7] = 20
    Image.fromarray(faint).save(tmp_path / "faint.png")
    rows = "".join(f"a.png,{name},\n" for name in ("red.tif", "grey.png", "one.png", "faint.png"))
    (tmp_path / "data.csv").write_text("image,ma,he\n" + rows)
    # by content (None): the 0/1, 0/255 and red masks; at 30 (the JPEG copies): the faint one too
    for threshold, right in ((None, "TTTF"), (30, "TTFT")):
        reader = manifest_reader(mask_threshold=threshold)
        assert reader.mask_threshold == threshold
        for sample, expected in zip(reader.read(tmp_path / "data.csv"), right):
            decoded = load_sample(sample, None, reader.mask_threshold).ma
            assert np.array_equal(decoded, mask) == (expected == "T"), (threshold, sample.masks)
    assert IdridReader(mask_threshold=30).mask_threshold == 30


def test_manifest_reader_and_resizing(tmp_path):
    image = np.full((40, 60, 3), 120, np.uint8)
    Image.fromarray(image).save(tmp_path / "a.png")
    mask = np.zeros((40, 60), bool)
    mask[10:20, 20:40] = True
    Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "a_ma.png")
    (tmp_path / "data.csv").write_text("image,ma,he\na.png,a_ma.png,\n")
    samples = manifest_reader().read(tmp_path / "data.csv")
    assert samples[0].masks == {"ma": tmp_path / "a_ma.png"} and samples[0].split is None
    small = load_sample(samples[0], input_width=30)
    assert small.image.shape == (20, 30, 3) and small.scale == 0.5
    assert small.ma.sum() == 50 and small.he.sum() == 0
    assert input_size(712, 1072, None) == (712, 1072)
    assert input_size(2848, 4288, 1072) == (712, 1072)


def test_mask_size_mismatch_is_a_clear_error(tmp_path):
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "m.png")
    (tmp_path / "data.csv").write_text("image,ma,he\na.png,m.png,\n")
    sample = manifest_reader().read(tmp_path / "data.csv")[0]
    with pytest.raises(DataError, match="m.png: mask size"):
        load_sample(sample)


def test_lesion_level_detection_by_connected_components():
    truth = np.zeros((10, 10), bool)
    truth[1, 1] = truth[5:7, 5:7] = truth[9, 0] = True  # three lesions
    pred = np.zeros_like(truth)
    pred[1, 2] = True  # touches nothing (4-neighbour of lesion 1 but not overlapping)
    pred[6, 6:9] = True  # overlaps lesion 2
    pred[0, 8] = True  # a false component
    counts = detection_counts(truth, pred)
    assert counts == {"truths": 3, "detected": 1, "predicted": 3, "true_predicted": 1}
    rates = detection_rates(counts)
    assert rates["lesion_recall"] == pytest.approx(1 / 3)
    assert rates["lesion_precision"] == pytest.approx(1 / 3)
    stats = summarise(truth, truth.astype(np.float32), np.ones_like(truth))
    assert stats == {"count": 3, "area_px": 6, "area_fraction": 0.06, "max_probability": 1.0}


def test_threshold_choice():
    truth = np.array([1, 1, 0, 0, 1, 0], bool)
    score = np.array([0.9, 0.8, 0.7, 0.2, 0.6, 0.1])
    assert best_f1_threshold(truth, score) == pytest.approx(0.6)
    assert best_f1_threshold(np.zeros(3, bool), np.ones(3), 0.5) == 0.5


def _disc_photo(height: int = 60, width: int = 90) -> np.ndarray:
    """A bright disc (the field of view, 40 px across) on black, off centre."""
    yy, xx = np.mgrid[:height, :width]
    disc = (yy - 30) ** 2 + (xx - 50) ** 2 <= 20**2
    image = np.zeros((height, width, 3), np.uint8)
    image[disc] = (180, 90, 40)
    return image


def test_fov_view_scales_the_field_of_view_and_pastes_back():
    image = _disc_photo()
    view = model_view(image, input_width=45, fov_width=80)
    top, left, bottom, right = view.box
    assert abs(left - 30) <= 1 and abs(right - 71) <= 1 and abs(top - 10) <= 1
    assert view.size[1] == 80 and abs(view.size[0] - 80) <= 2  # the disc's box, 2× larger
    maps = np.ones((2, *view.size), np.float32)
    pasted = view.paste(maps, image.shape[:2])
    assert pasted.shape == (2, 60, 90)
    assert pasted[:, top:bottom, left:right].min() == 1.0 and pasted[:, :, :left].max() == 0.0
    whole = model_view(image, input_width=45)  # no fov_width: the whole image, aspect kept
    assert whole.box == (0, 0, 60, 90) and whole.size == (30, 45)
    assert card_view({"input": {"width": None, "fov_width": 1024}}) == {
        "input_width": None,
        "fov_width": 1024,
    }
    assert card_view(None) == {"input_width": None, "fov_width": None}


def test_fov_width_training_view_keeps_one_pixel_lesions(tmp_path):
    image = _disc_photo()
    Image.fromarray(image).save(tmp_path / "a.png")
    mask = np.zeros((60, 90), bool)
    mask[30, 50] = True  # a one-pixel microaneurysm in the disc
    Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "a_ma.png")
    (tmp_path / "data.csv").write_text("image,ma,he\na.png,a_ma.png,\n")
    sample = manifest_reader().read(tmp_path / "data.csv")[0]
    big = load_sample(sample, None, None, fov_width=164)  # the disc ×4
    assert big.image.shape[1] == 164 and 3.9 < big.scale < 4.4
    assert 16 <= big.ma.sum() <= 25  # enlarged (nearest), never lost
    assert big.image[0, 0].max() < 40 and big.image[big.image.shape[0] // 2, 82].max() > 100
    assert resize_mask(mask, (30, 45)).sum() == 0  # shrinking can still lose it (training only)
