"""Bootstrap intervals of the evaluation's headline metrics; validation splits of training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eyescan.api import DataError, Sample, bootstrap, metrics
from eyescan_redlesion.evaluation import COUNT_KEYS, resampled_metrics
from eyescan_redlesion.lesions import detection_counts
from eyescan_redlesion.training import recipe_for, validation_split


def _images(n=6, shape=(20, 30), seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        truth = np.zeros(shape, bool)
        truth[rng.integers(0, shape[0] - 3), rng.integers(0, shape[1] - 3)] = True
        truth[5:8, 10:14] = rng.random() < 0.7
        prob = np.clip(0.6 * truth + 0.5 * rng.random(shape), 0, 1)
        out.append((truth, prob))
    return out


def test_resampled_metrics_on_all_images_match_the_point_estimates():
    images = _images()
    stats = {
        n: np.stack([bootstrap.pooled_pixel_stats(p, t, 0.5) for t, p in images])
        for n in ("ma", "he")
    }
    counts = {
        n: np.asarray(
            [[detection_counts(t, p >= 0.5)[k] for k in COUNT_KEYS] for t, p in images], float
        )
        for n in ("ma", "he")
    }
    got = resampled_metrics(stats, counts)(np.arange(len(images)))
    truth = np.concatenate([t.ravel() for t, _ in images])
    score = np.concatenate([p.ravel() for _, p in images])
    exact = metrics.binary_metrics(truth, score, threshold=0.5)
    for name in ("ma", "he"):
        assert got[f"{name}_precision"] == pytest.approx(exact["precision"])
        assert got[f"{name}_recall"] == pytest.approx(exact["sensitivity"])
        assert got[f"{name}_f1"] == pytest.approx(exact["f1"])
        assert got[f"{name}_auc_roc"] == pytest.approx(exact["auc_roc"], abs=0.01)
        assert got[f"{name}_auc_pr"] == pytest.approx(exact["auc_pr"], abs=0.02)
        assert 0 <= got[f"{name}_lesion_recall"] <= 1


def test_intervals_cover_the_estimate_and_need_two_images():
    images = _images(8)
    stats = {
        n: np.stack([bootstrap.pooled_pixel_stats(p, t, 0.5) for t, p in images])
        for n in ("ma", "he")
    }
    counts = {n: np.ones((len(images), len(COUNT_KEYS))) for n in ("ma", "he")}
    compute = resampled_metrics(stats, counts)
    ci = bootstrap.bootstrap_ci(len(images), compute, resamples=200)
    point = compute(np.arange(len(images)))
    for key in ("ma_auc_pr", "he_f1", "ma_precision", "he_lesion_f1"):
        low, high = ci[key]
        assert low <= point[key] + 1e-9 and point[key] - 1e-9 <= high
    single = bootstrap.bootstrap_ci(1, resampled_metrics(
        {n: v[:1] for n, v in stats.items()}, {n: v[:1] for n, v in counts.items()}
    ))  # fmt: skip
    assert set(single) == set(point) and all(v is None for v in single.values())


def _samples(n, split=None, patient=None):
    return [
        Sample(f"IDRiD_{i:02d}", Path(f"{i}.jpg"), split=split, patient=patient) for i in range(n)
    ]


def test_validation_is_held_out_of_the_training_split_only():
    samples = _samples(10, "train")
    recipe = recipe_for({"config": {"val_images": 3}})
    train, val, rule = validation_split(samples, recipe, seed=0)
    assert len(val) == 3 and not {s.id for s in train} & {s.id for s in val}
    assert {s.id for s in train} | {s.id for s in val} == {s.id for s in samples}
    again, _, _ = validation_split(list(reversed(samples)), recipe, seed=0)
    assert {s.id for s in again} == {s.id for s in train}  # order-independent
    assert rule.startswith("hold-out of 3")
    fixed = validation_split(samples, {**recipe, "val_ids": ["IDRiD_00"]})
    assert [s.id for s in fixed[1]] == ["IDRiD_00"]
    marked = [*samples[:8], Sample("v", Path("v.jpg"), split="val")]
    assert [s.id for s in validation_split(marked, recipe)[1]] == ["v"]
    assert validation_split(_samples(3), recipe)[1] == []  # too few images: none


def test_recipe_merge_keeps_the_stages_and_refuses_retired_keys():
    stage1 = recipe_for({"config": {"model_options": {"width": 0.5}}, "epochs": 2})
    assert stage1["stage"] == 1 and stage1["epochs"] == 2 and stage1["init"] == "none"
    assert stage1["lambda0"] == 0.14 and stage1["model_options"] == {"width": 0.5}
    stage2 = recipe_for({"config": {"stage": 2, "init_weights": "s1.safetensors"}})
    assert stage2["epochs"] == 20 and "lambda0" not in stage2
    with pytest.raises(DataError, match="init_weights"):
        recipe_for({"config": {"stage": 2}})
    with pytest.raises(DataError, match="no longer read"):
        recipe_for({"config": {"imagenet_weights": "auto"}})
    with pytest.raises(DataError, match="exclude each other"):
        recipe_for({"config": {"init_weights": "a.safetensors", "init": "vgg.pth"}})
