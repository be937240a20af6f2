"""The whole bill: labelled data as a setup cost, retraining and re-indexing as recurring costs, guards, a provider
retiring a fine-tune's base model, a stale price sheet, and where the decision tips. Each cost term against
figures worked by hand; each tipping point put back into the decision."""

from __future__ import annotations

from datetime import timedelta

import pytest

from harness.costs.model import CostChange, cost_model
from harness.costs.prices import price_sheet
from harness.costs.pricing import data_items
from harness.records.curve import CurveFit, CurvePoint, CurvePrediction, LearningCurve
from harness.records.setup import DataUsed, PluginGiven, StrategySetup
from harness.records.summary import CostItem, PricingUsed, StrategyCost
from harness.run.compare import CompareOptions, compare
from harness.suite.schema import DataPrepSpec, DecisionSpec, Suite
from harness.verdict.decide import decide_run, options_from_summaries, rank_at
from harness.verdict.horizon import horizon_lines
from harness.verdict.learning import more_data
from tests.conftest import base_suite, write_suite


def _setup(**used) -> StrategySetup:
    return StrategySetup(backend="b", given=PluginGiven(kind="x", data_used=DataUsed(**used)))


def _cost(items: dict[str, float], per_request: float = 0.001) -> StrategyCost:
    return StrategyCost(
        pricing=PricingUsed(kind="tokens", basis="test"),
        per_request_usd=per_request,
        setup_usd=sum(items.values()),
        setup_items=[CostItem(what=k, usd=v) for k, v in items.items()],
    )


# ---- data preparation ---------------------------------------------------------------------------------------------


def test_labelled_examples_are_charged_for_what_each_strategy_used():
    # 0.5 hours per 100 examples at $40/hour: $0.20 an example
    effort = DataPrepSpec(hours_per_100_examples=0.5, usd_per_hour=40, corpus_curation_usd=500)
    assert effort.per_example_usd == pytest.approx(0.20)
    (finetune,) = data_items(_setup(train=300, dev=50), effort, [])
    assert finetune.what == "data preparation (350 labelled examples: 300 train + 50 dev)"
    assert finetune.usd == pytest.approx(70.0)  # 350 x $0.20
    (few,) = data_items(_setup(train=14), effort, [])
    assert few.usd == pytest.approx(2.80)  # 14 exemplars x $0.20
    rag = data_items(_setup(train=2, corpus=True), effort, [])
    assert [(i.what, round(i.usd, 6)) for i in rag] == [
        ("data preparation (2 labelled examples: 2 train)", 0.4),
        ("corpus curation", 500.0),
    ]
    assert data_items(_setup(), effort, []) == []  # zero-shot uses no labelled example
    per_example = DataPrepSpec(usd_per_example=1.5)
    assert data_items(_setup(train=10, dev=4), per_example, [])[0].usd == pytest.approx(21.0)
    notes: list[str] = []
    assert data_items(StrategySetup(backend="b", given=PluginGiven(kind="plugin")), per_example, notes) == []
    assert "does not say which labelled examples it used" in notes[0]


# ---- recurring costs ----------------------------------------------------------------------------------------------


def test_retraining_every_3_months_costs_the_training_and_the_refreshed_data_again():
    recorded = _cost({"training": 12.0, "data preparation (350 labelled examples: 300 train + 50 dev)": 70.0})
    once = cost_model(recorded)
    # setup spread over 12 months: (12 + 70) / 12 = $6.8333 a month
    assert once.fixed_monthly_usd(12) == pytest.approx(82 / 12)
    model = cost_model(recorded, retrain_every_months=3, refresh_share=0.2)
    (retrain,) = model.recurring
    assert retrain.usd == pytest.approx(12 + 0.2 * 70)  # each retraining: the training and a fifth of the data
    # four trainings a year instead of one: (12 + 14) x (1/3 - 1/12) = $6.50 a month more
    assert model.recurring_monthly_usd(12) == pytest.approx(6.5)
    assert model.monthly_usd(10_000, 12) == pytest.approx(82 / 12 + 6.5 + 10_000 * 0.001)
    # retraining no sooner than the horizon ends adds nothing to it
    assert cost_model(recorded, retrain_every_months=12).monthly_usd(10_000, 12) == pytest.approx(
        once.monthly_usd(10_000, 12)
    )


