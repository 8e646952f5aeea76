"""The synthetic Hirschberg generator: labels follow the reflex geometry, boxes hold the eyes."""

from __future__ import annotations

import numpy as np

from eyescan_strabismus.synthetic import make_face, voc_xml


def test_reproducible():
    a, b = make_face(96, seed=5), make_face(96, seed=5)
    assert np.array_equal(a.image, b.image) and a.box == b.box and a.label == b.label


def test_labels_follow_the_reflex_displacement():
    for seed in range(6):
        normal = make_face(96, seed, strabismus=False, jitter=0.06)
        squint = make_face(96, seed, strabismus=True, min_deviation=0.3)
        assert normal.label == 0 and normal.deviation <= 0.06 * np.sqrt(2) + 1e-9
        assert squint.label == 1 and squint.deviation >= 0.3 - 0.06 * np.sqrt(2)


def test_box_holds_both_eyes_and_reflexes():
    for seed in range(4):
        face = make_face(128, seed)
        x0, y0, x1, y1 = face.box
        assert 0 <= x0 < x1 <= 128 and 0 <= y0 < y1 <= 128
        for eye in face.eyes:
            for x, y in (eye["iris"], eye["reflex"]):
                assert x0 <= x <= x1 and y0 <= y <= y1
        assert (x1 - x0) > 2 * (y1 - y0)  # a wide, flat region


def test_reflex_is_brightest_near_its_position():
    face = make_face(160, seed=1, strabismus=False)
    grey = face.image.astype(float).mean(axis=2)
    for eye in face.eyes:
        x, y = (int(round(v)) for v in eye["reflex"])
        patch = grey[y - 1 : y + 2, x - 1 : x + 2]
        iris = eye["iris_radius"]
        ring = grey[int(y - iris) : int(y + iris) + 1, int(x - iris) : int(x + iris) + 1]
        assert patch.max() >= np.percentile(ring, 90)


def test_no_face_image_has_no_box():
    blank = make_face(64, seed=2, face=False)
    assert blank.box is None and blank.label is None and blank.image.shape == (64, 64, 3)


def test_voc_xml_is_labelimg_shaped():
    xml = voc_xml("a.png", 64, 48, [(1.2, 2.6, 30.4, 10.5)])
    assert (
        "<filename>a.png</filename>" in xml and "<xmin>1</xmin>" in xml and "<ymin>3</ymin>" in xml
    )
    assert "\t\t<bndbox>" in xml and "<difficult>0</difficult>" in xml
