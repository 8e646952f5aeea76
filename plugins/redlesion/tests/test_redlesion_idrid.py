"""Readers of IDRiD part A's partial copies and evaluation at the truth's resolution.

Made-up layouts in ``tmp_path`` (synthetic fundus images); the real copies in
``../shared/data`` are only counted, and those tests skip when they are absent.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from eyescan.api import DataError, find_reader, get_registry, splits, synthetic
from eyescan_redlesion.data import (
    Idrid512Reader,
    IdridHaemorrhageReader,
    IdridReader,
    IdridYoloReader,
    load_sample,
    official_split,
    read_truth,
    resize_mask,
    write_synthetic_idrid,
)
from eyescan_redlesion.evaluation import FROC_KEYS, LesionEvidence, add_image, score_image

# ../shared/data beside the checkout (parents: tests, redlesion, plugins, repository, its folder)
REAL = Path(__file__).resolve().parents[4] / "shared/data/IDRiD/A. Segmentation (partial copies)"


def _fundus(path: Path, seed: int, size=(64, 96)):
    path.parent.mkdir(parents=True, exist_ok=True)
    made = synthetic.make_fundus(size, seed=seed, lesions=True)
    Image.fromarray(made.image).save(path, quality=95)
    return made


def _grey_jpeg(path: Path, mask: np.ndarray, level: int = 60):
    """A mask as the 512-px copy stores it: a grey RGB JPEG (faint, with artefacts)."""
    grey = mask.astype(np.uint8) * level
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(path, quality=90)


def _dot(shape, row, col):
    mask = np.zeros(shape, bool)
    mask[row : row + 3, col : col + 3] = True
    return mask


def write_512_copy(root: Path) -> Path:
    """IDRiD_01 with MA/HE/EX masks, IDRiD_02 without HE (as IDRiD_43), IDRiD_60 (a test number)."""
    for number, seed in ((1, 0), (2, 1), (60, 2)):
        made = _fundus(root / f"IDRiD_{number:02d}.jpg", seed)
        _grey_jpeg(root / f"IDRiD_{number:02d}_MA.jpg", _dot(made.image.shape[:2], 20, 30))
        if number != 2:
            _grey_jpeg(root / f"IDRiD_{number:02d}_HE.jpg", _dot(made.image.shape[:2], 40, 50))
        _grey_jpeg(root / f"IDRiD_{number:02d}_EX.jpg", _dot(made.image.shape[:2], 10, 10))
    return root


def write_he_copy(root: Path, n: int = 2) -> Path:
    for number in range(1, n + 1):
        made = _fundus(root / "images" / f"IDRiD_{number:02d}.jpg", number)
        (root / "masks").mkdir(parents=True, exist_ok=True)
        mask = _dot(made.image.shape[:2], 30, 40).astype(np.uint8) * 255
        Image.fromarray(mask).save(root / "masks" / f"IDRiD_{number:02d}_HE.png")
    return root


def write_yolo_copy(root: Path) -> Path:
    """Two training and two test images (the official numbers), one without any box,
    one without a label file (not annotated)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "data.yaml").write_text(
        "names:\n- MA\n- HE\n- EX\n- SE\n- OD\nnc: 5\ntrain: ../images/train\nval: ../images/val\n"
    )
    labels = {
        ("train", 1): "0 0.5 0.5 0.05 0.05\n1 0.25 0.25 0.1 0.1\n4 0.7 0.5 0.2 0.2\n",
        ("train", 2): None,  # no label file
        ("val", 55): "0 0.5 0.5 0.0625 0.0625\n0 0.2 0.3 0.05 0.05\n1 0.6 0.6 0.1 0.1\n",
        ("val", 56): "",  # an image without lesions
    }
    for (folder, number), text in labels.items():
        _fundus(root / "images" / folder / f"IDRiD_{number:02d}.jpg", number, (64, 64))
        (root / "labels" / folder).mkdir(parents=True, exist_ok=True)
        if text is not None:
            (root / "labels" / folder / f"IDRiD_{number:02d}.txt").write_text(text)
    return root


def test_official_split_by_number():
    assert [official_split(s) for s in ("IDRiD_01", "IDRiD_54", "IDRiD_55", "IDRiD_81")] == [
        "train", "train", "test", "test"
    ]  # fmt: skip
    assert official_split("IDRiD_82") is None and official_split("photo") is None