def test_reindexing_every_2_months_adds_the_indexing_again():
    recorded = _cost({"indexing": 6.0, "corpus curation": 500.0})
    model = cost_model(recorded, reindex_every_months=2)
    (reindex,) = model.recurring
    assert (reindex.what, reindex.usd) == ("re-indexing", 6.0)  # curation is one-off; the index is rebuilt
    assert model.recurring_monthly_usd(12) == pytest.approx(6 * (1 / 2 - 1 / 12))  # $2.50 a month
    # a what-if on data cost scales the curation, not the indexing
    assert cost_model(recorded, change=CostChange(data_scale=2)).setup_usd == pytest.approx(6 + 1000)


def test_recurring_and_data_settings_refuse_bad_values():
    with pytest.raises(ValueError, match="0 months between repeats is not a period"):
        DecisionSpec(retrain_every_months=0)
    with pytest.raises(ValueError, match="-1 months between repeats"):
        DecisionSpec(reindex_every_months={"rag": -1})
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        DataPrepSpec(usd_per_example=-1)
    with pytest.raises(ValueError, match="both hours_per_100_examples and usd_per_hour"):
        DataPrepSpec(hours_per_100_examples=2)
    assert DecisionSpec(retrain_every_months={"lora": 6}).every_months("retrain", "lora") == 6
    assert DecisionSpec(retrain_every_months={"lora": 6}).every_months("retrain", "other") is None


# ---- the horizon: a retiring base model, a stale price sheet --------------------------------------------------------


def _api_suite(model: str, horizon: int, **decision) -> Suite:
    suite = base_suite()
    suite["backends"] = [{"name": "api", "kind": "openai", "model": model}]
    suite["strategies"] = [
        {"name": "zero", "kind": "zero_shot"},
        {"name": "tuned", "kind": "finetune", "config": {"tuner": {"kind": "openai"}}},
    ]
    suite["decision"] = {"horizon_months": horizon, **decision}
    return Suite.model_validate(suite)


def test_a_fine_tune_whose_base_model_retires_within_the_horizon_is_flagged():
    sheet = price_sheet()
    retiring = next(name for name, p in sheet.models.items() if p.retires is not None and not p.same_as)
    retires = sheet.models[retiring].retires
    today = retires - timedelta(days=100)  # about 3.3 months before
    (line,) = [x for x in horizon_lines(_api_suite(retiring, 12), today) if "tuned" in x]
    assert f"tuned: its base model {retiring} retires on {retires.isoformat()}, 3.3 months from now" in line
    assert "retrain_every_months" in line
    assert not [x for x in horizon_lines(_api_suite(retiring, 3), today) if "tuned" in x]  # the horizon ends first


def test_a_price_sheet_older_than_120_days_is_said_in_the_uncertainty():
    sheet_date = price_sheet().date
    suite = Suite.model_validate(base_suite())
    assert horizon_lines(suite, sheet_date + timedelta(days=120)) == []
    (line,) = horizon_lines(suite, sheet_date + timedelta(days=121))
    assert sheet_date.isoformat() in line and "121 days" in line and "harness prices" in line


# ---- more data: is labelling twice the examples worth it at the suite's volumes --------------------------------------


def _curve(gain: float, low: float) -> LearningCurve:
    points = [
        CurvePoint(fraction=f, n_examples=n, mean=m, ci_low=None, ci_high=None, n_cases=150, training_usd=t, name=x)
        for f, n, m, t, x in ((0.5, 150, 0.80, 0.5, "ft@curve0.5"), (1.0, 300, 0.90, 1.0, "ft"))
    ]
    prediction = CurvePrediction(n_examples=600, factor=2.0, mean=0.90 + gain, low=0.90 + low, high=0.99)
    fit = CurveFit(
        status="extrapolated", reason="", params=None, asymptote=None, predictions=[prediction], supported_share=1.0
    )
    return LearningCurve(strategy="ft", metric="label_accuracy", points=points, fit=fit)


