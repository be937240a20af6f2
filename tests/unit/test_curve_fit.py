"""The learning-curve fit: q(n) = a - b * n^(-c) through paired points, its bootstrap interval, and when it refuses."""

from __future__ import annotations

import numpy as np
import pytest

from harness.records.curve import CurveFit, CurvePoint, CurvePrediction, LearningCurve, MoreData
from harness.verdict.curve import fit_learning_curve

SIZES = [25, 50, 100, 200, 400, 800]


def true_curve(n):
    return 0.9 - 2.0 * np.asarray(n, dtype=float) ** -0.7


def nested_scores(means, cases: int = 2000, *, rng=None) -> np.ndarray:
    """0/1 scores, cases x points, where a case solved at a size stays solved at larger ones (as with nested subsets):
    case i passes point j when its difficulty u_i < means[j]. Without rng the difficulties are evenly spread, so the
    column means are exactly `means`."""
    u = rng.random(cases) if rng is not None else (np.arange(cases) + 0.5) / cases
    return (u[:, None] < np.asarray(means)[None, :]).astype(float)


def test_recovers_a_known_curve_and_covers_the_truth_at_twice_the_data():
    scores = nested_scores(true_curve(SIZES), 400, rng=np.random.default_rng(0))
    fit = fit_learning_curve(SIZES, scores, targets=[1600], bounds=(0, 1), resamples=500)
    assert fit.status == "extrapolated" and fit.params is not None
    assert fit.params["a"] == pytest.approx(0.9, abs=0.05)
    assert fit.params["c"] == pytest.approx(0.7, abs=0.35)
    assert 1.0 < fit.params["b"] < 4.0
    assert fit.asymptote == fit.params["a"] and fit.supported_share is not None and fit.supported_share >= 0.8
    (pred,) = fit.predictions
    assert pred.n_examples == 1600 and pred.factor == 2.0
    assert pred.mean == pytest.approx(true_curve(1600), abs=0.03)
    assert pred.low <= true_curve(1600) <= pred.high and pred.low <= pred.mean <= pred.high


def test_three_exact_points_on_a_saturating_curve_fit_it_all_but_exactly():
    sizes = [100, 200, 400]
    fit = fit_learning_curve(sizes, nested_scores(true_curve(sizes), 4000), targets=[800], bounds=(0, 1))
    assert fit.status == "extrapolated"
    assert fit.predictions[0].mean == pytest.approx(true_curve(800), abs=0.005)


def test_points_rising_the_same_per_doubling_cannot_be_extrapolated():
    fit = fit_learning_curve([75, 150, 300], nested_scores([0.3, 0.5, 0.7]), targets=[600], bounds=(0, 1))
    assert fit.status == "cannot_extrapolate"
    assert "levels off" in fit.reason and fit.reason.endswith(".")
    assert fit.predictions == [] and fit.asymptote is None
    assert fit.params is not None and fit.params["c"] < 0.05  # the free fit's exponent sits at its lower limit


def test_convex_points_cannot_be_extrapolated():
    fit = fit_learning_curve([50, 100, 200, 400], nested_scores([0.3, 0.35, 0.5, 0.8]), targets=[800], bounds=(0, 1))
    assert fit.status == "cannot_extrapolate" and fit.predictions == []


def test_a_bend_within_noise_cannot_be_extrapolated_until_the_cases_settle_it():
    # gains 0.15 then 0.11 per doubling: the point fit levels off, but on 100 cases many resamples do not
    fit = fit_learning_curve([100, 200, 400], nested_scores([0.4, 0.55, 0.66], 100), targets=[800], bounds=(0, 1))
    assert fit.status == "cannot_extrapolate" and fit.predictions == []
    assert fit.supported_share is not None and fit.supported_share < 0.8 and "bootstrap" in fit.reason
    fit = fit_learning_curve([100, 200, 400], nested_scores([0.4, 0.55, 0.66], 2000), targets=[800], bounds=(0, 1))
    assert fit.status == "extrapolated" and fit.supported_share is not None and fit.supported_share >= 0.8