def test_512_copy_reader(tmp_path):
    root = write_512_copy(tmp_path / "train-512px-cropped")
    reader = Idrid512Reader()
    assert reader.detect(root) and reader.mask_threshold == 30
    samples = reader.read(root)
    assert [(s.id, s.split) for s in samples] == [
        ("IDRiD_01", "train"), ("IDRiD_02", "train"), ("IDRiD_60", "test")
    ]  # fmt: skip
    assert set(samples[0].masks) == {"ma", "he"} and set(samples[1].masks) == {"ma"}
    assert samples[0].annotated == ("ma", "he") and samples[0].boxes is None
    shape = (64, 96)
    truth = read_truth(samples[0], shape, reader.mask_threshold)
    assert truth["ma"].sum() == 9 and truth["he"].sum() == 9  # faint grey 60 > 30
    assert read_truth(samples[0], shape, None)["ma"].sum() == 0  # why the reader says 30
    missing_he = read_truth(samples[1], shape, 30)["he"]
    assert missing_he is not None and not missing_he.any()  # IDRiD: no file = no lesion
    with pytest.raises(DataError, match="no IDRiD images"):
        reader.read(tmp_path / "nothing-here")


def test_haemorrhage_copy_reader(tmp_path):
    root = write_he_copy(tmp_path / "HE-20-1072px")
    reader = IdridHaemorrhageReader()
    assert reader.detect(root) and not Idrid512Reader().detect(root)
    samples = reader.read(root)
    assert [s.id for s in samples] == ["IDRiD_01", "IDRiD_02"]
    assert {s.split for s in samples} == {"train"} and samples[0].annotated == ("he",)
    truth = read_truth(samples[0], (64, 96))
    assert truth["ma"] is None and truth["he"].sum() == 9  # MA: no pixel truth at all
    with pytest.raises(DataError, match="no MA mask"):
        load_sample(samples[0])  # cannot be trained on
    (root / "masks" / "IDRiD_02_HE.png").unlink()
    with pytest.raises(DataError, match=r"IDRiD_02_HE.png: mask not found"):
        reader.read(root)


def test_yolo_copy_reader_gives_ma_and_he_boxes_in_pixels(tmp_path):
    root = write_yolo_copy(tmp_path / "yolo")
    reader = IdridYoloReader()
    assert reader.detect(root) and not Idrid512Reader().detect(root)
    samples = {s.id: s for s in reader.read(root)}
    assert {k: s.split for k, s in samples.items()} == {
        "IDRiD_01": "train", "IDRiD_02": "train", "IDRiD_55": "test", "IDRiD_56": "test"
    }  # fmt: skip
    first = samples["IDRiD_01"]
    assert first.annotated == () and first.masks == {}
    assert first.boxes["ma"] == [pytest.approx((30.4, 30.4, 33.6, 33.6))]
    assert first.boxes["he"] == [pytest.approx((12.8, 12.8, 19.2, 19.2))]  # OD is left out
    assert samples["IDRiD_02"].boxes is None  # no label file: not annotated
    assert samples["IDRiD_56"].boxes == {"ma": [], "he": []}  # empty file: no lesion
    assert len(samples["IDRiD_55"].boxes["ma"]) == 2
    test, info = splits.select(list(samples.values()), "test")
    assert [s.id for s in test] == ["IDRiD_55", "IDRiD_56"]
    (root / "labels/val/IDRiD_56.txt").write_text("0 0.5 0.5\n")
    with pytest.raises(DataError, match=r"IDRiD_56.txt:1: expected"):
        reader.read(root)
    (root / "data.yaml").write_text("names: [EX, SE, OD]\n")
    with pytest.raises(DataError, match=r"data.yaml: no class MA or HE"):
        reader.read(root)


def test_each_layout_is_detected_by_its_reader(tmp_path):
    registry = get_registry()
    layouts = {
        "idrid": write_synthetic_idrid(tmp_path / "IDRiD", 1, 1, size=(48, 64)),
        "idrid-512": write_512_copy(tmp_path / "512"),
        "idrid-he": write_he_copy(tmp_path / "he", 1),
        "idrid-yolo": write_yolo_copy(tmp_path / "yolo"),
    }
    for name, path in layouts.items():
        assert find_reader(registry, "redlesion", path)[0] == name
    official = IdridReader().read(layouts["idrid"])
    assert all(s.annotated == ("ma", "he") and s.boxes is None for s in official)


class _Stub(torch.nn.Module):
    """A fixed 'model': red-lesion logits from the darkness of the green channel."""

    stride = 16

    def __init__(self):
        super().__init__()
        self.gain = torch.nn.Parameter(torch.tensor(4.0))

    def forward(self, x):
        dark = -x[:, 1:2] * self.gain
        return torch.cat([dark, dark - 1], dim=1)