def _value_suite(volumes: int | list[int]) -> Suite:
    suite = base_suite()
    suite["economics"] = {"data": {"usd_per_example": 0.2}, "value": {"correct_usd": 0.001}}
    suite["decision"] = {"monthly_requests": volumes, "horizon_months": 12}
    return Suite.model_validate(suite)


def test_more_data_is_worth_it_from_the_volume_where_the_gain_pays_for_labelling():
    # 300 more examples at $0.20 = $60, training again $1: $61. A gain of 0.01 at $0.001 a right answer over
    # 12 months is worth $0.00012 per monthly request: it pays from 61 / 0.00012 = 508,333 requests a month.
    both = more_data(_curve(0.01, 0.002), _value_suite([10_000, 1_000_000]), None)
    assert (both.labelling_usd, both.extra_training_usd) == (pytest.approx(60.0), 1.0)
    assert both.pays_from_monthly_requests == pytest.approx(61 / 0.00012)
    assert both.worth_it is None and "depends on your volume" in both.sentence
    assert "$1.20 at 10,000 requests a month and $120 at 1,000,000" in both.sentence
    assert "against $61.00; it pays from about 508,000 requests a month" in both.sentence
    assert "(and $24.00 at the interval's low end)" in both.sentence  # 0.002 x $0.001 x 12 x 1,000,000
    assert more_data(_curve(0.01, 0.002), _value_suite(1_000_000), None).worth_it is True
    assert more_data(_curve(0.01, 0.002), _value_suite(500_000), None).worth_it is False  # just below 508,333
    unsure = more_data(_curve(0.01, -0.02), _value_suite(1_000_000), None)
    assert unsure.worth_it is True and "low end is a gain of -0.020: it may not pay at all" in unsure.sentence


# ---- where the decision tips --------------------------------------------------------------------------------------

TRAINING_USD = 5.0


def _tipping_run(tmp_path):
    """zero and few answer alike on the fake model (the same quality); few is then given a training cost and half
    zero's cost per request, as a fine-tune would be: zero wins at low volume, few above the break-even."""
    suite = base_suite()
    suite["backends"][0]["model"] = "toy-model"
    suite["economics"] = {"prices": {"toy-model": {"input_per_1m_usd": 1.0, "output_per_1m_usd": 4.0}}}
    suite["decision"] = {"monthly_requests": 10_000, "min_gain": 0.02}
    record, _ = compare(write_suite(tmp_path / "s", suite), CompareOptions(out=tmp_path / "run"))
    summaries = record.strategies
    per_request = summaries["zero"].cost.per_request_usd
    few = summaries["few"].cost
    few.per_request_usd = per_request / 2
    few.setup_items = [CostItem(what="training", usd=TRAINING_USD, basis="test")]
    few.setup_usd = TRAINING_USD
    return record, summaries, per_request


def _winner(record, summaries, change=None, volume=10_000) -> str | None:
    suite = record.suite
    options = options_from_summaries(
        summaries,
        {s.name: s.kind for s in suite.strategies},
        suite.primary_metric,
        policy=suite.decision,
        change=change,
    )
    return rank_at(options, record.decision.pairs, suite.decision, None, volume).winner


