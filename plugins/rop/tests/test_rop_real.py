"""rop on the real infant photographs in ../shared/data (skipped when absent).

A few frames of each set go through ``eyescan predict rop`` (the cascade, the
vessel map from the vessels task, the vascular severity, Grad-CAM), and
ROP-DRAGON's ``labels.csv`` is read as it is into leave-one-infant-out folds.
Nothing of these sets is written outside pytest's temporary folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from eyescan.api import find_reader, get_registry, read_samples, splits
from eyescan.testing import invoke_cli, json_lines

SHARED = Path(__file__).resolve().parents[4] / "shared" / "data"  # ../shared/data
DRAGON = SHARED / "ROP-DRAGON"
HVDROPDB = SHARED / "ROP-HVDROPDB-ridge-mini"
#: A 640×480 frame (the plus eye) and an 800×600 frame of another infant.
DRAGON_FRAMES = (
    "Dataset/Train/Treated/ROP IVBA-01-65-53/2022-01-29/OD- 3, mid ii, plus/A-01-65-53_2_OD_2.JPG",
    "Dataset/Test/Not-Treated/ROP IVBA-01-87-16/2022-12-26/OS- 0,iii/A-01-87-16_9_OS_5.JPG",
)
#: One frame of each camera (the set's frames fill the 512² frame or nearly).
HVDROPDB_FRAMES = (
    "images/barrdistorted_1001_0.3_0.3_Neo_12.png",
    "images/barrdistorted_1001_0.3_0.3_RetCam_10.png",
)
COLUMNS = "image=path,label=treatment,patient=infant,split=split"


def predict(folder: Path, out: Path, *extra: str) -> list[dict]:
    result = invoke_cli("predict", "rop", folder, "--json", "--out", out, *extra)
    assert result.exit_code == 0, result.stderr
    return json_lines(result.stdout)


def copied(root: Path, names: tuple[str, ...], folder: Path) -> Path:
    folder.mkdir()
    for name in names:
        shutil.copy(root / name, folder / Path(name).name)
    return folder


@pytest.mark.parametrize(
    "root, names",
    [(DRAGON, DRAGON_FRAMES), (HVDROPDB, HVDROPDB_FRAMES)],
    ids=["ROP-DRAGON", "HVDROPDB"],
)
def test_real_photographs_give_ok_records(root, names, tmp_path):
    if not root.exists():
        pytest.skip(f"{root} not found")
    records = predict(copied(root, names, tmp_path / "in"), tmp_path / "out", "--explain")
    assert len(records) == len(names)
    for record in records:
        assert record["ok"], record["error"]
        out = record["outputs"]
        assert 0.0 <= out["rop_probability"] <= 1.0
        assert out["stage2_run"] == (out["tr_rop_probability"] is not None)
        assert isinstance(out["vascular_severity"], float) and out["vascular_severity"] > 0
        assert out["vascular"]["status"] == "ok" and out["vascular"]["segments"] >= 1
        assert (tmp_path / "out" / record["files"]["gradcam_stage1"]).exists()
        roles = [c["role"] for c in record["companions"]]
        assert "vessel_probability from vessels" in roles


def test_severity_of_a_real_photo_does_not_follow_its_resolution(tmp_path):
    """The same 800×600 frame at 0.6× (480×360): the score moves little."""
    if not DRAGON.exists():
        pytest.skip(f"{DRAGON} not found")
    from PIL import Image

    folder = tmp_path / "in"
    folder.mkdir()
    image = Image.open(DRAGON / DRAGON_FRAMES[1]).convert("RGB")
    image.save(folder / "full.png")
    image.resize((480, 360), Image.BICUBIC).save(folder / "small.png")
    scores = {
        Path(r["input"]).stem: r["outputs"]["vascular_severity"]
        for r in predict(folder, tmp_path / "out")
    }
    assert abs(scores["full"] - scores["small"]) < 0.15 * scores["full"]


def test_dragon_labels_read_as_they_are_into_one_fold_per_infant():
    if not DRAGON.exists():
        pytest.skip(f"{DRAGON} not found")
    csv = DRAGON / "labels.csv"
    _, reader = find_reader(get_registry(), "rop", csv)
    columns = dict(part.split("=") for part in COLUMNS.split(","))
    samples = read_samples(reader, csv, columns)
    assert len(samples) == 63 and all(s.image.exists() for s in samples)
    treated = {s.patient for s in samples if s.label == 2}  # Treated -> TR-ROP
    assert {s.label for s in samples} == {1, 2} and len(treated) == 2
    folds = splits.make_folds(samples, splits.LEAVE_ONE_OUT)
    assert len(folds) == 4 and all(len(f.test_groups) == 1 for f in folds)
    for fold in folds:
        marked = splits.apply_fold(samples, fold)
        test = {s.patient for s in marked if s.split == "test"}
        assert [f"patient:{p}" for p in test] == list(fold.test_groups)
        train_labels = np.array([s.label for s in marked if s.split == "train"])
        assert set(train_labels) == {1, 2}  # every fold trains on both classes
