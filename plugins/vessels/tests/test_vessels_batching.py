"""``predict --batch-size``: images of one size go through the network in one call, with
the numbers of one call each."""

from __future__ import annotations

import numpy as np

from eyescan.api import get_registry, models, segmentation, synthetic


def test_a_batch_gives_each_images_own_probabilities(monkeypatch):
    registry = get_registry()
    task = registry.task("vessels")
    model = models.load(registry, "vessels")
    task.prepare(model)
    photos = [synthetic.make_fundus(s, seed=i).image for i, s in enumerate([96, 96, (80, 112)])]
    items = [task.preprocess(photo, f"p{i}") for i, photo in enumerate(photos)]
    calls = []
    original = segmentation.predict_logits

    def counted(module, x, *args, **kwargs):
        calls.append(tuple(x.shape))
        return original(module, x, *args, **kwargs)

    monkeypatch.setattr(segmentation, "predict_logits", counted)
    together = task.predict(model, items)
    assert sorted(c[0] for c in calls) == [1, 2]  # the two 96² photos in one call
    calls.clear()
    alone = [task.predict(model, [item])[0] for item in items]
    assert len(calls) == 3
    for a, b in zip(together, alone):
        assert np.abs(a.arrays["probability"] - b.arrays["probability"]).max() < 1e-4
        assert a.values == b.values
