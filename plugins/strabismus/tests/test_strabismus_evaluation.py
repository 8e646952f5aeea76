"""End-to-end screening metrics: a photograph without an eye region found is a failure,
never left out; counts by sub-type (made-up scores, no images)."""

from __future__ import annotations

import numpy as np
import pytest

from eyescan_strabismus.evaluation import (
    NO_REGION_SCORE,
    by_subtype,
    metric_counts,
    pipeline_counts,
    pipeline_figures,
)

NAN = float("nan")
# strabismus: found and called (TP), not found, found and called normal (FN);
# normal: found and cleared (TN), not found, found and called strabismus (FP)
TRUTH = np.array([True, True, True, False, False, False])
PROB = np.array([0.9, NAN, 0.2, 0.1, NAN, 0.7])


def test_no_eye_region_counts_against_sensitivity_and_specificity():
    figures = pipeline_figures(TRUTH, PROB)
    assert figures["pipeline_sensitivity"] == pytest.approx(1 / 3)  # not 1/2 (found only)
    assert figures["pipeline_specificity"] == pytest.approx(1 / 3)
    assert figures["pipeline_accuracy"] == pytest.approx(2 / 6)
    # AUC over all six, the two without an eye region at 0.5: pairs won 3 + 1.5 + 1 of 9
    assert NO_REGION_SCORE == 0.5
    assert figures["pipeline_auc"] == pytest.approx(5.5 / 9)
    counts = pipeline_counts(TRUTH, PROB)
    assert {k: counts[f"pipeline_{k}"] for k in ("tp", "tn", "fp", "fn")} == {
        "tp": 1,
        "tn": 1,
        "fp": 1,
        "fn": 1,
    }
    assert counts["pipeline_no_eye_region_strabismus"] == 1
    assert counts["pipeline_no_eye_region_normal"] == 1
    assert "on all 6 images; 2 without an eye region" in counts["pipeline_note"]


def test_the_neutral_score_is_never_a_hit():
    # 0.5 is at the threshold, yet a photograph without an eye region is not called strabismus
    figures = pipeline_figures(np.array([True, False]), np.array([NAN, NAN]))
    assert figures["pipeline_sensitivity"] == 0 and figures["pipeline_specificity"] == 0
    assert figures["pipeline_accuracy"] == 0 and figures["pipeline_auc"] == 0.5
    # with every eye region found the rule is the classifier's own
    prob = np.array([0.9, 0.6, 0.4, 0.1])
    truth = np.array([True, True, False, False])
    figures = pipeline_figures(truth, prob)
    assert figures["pipeline_accuracy"] == 1 and figures["pipeline_auc"] == 1


def test_one_class_gives_nan_not_a_number_made_up():
    figures = pipeline_figures(np.array([True, True]), np.array([0.9, NAN]))
    assert figures["pipeline_sensitivity"] == 0.5
    assert np.isnan(figures["pipeline_specificity"]) and np.isnan(figures["pipeline_auc"])


def test_every_metric_states_its_n():
    n = metric_counts(TRUTH, np.nan_to_num(PROB) >= 0.5)
    assert n == {
        "accuracy": 6,
        "auc": 6,
        "sensitivity": 3,
        "specificity": 3,
        "precision": 2,
        "f1": 6,
    }


def test_by_subtype_counts_each_kind_of_squint():
    subtypes = ["esotropia", "esotropia", "exotropia", "normal", "normal", None]
    prob = np.array([0.8, NAN, 0.3, 0.2, 0.9, 0.99])
    table = by_subtype(subtypes, prob)
    assert set(table) == {"esotropia", "exotropia", "normal"}  # no sub-type: left out
    eso = table["esotropia"]
    assert (eso["images"], eso["strabismus"], eso["normal"], eso["no_eye_region"]) == (2, 1, 0, 1)
    assert eso["strabismus_rate"] == 0.5
    assert eso["ci95"] is not None and eso["ci95"][0] <= 0.5 <= eso["ci95"][1]
    exo = table["exotropia"]
    assert (exo["images"], exo["strabismus"], exo["normal"]) == (1, 0, 1)
    assert exo["ci95"] is None  # one photograph: no interval
    assert table["normal"]["strabismus"] == 1 and table["normal"]["strabismus_rate"] == 0.5
