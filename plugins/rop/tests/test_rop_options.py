"""The core's --threshold on the rop task: the ROP decision (stage 1)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from eyescan.api import EyescanError, get_registry, models
from eyescan_rop.cascade import THRESHOLD, Cascade
from eyescan_rop.synthetic import make_rop_fundus
from eyescan_rop.task import RopTask


def test_cascade_thresholds_set_stage_1_or_a_lone_stage_2():
    stage = SimpleNamespace(name="m")
    both = Cascade(stage, stage)
    assert both.thresholds() == (THRESHOLD, THRESHOLD)
    assert both.thresholds(0.3) == (0.3, THRESHOLD)
    assert Cascade(None, stage).thresholds(0.3) == (THRESHOLD, 0.3)
    values = both.values(0.4, 0.45, 0.3)
    assert values["stage1"] == "rop" and values["stage2"] == "non-tr-rop"
    assert values["threshold"] == 0.3
    assert values["stage_thresholds"] == {"stage1": 0.3, "stage2": THRESHOLD}
    assert both.values(0.4, np.nan)["stage1"] == "normal"
    assert "stage_thresholds" not in both.values(0.4, np.nan)


def test_the_threshold_changes_the_rop_call_and_who_goes_to_stage_2():
    model = models.load(get_registry(), "rop")
    task = RopTask()
    task.prepare(model)
    items = [
        task.preprocess(make_rop_fundus(256, seed=s, label=s % 3).image, f"s{s}") for s in range(4)
    ]
    default = task.configured({}).predict(model, items)
    p = [pred.values["rop_probability"] for pred in default]
    assert all(pred.values["threshold"] == THRESHOLD for pred in default)
    low = task.configured({"threshold": max(0.001, min(p) * 0.99)}).predict(model, items)
    high = task.configured({"threshold": min(0.999, max(p) * 1.01 + 1e-6)}).predict(model, items)
    assert all(pred.values["stage1"] == "rop" and pred.values["stage2_run"] for pred in low)
    assert all(pred.values["diagnosis"] == "normal" for pred in high)
    assert not any(pred.values["stage2_run"] for pred in high)
    for pred in low + high:
        assert pred.values["stage_thresholds"]["stage2"] == THRESHOLD
        assert pred.values["threshold"] == pred.values["stage_thresholds"]["stage1"]
    with pytest.raises(EyescanError, match="--threshold"):
        task.configured({"threshold": 1.0}).predict(model, items[:1])