def test_maps_are_up_sampled_to_the_truth_and_a_one_pixel_lesion_counts(tmp_path):
    shape = (256, 384)
    _fundus(tmp_path / "IDRiD_01.jpg", 0, shape)
    mask = np.zeros(shape, bool)
    mask[100, 200] = True  # one pixel in a large mask
    Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "IDRiD_01_MA.png")
    (tmp_path / "data.csv").write_text("image,ma,he\nIDRiD_01.jpg,IDRiD_01_MA.png,\n")
    from eyescan_redlesion.data import manifest_reader

    sample = manifest_reader().read(tmp_path / "data.csv")[0]
    scored = score_image(_Stub(), sample, {"input_width": 48})  # the network sees 48×32
    assert scored.probabilities["ma"].shape == shape and scored.masks["ma"].sum() == 1
    assert not resize_mask(mask, (32, 48)).any()  # down-sampling the truth would lose it
    prob = np.full(shape, 0.1, np.float32)
    prob[100, 200] = 0.9
    evidence = LesionEvidence()
    row = add_image(evidence, prob, scored.masks["ma"], None, scored.fov, 0.5, 0.5)
    assert evidence.stats[0][0] == 1 and row["truth_count"] == 1 and row["detected"] == 1
    assert row["auc_pr"] == pytest.approx(1.0) and row["present"] and row["true_present"]


def _evaluate(data, split="test", input_width=32, **options):
    from eyescan_redlesion.evaluation import evaluate

    model = SimpleNamespace(module=_Stub(), card={"input": {"width": input_width}})
    return evaluate(model, data, {"split": split, **options})


def test_evaluate_on_boxes_gives_image_level_and_froc(tmp_path):
    result = _evaluate(write_yolo_copy(tmp_path / "yolo"))
    summary, rows = result["summary"], result["images"]
    assert summary["images"] == 2 and summary["reader"] == "idrid-yolo"
    for name in ("ma", "he"):
        assert math.isnan(summary[f"{name}_auc_pr"]) and summary[f"{name}_mask_images"] == 0
        assert summary[f"{name}_froc_images"] == 2
        assert 0 <= summary[f"{name}_froc"] <= 1 and 0 <= summary[f"{name}_image_auc"] <= 1
        assert all(f"{name}_{k}" in summary for k in FROC_KEYS)
        assert f"{name}_froc" in summary["ci95"] and f"{name}_image_auc" in summary["ci95"]
        assert summary[f"{name}_threshold"] == 0.5  # no card threshold: 0.5
        assert not any("break_even" in k for k in summary)
    assert summary["ma_froc_lesions"] == 2 and summary["he_froc_lesions"] == 1
    assert summary["ma_present_images"] == 1 and summary["ma_absent_images"] == 1
    assert [r["ma_true_present"] for r in rows] == [True, False]
    assert all(isinstance(r["ma_present"], bool) and 0 <= r["ma_score"] <= 1 for r in rows)
    json.dumps(result)  # plain types only
    assert summary["froc_hit"] == "overlap"
    peak = _evaluate(tmp_path / "yolo", froc_hit="peak")["summary"]
    assert peak["froc_hit"] == "peak" and peak["ma_froc"] <= summary["ma_froc"]


def test_evaluate_on_masks_scores_at_the_masks_resolution(tmp_path):
    data = write_synthetic_idrid(tmp_path / "IDRiD", 1, 2, size=(96, 128), seed=1)
    summary = _evaluate(data, input_width=32)["summary"]
    assert summary["ma_mask_images"] == summary["he_mask_images"] == 2
    assert 0 < summary["ma_auc_pr"] <= 1 and summary["ma_froc_images"] == 0
    assert math.isnan(summary["ma_froc"])
    assert summary["region"].endswith("at the masks' resolution")


# --- the real partial copies (skipped where they are absent) --------------------------


def _real(folder: str) -> Path:
    path = REAL / folder
    if not path.is_dir():
        pytest.skip(f"{path} is not here")
    return path


def test_real_512_copy_has_the_54_training_images():
    samples = Idrid512Reader().read(_real("train-512px-cropped"))
    assert len(samples) == 54 and {s.split for s in samples} == {"train"}
    assert sum("ma" in s.masks for s in samples) == 54
    assert [s.id for s in samples if "he" not in s.masks] == ["IDRiD_43"]
    first = read_truth(samples[0], (512, 512), 30)
    assert first["ma"].any() and first["he"].any()


def test_real_yolo_copy_has_27_test_images_55_to_81():
    samples = IdridYoloReader().read(_real("all-81-1024px-letterboxed-yolo"))
    test, _ = splits.select(samples, "test")
    assert len(samples) == 81 and len(test) == 27
    assert [s.id for s in test] == [f"IDRiD_{n}" for n in range(55, 82)]
    assert all(s.boxes is not None and s.boxes["ma"] for s in test)


def test_real_haemorrhage_copy_has_20_images():
    samples = IdridHaemorrhageReader().read(_real("HE-20-1072px"))
    assert [s.id for s in samples] == [f"IDRiD_{n:02d}" for n in range(1, 21)]
    truth = read_truth(samples[0], (712, 1072))
    assert truth["ma"] is None and truth["he"].any()