def test_two_sizes_cannot_show_a_curve():
    fit = fit_learning_curve([100, 400], nested_scores([0.5, 0.8]), targets=[800], bounds=(0, 1))
    assert fit.status == "cannot_extrapolate" and "distinct" in fit.reason and fit.predictions == []


def test_flat_points_within_noise_are_flat():
    rng = np.random.default_rng(3)
    scores = (rng.random((400, 4)) < 0.8).astype(float)  # every size ~0.8, differences only noise
    fit = fit_learning_curve([50, 100, 200, 400], scores, targets=[800], bounds=(0, 1))
    assert fit.status == "flat" and "flat" in fit.reason and fit.predictions == []
    # the same with the last point clearly lower is flat too (more data does not help)
    fit = fit_learning_curve([50, 100, 200], nested_scores([0.8, 0.8, 0.7]), targets=[400])
    assert fit.status == "flat"


def test_predictions_stay_within_bounds_at_a_saturated_ceiling():
    sizes = [50, 100, 200, 400]
    scores = nested_scores([0.9, 0.97, 1.0, 1.0])
    fit = fit_learning_curve(sizes, scores, targets=[800, 8000], bounds=(0, 1), resamples=300)
    assert fit.status == "extrapolated" and fit.asymptote is not None and fit.asymptote <= 1.0
    for pred in fit.predictions:
        assert 0.0 <= pred.low <= pred.mean <= pred.high <= 1.0
    # a tighter range clips the predictions too
    fit = fit_learning_curve(sizes, scores * 0.5, targets=[800], bounds=(0, 0.5), resamples=300)
    assert fit.predictions and fit.predictions[0].high <= 0.5


def test_the_same_seed_gives_the_same_interval():
    scores = nested_scores(true_curve(SIZES), 400, rng=np.random.default_rng(1))
    runs = [fit_learning_curve(SIZES, scores, targets=[1600], bounds=(0, 1), resamples=300, seed=s) for s in (7, 7, 8)]
    assert runs[0] == runs[1]
    assert (runs[0].predictions[0].low, runs[0].predictions[0].high) != (
        runs[2].predictions[0].low,
        runs[2].predictions[0].high,
    )


def test_records_round_trip_through_json():
    scores = nested_scores(true_curve(SIZES), 400, rng=np.random.default_rng(0))
    fit = fit_learning_curve(SIZES, scores, targets=[1600], bounds=(0, 1), resamples=200)
    curve = LearningCurve(
        strategy="lora",
        metric="accuracy",
        points=[
            CurvePoint(
                fraction=0.5, n_examples=400, mean=0.86, ci_low=0.82, ci_high=0.89, n_cases=400, name="lora@curve0.5"
            ),
            CurvePoint(
                fraction=1.0,
                n_examples=800,
                mean=0.88,
                ci_low=None,
                ci_high=None,
                n_cases=400,
                training_usd=1.5,
                epochs=3,
                name="lora",
            ),
        ],
        fit=fit,
        more_data=MoreData(
            factor=2.0,
            more_examples=800,
            labelling_usd=400.0,
            extra_training_usd=1.5,
            expected_gain=0.01,
            gain_low=-0.01,
            gain_high=0.03,
            worth_it=False,
            sentence="Doubling the data is expected to add 1 point, within noise.",
        ),
    )
    assert LearningCurve.model_validate_json(curve.model_dump_json()) == curve
    flat = CurveFit(status="flat", reason="Flat.", params=None, asymptote=None, supported_share=None)
    assert CurveFit.model_validate_json(flat.model_dump_json()) == flat
    pred = CurvePrediction(n_examples=10, factor=1.0, mean=0.5, low=0.4, high=0.6)
    assert CurvePrediction.model_validate_json(pred.model_dump_json()) == pred
    with pytest.raises(ValueError):
        CurveFit.model_validate({**flat.model_dump(), "extra_key": 1})
