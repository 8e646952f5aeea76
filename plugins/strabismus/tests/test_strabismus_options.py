"""The core's --threshold on the strabismus task: the P(strabismus) decision."""

from __future__ import annotations

import pytest

from eyescan.api import EyescanError, get_registry, models
from eyescan_strabismus.synthetic import make_face
from eyescan_strabismus.task import THRESHOLD, StrabismusTask


def test_the_threshold_decides_strabismus_and_is_recorded():
    model = models.load(get_registry(), "strabismus")
    task = StrabismusTask()
    task.prepare(model)
    items = [
        task.preprocess(make_face(224, seed=90_000 + i, strabismus=bool(i % 2)).image, f"f{i}")
        for i in range(4)
    ]
    default = task.configured({}).predict(model, items)
    scored = [p for p in default if p.values["strabismus_probability"] is not None]
    assert scored and all(p.values["threshold"] == THRESHOLD for p in default)
    p = [pred.values["strabismus_probability"] for pred in scored]
    low, high = max(1e-4, min(p) - 1e-4), min(0.9999, max(p) + 1e-4)  # p: 4 decimals
    for threshold, result in ((low, "strabismus"), (high, "normal")):
        preds = task.configured({"threshold": threshold}).predict(model, items)
        for pred in preds:
            assert pred.values["threshold"] == threshold
            if pred.values["strabismus_probability"] is not None:
                assert pred.values["result"] == result
    with pytest.raises(EyescanError, match="--threshold"):
        task.configured({"threshold": -1}).predict(model, items[:1])