def test_each_tipping_point_flips_the_decision_and_one_percent_back_does_not(tmp_path):
    record, summaries, per_request = _tipping_run(tmp_path)
    decision = decide_run(record.suite, summaries, record.decision.pairs, prices=None)
    assert decision.winner == "zero"
    points = {t.input: t for t in decision.tipping}
    assert set(points) == {"monthly_requests", "token_price_factor", "training_usd"}

    volume = points["monthly_requests"]
    # few's $5 of training over 12 months is paid back once its saving of half a request's cost covers it
    by_hand = TRAINING_USD / 12 / (per_request / 2)
    assert volume.high == pytest.approx(by_hand, rel=1e-3) and volume.high_winner == "few"
    assert _winner(record, summaries, volume=round(volume.high * 1.001)) == "few"
    assert _winner(record, summaries, volume=round(volume.high * 0.99)) == "zero"
    assert volume.low is None  # fewer requests only favour zero more
    assert "zero stays ahead unless monthly volume rises above" in volume.sentence

    training = points["training_usd"]  # cheaper training makes few win at 10,000 requests
    assert training.low is not None and training.high is None
    assert _winner(record, summaries, CostChange(training_scale=training.low)) == "few"
    assert _winner(record, summaries, CostChange(training_scale=training.low * 1.01)) == "zero"
    # by hand: few wins once 10,000 x per_request / 2 exceeds the training spread over 12 months
    assert training.low == pytest.approx(10_000 * per_request / 2 * 12 / TRAINING_USD, rel=1e-3)

    prices = points["token_price_factor"]  # dearer tokens make the cheaper prompt's saving pay for the training
    assert prices.high is not None and prices.low is None
    assert _winner(record, summaries, CostChange(price_scale=prices.high)) == "few"
    assert _winner(record, summaries, CostChange(price_scale=prices.high * 0.99)) == "zero"


def test_an_input_that_cannot_flip_the_winner_says_so_with_the_range(tmp_path):
    record, summaries, _ = _tipping_run(tmp_path)
    summaries["few"].cost.per_request_usd = summaries["zero"].cost.per_request_usd * 2  # dearer in every way
    decision = decide_run(record.suite, summaries, record.decision.pairs, prices=None)
    volume = next(t for t in decision.tipping if t.input == "monthly_requests")
    assert volume.low is None and volume.high is None
    assert "does not flip within that range" in volume.sentence and "1,000M requests a month" in volume.sentence


# ---- guards -------------------------------------------------------------------------------------------------------


def test_a_guard_on_a_quality_metric_checks_the_interval_and_the_verdict_names_it():
    from harness.costs.model import CostModel
    from harness.verdict.decide import Option, decide
    from harness.verdict.pairs import pairwise
    from harness.verdict.seeds import CaseScores

    def option(name, cost, faithfulness):
        return Option(
            name=name,
            kind="few_shot",
            quality=0.8,
            ci_low=0.7,
            ci_high=0.9,
            n=100,
            cost=CostModel(cost),
            p95_s=1.0,
            guard_values={"faithfulness": faithfulness, "acc": (0.7, 0.9)},
        )

    scores = {c: 1.0 if c < 80 else 0.0 for c in range(100)}
    pairs = pairwise(
        {n: CaseScores({str(c): v for c, v in scores.items()}, []) for n in ("cheap", "safe")},
        binary=True,
        confidence=0.95,
        min_gain=0.02,
    )
    # cheap is as good and cheaper, but its faithfulness interval reaches down to 0.74: under the 0.8 floor
    cheap, safe = option("cheap", 0.001, (0.74, 0.86)), option("safe", 0.002, (0.82, 0.9))
    policy = DecisionSpec(monthly_requests=1000, guards=[{"metric": "faithfulness", "min": 0.8}])
    d = decide([cheap, safe], pairs, policy, metric="acc")
    assert d.winner == "safe"
    assert "cheap cannot win: misses faithfulness >= 0.8 (interval low end 0.74)" in d.verdict
    row = next(r for r in d.by_volume[0].ranking if r.strategy == "cheap")
    assert not row.meets_slo and row.guards_missed == ["faithfulness >= 0.8 (interval low end 0.74)"]
    # without the guard the cheaper one wins; a ceiling on cost bars the dearer one instead
    assert decide([cheap, safe], pairs, DecisionSpec(monthly_requests=1000), metric="acc").winner == "cheap"
    capped = DecisionSpec(monthly_requests=1000, guards=[{"metric": "per_request_usd", "max": 0.0015}])
    assert decide([cheap, safe], pairs, capped, metric="acc").winner == "cheap"
    both = DecisionSpec(
        monthly_requests=1000,
        guards=[{"metric": "faithfulness", "min": 0.8}, {"metric": "per_request_usd", "max": 0.0015}],
    )
    d = decide([cheap, safe], pairs, both, metric="acc")
    assert d.winner is None and d.status == "undecided" and "no strategy meets the guards" in d.verdict
