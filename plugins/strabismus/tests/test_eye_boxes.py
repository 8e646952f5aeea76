"""The reviewed eye-region boxes of strabismus-faces (``data/eye_boxes.csv``) and the
box rules of ``scripts/label_eye_boxes.py`` (made-up rectangles; no face images here)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from eyescan.testing import load_script

PLUGIN = Path(__file__).resolve().parents[1]
BOXES = PLUGIN / "eyescan_strabismus" / "data" / "eye_boxes.csv"
OVERRIDES = PLUGIN / "eyescan_strabismus" / "data" / "eye_boxes_overrides.csv"
DATA = Path(__file__).resolve().parents[4] / "shared" / "data" / "strabismus-faces"


def _script():
    return load_script(PLUGIN / "scripts" / "label_eye_boxes.py")


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_box_from_eyes_rule():
    rule = _script()
    left, right = (100, 50, 40, 30), (200, 56, 44, 30)  # x, y, w, h
    # union x 100..244 (w 144), y 50..86; grown by MARGIN_X·144 left and right
    m = rule.MARGIN_X * 144
    my = rule.MARGIN_Y * 36
    expected = (round(100 - m), round(50 - my), round(244 + m), round(86 + my))
    assert rule.box_from_eyes(left, right, 640, 480) == expected
    assert rule.box_from_eyes(right, left, 640, 480) == expected  # order does not matter
    # clipped to the image
    assert rule.box_from_eyes((0, 0, 40, 30), (100, 0, 40, 30), 150, 480) == (0, 0, 150, 30)


def test_box_from_face_rule():
    rule = _script()
    fx0, fy0, fx1, fy1 = rule.FACE_BOX
    box = rule.box_from_face((100, 40, 200, 200), 640, 480)
    assert box == (
        round(100 + 200 * fx0),
        round(40 + 200 * fy0),
        round(100 + 200 * fx1),
        round(40 + 200 * fy1),
    )
    assert box[2] - box[0] > box[3] - box[1]


def test_pick_pair_takes_one_eye_each_side():
    rule = _script()
    face = (0, 0, 200, 200)
    left, right = (40, 64, 40, 30), (120, 64, 40, 30)  # centres at 0.3 and 0.7 of the face
    stray = (85, 140, 30, 25)  # a nostril-like blob low in the middle
    assert rule.pick_pair([stray, right, left], face) == (left, right)
    assert rule.pick_pair([left, stray], face) is None  # no eye right of the midline
    assert rule.pick_pair([left], face) is None


def test_overrides_file_is_well_formed():
    header = OVERRIDES.read_text(encoding="utf-8").splitlines()[0]
    assert header == "path,x0,y0,x1,y1,note"
    for row in _rows(OVERRIDES):
        assert all(int(row[k]) >= 0 for k in ("x0", "y0", "x1", "y1"))


@pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data/strabismus-faces is absent")
def test_a_box_for_every_photograph():
    labels = _rows(DATA / "labels.csv")
    rows = {row["path"]: row for row in _rows(BOXES)}
    assert len(rows) == len(labels) == 285
    for item in labels:
        row = rows[item["path"]]
        assert row["split"] == item["split"] and row["label"] == item["binary"]
        assert row["method"] in ("eyes", "face", "manual")
        x0, y0, x1, y1 = (int(row[k]) for k in ("x0", "y0", "x1", "y1"))
        width, height = int(item["width"]), int(item["height"])
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height, row
        assert x1 - x0 > y1 - y0, row  # both eyes side by side: wider than tall


def test_manifest_reader_takes_the_csv():
    from eyescan_strabismus.data import BoxManifestReader

    columns = {"image": "path", "xmin": "x0", "ymin": "y0", "xmax": "x1", "ymax": "y1"}
    samples = BoxManifestReader().read(BOXES, columns)
    assert len(samples) == len(_rows(BOXES))
    assert all(s.label in (0, 1) and s.split in ("train", "test") for s in samples)
    assert all(len(s.boxes) == 1 for s in samples)
