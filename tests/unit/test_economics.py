"""Does fine-tuning pay off? The cost arithmetic and the decision, checked against numbers worked out by hand.

Every expected value below is written out as literal arithmetic (prices from harness/costs/prices.yaml), so a reader can
check it with a pencil; none is computed by the code under test.
"""

from __future__ import annotations

import math
import re
from datetime import date

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.costs.model import (
    HOURS_PER_MONTH,
    CostModel,
    break_even_accuracy,
    break_even_volume,
    net_value_per_request,
    payback_requests,
)
from harness.costs.prices import price_sheet, resolve_price
from harness.costs.pricing import token_cost
from harness.suite.schema import DecisionSpec, OutcomeCost, Suite, ValueSpec
from harness.verdict.decide import Option, decide
from harness.verdict.explain import render_markdown
from harness.verdict.paired import mcnemar_exact
from harness.verdict.pairs import pairwise
from tests.conftest import base_suite

# The worked example: gpt-4o-mini with a long few-shot prompt against a fine-tuned gpt-4o-mini with a short one.
FEW_SHOT_PER_REQUEST = 1000 * 0.15e-6 + 10 * 0.60e-6  # = 0.000150 + 0.000006 = $0.000156
FINETUNE_PER_REQUEST = 100 * 0.30e-6 + 10 * 1.20e-6  # = 0.000030 + 0.000012 = $0.000042
TRAINING_USD = 300 * 100 * 3 * 3.00e-6  # 300 examples x 100 tokens x 3 epochs = 90,000 tokens x $3/1M = $0.27


def _equal_scores(names: list[str], n: int = 60) -> list[dict]:
    """Paired comparisons of strategies with the same score on every one of n cases (equal quality)."""
    scores = {f"c{i}": float(i % 3 != 0) for i in range(n)}  # 2/3 right
    return pairwise({name: dict(scores) for name in names}, binary=True, confidence=0.95, min_gain=0.02)


def _option(name: str, kind: str, cost: CostModel, quality: float = 2 / 3, n: int = 60) -> Option:
    return Option(name=name, kind=kind, quality=quality, ci_low=None, ci_high=None, n=n, cost=cost)


def _policy(volume, horizon_months: int = 12) -> DecisionSpec:
    return DecisionSpec(min_gain=0.02, confidence=0.95, monthly_requests=volume, horizon_months=horizon_months)


def _suite_with_prices(prices: dict) -> Suite:
    return Suite.model_validate({**base_suite(), "economics": {"prices": prices}})


# ---- 1. the worked example: a long prompt on the base model against a short one on a fine-tuned model ---------


def test_shipped_prices_give_the_hand_worked_per_request_costs_of_few_shot_and_finetune():
    base = resolve_price("gpt-4o-mini", None)
    tuned = resolve_price("ft:gpt-4o-mini:org::abc", None)
    assert base is not None and tuned is not None
    assert not base.finetuned and tuned.finetuned
    # few-shot: 1,000 input tokens x $0.15/1M + 10 output tokens x $0.60/1M
    assert token_cost(base, 1000, 10) == pytest.approx(0.000156, rel=1e-9)
    # fine-tuned: 100 input tokens x $0.30/1M + 10 output tokens x $1.20/1M (twice the base price per token)
    assert token_cost(tuned, 100, 10) == pytest.approx(0.000042, rel=1e-9)
    # training is priced on the base entry: $3.00 per 1M training tokens
    assert tuned.price.training_per_1m_usd == 3.00
    # cached prompt tokens at the cache price: 200 fresh x 0.15 + 800 cached x 0.075 + 10 out x 0.60 = 96 per 1M
    assert token_cost(base, 1000, 10, cached_input_tokens=800) == pytest.approx(96e-6, rel=1e-9)
    # ... and a fine-tuned model's cached tokens at its own cache price: 20 x 0.30 + 80 x 0.15 + 10 x 1.20 = 30 per 1M
    assert token_cost(tuned, 100, 10, cached_input_tokens=80) == pytest.approx(30e-6, rel=1e-9)


def test_finetune_pays_back_its_training_after_about_2368_requests():
    saving = 0.000156 - 0.000042  # $0.000114 a request
    # $0.27 of training / $0.000114 saved per request = 2,368.42 requests
    assert payback_requests(0.27, saving) == pytest.approx(2368.42, abs=0.01)
    assert payback_requests(TRAINING_USD, FEW_SHOT_PER_REQUEST - FINETUNE_PER_REQUEST) == pytest.approx(
        2368.42, abs=0.01
    )
    # no extra setup: paid back from the first request
    assert payback_requests(0.0, saving) == 0.0


def test_decision_reports_finetune_payback_requests_and_saving_for_equal_quality():
    few = _option("few", "few_shot", CostModel(per_request_usd=FEW_SHOT_PER_REQUEST))
    ft = _option("ft", "finetune", CostModel(per_request_usd=FINETUNE_PER_REQUEST, setup_usd=TRAINING_USD))
    d = decide([few, ft], _equal_scores(["few", "ft"]), _policy(10_000), metric="acc")
    assert d.status == "decided"
    assert d.winner == "ft"  # as good and cheaper
    (row,) = d.finetune
    assert row.outcome == "pays_off"
    assert row.saving_per_request_usd == pytest.approx(0.000114, rel=1e-9)
    assert row.extra_setup_usd == pytest.approx(0.27, rel=1e-9)
    assert row.payback_requests == 2369  # 0.27 / 0.000114 = 2,368.42, rounded up once to whole requests
    assert "2,369 requests" in row.reason  # the reason says the same number


# ---- 2. saving too little prompt: the fine-tune never pays off --------------------------------------------------


def test_finetune_that_saves_only_a_little_prompt_never_pays_back():
    tuned = resolve_price("ft:gpt-4o-mini:org::abc", None)
    assert tuned is not None
    # 600 input tokens x $0.30/1M + 10 output x $1.20/1M = 0.000180 + 0.000012 = $0.000192 > $0.000156
    ft_per_request = token_cost(tuned, 600, 10)
    assert ft_per_request == pytest.approx(0.000192, rel=1e-9)
    assert payback_requests(0.27, 0.000156 - 0.000192) is None

    few = _option("few", "few_shot", CostModel(per_request_usd=FEW_SHOT_PER_REQUEST))
    ft = _option("ft", "finetune", CostModel(per_request_usd=ft_per_request, setup_usd=TRAINING_USD))
    d = decide([few, ft], _equal_scores(["few", "ft"]), _policy(10_000), metric="acc")
    (row,) = d.finetune
    assert row.outcome == "never"
    assert row.payback_requests is None
    assert row.saving_per_request_usd == pytest.approx(-0.000036, rel=1e-6)
    assert d.winner == "few"
    assert "never pays off" in d.verdict


# ---- 3. hourly hosting (Azure) flips the answer at low volume ---------------------------------------------------


def test_azure_hosting_makes_the_finetune_dearer_at_10k_requests_a_month():
    with_hosting = CostModel(per_request_usd=0.000042, setup_usd=0.27, hosting_usd_per_hour=1.70)
    without = CostModel(per_request_usd=0.000042, setup_usd=0.27)
    few = CostModel(per_request_usd=0.000156)
    # a month at 10,000 requests, training spread over 12 months:
    #   hosted fine-tune: 1.70 x 730 + 0.27 / 12 + 10,000 x 0.000042 = 1241 + 0.0225 + 0.42 = $1,241.4425
    #   unhosted:                        0.27 / 12 + 10,000 x 0.000042 =        0.0225 + 0.42 = $0.4425
    #   few-shot:                                    10,000 x 0.000156 = $1.56
    assert HOURS_PER_MONTH == 730
    assert with_hosting.monthly_usd(10_000, 12) == pytest.approx(1241.4425, rel=1e-9)
    assert without.monthly_usd(10_000, 12) == pytest.approx(0.4425, rel=1e-9)
    assert few.monthly_usd(10_000, 12) == pytest.approx(1.56, rel=1e-9)
    # break-even: (1241 + 0.0225) / 0.000114 = 10,886,162.3 requests a month
    assert break_even_volume(with_hosting, few, 12) == pytest.approx(10_886_162.3, rel=0.01)
    # without hosting the fixed cost is only 0.0225 a month: cheaper from 0.0225 / 0.000114 = 197.4 -> 198 requests
    assert break_even_volume(without, few, 12) == pytest.approx(198, abs=1)


def test_hosting_flips_the_finetune_outcome_from_pays_off_to_not_needed():
    pairs = _equal_scores(["few", "ft"])
    few = _option("few", "few_shot", CostModel(per_request_usd=0.000156))

    def ft_row(hosting: float, volume: int) -> dict:
        ft = _option(
            "ft", "finetune", CostModel(per_request_usd=0.000042, setup_usd=0.27, hosting_usd_per_hour=hosting)
        )
        d = decide([few, ft], pairs, _policy(volume), metric="acc")
        (row,) = d.finetune
        return {"outcome": row.outcome, "winner": d.winner, "row": row}

    assert ft_row(0.0, 10_000)["outcome"] == "pays_off"
    assert ft_row(0.0, 10_000)["winner"] == "ft"
    hosted = ft_row(1.70, 10_000)
    assert hosted["outcome"] == "not_needed"
    assert hosted["winner"] == "few"
    # it saves per request, but only pays off from ~10.9M requests a month
    assert hosted["row"].saving_per_request_usd == pytest.approx(0.000114, rel=1e-9)
    assert hosted["row"].break_even_monthly_volume == pytest.approx(10_886_162.3, rel=0.01)
    assert "10.9M" in hosted["row"].reason
    # at 20M requests a month: 1241.0225 + 20M x 0.000042 = $2,081 against 20M x 0.000156 = $3,120: it pays off again
    busy = ft_row(1.70, 20_000_000)
    assert busy["outcome"] == "pays_off"
    assert busy["row"].at_volume[0].monthly_saving_usd == pytest.approx(3120 - 2081.0225, rel=1e-9)


def test_break_even_volume_is_the_smallest_whole_volume_at_which_a_is_no_dearer():
    # a: $30 setup over 12 months = $2.50 a month, $0 a request; b: $1 a request, nothing fixed.
    # at 2 requests a month a costs 2.50 > 2.00; at 3 requests a costs 2.50 <= 3.00, so the answer is 3.
    a = CostModel(per_request_usd=0.0, setup_usd=30.0)
    b = CostModel(per_request_usd=1.0)
    assert a.monthly_usd(2, 12) > b.monthly_usd(2, 12)
    assert a.monthly_usd(3, 12) <= b.monthly_usd(3, 12)
    assert break_even_volume(a, b, 12) == 3


# ---- 4. properties of payback and break-even ---------------------------------------------------------------------

usd = st.floats(min_value=0, max_value=10_000, allow_nan=False, allow_infinity=False)
price_per_1m = st.floats(min_value=0.01, max_value=100, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(setup1=usd, setup2=usd, tokens=st.integers(1, 100_000), price=price_per_1m)
def test_payback_grows_with_the_extra_setup_cost(setup1, setup2, tokens, price):
    low, high = sorted((setup1, setup2))
    saving = tokens * price / 1e6  # prompt tokens saved per request x $ per token
    p_low, p_high = payback_requests(low, saving), payback_requests(high, saving)
    assert p_low is not None and p_high is not None
    assert p_low <= p_high


@settings(max_examples=200, deadline=None)
@given(setup=usd, tokens1=st.integers(1, 100_000), tokens2=st.integers(1, 100_000), price=price_per_1m)
def test_payback_falls_as_more_prompt_tokens_are_saved(setup, tokens1, tokens2, price):
    fewer, more = sorted((tokens1, tokens2))
    p_fewer = payback_requests(setup, fewer * price / 1e6)
    p_more = payback_requests(setup, more * price / 1e6)
    assert p_fewer is not None and p_more is not None
    assert p_more <= p_fewer


@settings(max_examples=200, deadline=None)
@given(
    setup=st.floats(min_value=-100, max_value=10_000, allow_nan=False),
    saving=st.floats(min_value=-1, max_value=1, allow_nan=False),
)
def test_payback_is_never_exactly_when_nothing_is_saved_per_request(setup, saving):
    result = payback_requests(setup, saving)
    assert (result is None) == (saving <= 0)
    if result is not None:
        assert result >= 0
    if result is not None and saving >= 1e-9:  # (a sub-nanodollar saving may pay back after infinitely many)
        # the requests times the saving pay back the extra setup (none to pay back when setup is not extra)
        assert result * saving == pytest.approx(max(setup, 0), rel=1e-9, abs=1e-12)


per_request = st.floats(min_value=0, max_value=0.1, allow_nan=False)
setup_usd = st.floats(min_value=0, max_value=10_000, allow_nan=False)
hosting = st.floats(min_value=0, max_value=10, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(
    b_req=per_request,
    b_setup=setup_usd,
    b_host=hosting,
    d_req=st.floats(0, 0.1),
    d_setup=st.floats(0, 10_000),
    d_host=st.floats(0, 10),
    strict=st.sampled_from(["per_request", "setup", "hosting"]),
    horizon=st.integers(1, 120),
)
def test_break_even_is_never_when_a_is_dearer_in_every_part(
    b_req, b_setup, b_host, d_req, d_setup, d_host, strict, horizon
):
    # a costs at least as much per request, setup and hour, and strictly more in one of them (by a visible amount)
    d_req += 1e-6 if strict == "per_request" else 0
    d_setup += 1.0 if strict == "setup" else 0
    d_host += 0.01 if strict == "hosting" else 0
    a = CostModel(per_request_usd=b_req + d_req, setup_usd=b_setup + d_setup, hosting_usd_per_hour=b_host + d_host)
    b = CostModel(per_request_usd=b_req, setup_usd=b_setup, hosting_usd_per_hour=b_host)
    assert break_even_volume(a, b, horizon) is None


@settings(max_examples=200, deadline=None)
@given(
    a_req=per_request,
    d_req=st.floats(1e-6, 0.1),
    a_setup=setup_usd,
    b_setup=setup_usd,
    a_host=hosting,
    b_host=hosting,
    horizon=st.integers(1, 120),
)
def test_break_even_exists_when_a_is_cheaper_per_request(a_req, d_req, a_setup, b_setup, a_host, b_host, horizon):
    a = CostModel(per_request_usd=a_req, setup_usd=a_setup, hosting_usd_per_hour=a_host)
    b = CostModel(per_request_usd=a_req + d_req, setup_usd=b_setup, hosting_usd_per_hour=b_host)
    volume = break_even_volume(a, b, horizon)
    assert volume is not None
    # from that volume on a is no dearer; the exact crossing is (fixed_a - fixed_b) / (b - a per request)
    assert a.monthly_usd(volume, horizon) <= b.monthly_usd(volume, horizon) + 1e-9
    fixed_gap = (a_host - b_host) * 730 + (a_setup - b_setup) / horizon
    crossing = max(fixed_gap / d_req, 1.0)
    assert crossing - 1e-6 * crossing <= volume <= crossing + 2 + 1e-6 * crossing


# ---- 5. too few test cases: inconclusive, and how many more would settle it ---------------------------------------


def _binary(n: int, both_right: int, only_a: int, only_b: int) -> tuple[dict, dict]:
    """Per-case 0/1 scores of A and B: both right, A right and B wrong, B right and A wrong, then both wrong."""
    a, b = {}, {}
    for i in range(n):
        if i < both_right:
            a[i], b[i] = 1.0, 1.0
        elif i < both_right + only_a:
            a[i], b[i] = 1.0, 0.0
        elif i < both_right + only_a + only_b:
            a[i], b[i] = 0.0, 1.0
        else:
            a[i], b[i] = 0.0, 0.0
    return {f"c{k}": v for k, v in a.items()}, {f"c{k}": v for k, v in b.items()}


def _two_point_lead(n: int, both_right: int, only_a: int, only_b: int):
    a, b = _binary(n, both_right, only_a, only_b)
    qa, qb = sum(a.values()) / n, sum(b.values()) / n
    pairs = pairwise({"tuned": a, "cheap": b}, binary=True, confidence=0.95, min_gain=0.02)
    # the better one costs more, so whether the cheap one is as good decides the winner
    tuned = _option("tuned", "finetune", CostModel(per_request_usd=0.001), quality=qa, n=n)
    cheap = _option("cheap", "few_shot", CostModel(per_request_usd=0.0005), quality=qb, n=n)
    return qa, qb, decide([tuned, cheap], pairs, _policy(10_000), metric="acc")


def test_a_two_point_lead_on_100_cases_is_inconclusive_and_says_how_many_more_cases():
    # 100 cases: A right on 62, B on 60; they disagree on 6 cases: A alone right on 4, B alone right on 2
    qa, qb, d = _two_point_lead(100, both_right=58, only_a=4, only_b=2)
    assert (qa, qb) == (0.62, 0.60)
    assert d.status == "inconclusive"
    found = re.search(r"about ([\d,]+) more test cases needed", d.verdict)
    assert found, d.verdict
    more = int(found.group(1).replace(",", ""))
    # The count is for the test used, exact McNemar, at the observed rates (4% and 2%): the total settles about 80%
    # of simulated runs. The normal approximation, by hand: four +1, two -1, 94 zeros: mean 0.02,
    # sd = sqrt((6 - 100 x 0.02^2) / 99) = 0.24536; ((1.959964 + 0.841621) x 0.24536 / 0.02)^2 = 1182 in all.
    draws = np.random.default_rng(2).multinomial(100 + more, [0.04, 0.02, 0.94], size=2000)
    settled = np.mean([mcnemar_exact(int(w), int(lost)) < 0.05 for w, lost, _ in draws])
    assert 0.76 <= settled <= 0.88, (more, settled)
    sd = math.sqrt((6 - 100 * 0.02**2) / 99)
    assert abs((100 + more) - math.ceil(((1.959964 + 0.841621) * sd / 0.02) ** 2)) < 0.1 * 1182
    (row,) = d.finetune
    assert row.outcome == "inconclusive"
    assert row.more_cases_needed is not None and row.more_cases_needed > 0


def test_the_same_two_point_lead_on_20000_cases_is_settled():
    # 20,000 cases: A right on 12,400 (0.62), B on 12,000 (0.60); A alone right on 3% (600), B alone on 1% (200).
    # McNemar on 600 against 200 discordant cases: p far below 0.05, so A is better by the minimum gain of 0.02.
    qa, qb, d = _two_point_lead(20_000, both_right=11_800, only_a=600, only_b=200)
    assert (qa, qb) == (0.62, 0.60)
    assert d.status == "decided"
    assert d.winner == "tuned"
    (row,) = d.finetune
    assert row.relation == "better"
    assert row.outcome == "better_at_a_price"  # better, but dearer per request and with no setup to pay back


# ---- 6. the value of outcomes ----------------------------------------------------------------------------------


VALUE = ValueSpec(
    correct_usd=2,
    wrong=[
        OutcomeCost(name="escalation", cost_usd=5, probability=1.0),
        OutcomeCost(name="customer lost", cost_usd=500, probability=0.01),
    ],
)


def test_a_wrong_answer_costs_the_expected_cost_of_its_outcomes():
    # 5 x 1.0 + 500 x 0.01 = 5 + 5 = $10
    assert VALUE.wrong_usd == pytest.approx(10.0)


def test_break_even_accuracy_and_net_value_of_a_request():
    # the request loses money below (10 + 0.01) / (2 + 10) = 10.01 / 12 = 0.834166...
    assert break_even_accuracy(VALUE, 0.01) == pytest.approx(10.01 / 12, rel=1e-12)
    assert break_even_accuracy(VALUE, 0.01) == pytest.approx(0.8341666667, rel=1e-9)
    # at 90% accuracy: 0.9 x 2 - 0.1 x 10 - 0.01 = 1.8 - 1.0 - 0.01 = $0.79 a request
    assert net_value_per_request(0.9, VALUE, 0.01) == pytest.approx(0.79, rel=1e-12)
    # at 80% it loses: 1.6 - 2.0 - 0.01 = -$0.41
    assert net_value_per_request(0.8, VALUE, 0.01) == pytest.approx(-0.41, rel=1e-12)
    # nothing to gain or lose: no accuracy pays
    assert break_even_accuracy(ValueSpec(), 0.01) is None


# ---- 7. resolving a model's price ------------------------------------------------------------------------------


def test_dated_snapshot_names_are_priced_like_their_base_model():
    dated = resolve_price("gpt-4o-mini-2024-07-18", None)
    assert dated is not None and dated.entry == "gpt-4o-mini"
    assert (dated.per_1m("input"), dated.per_1m("output")) == (0.15, 0.60)
    # the longest matching entry wins: gpt-4.1-mini (0.40), not gpt-4.1 (2.00)
    mini = resolve_price("gpt-4.1-mini-2025-04-14", None)
    assert mini is not None and mini.entry == "gpt-4.1-mini" and mini.per_1m("input") == 0.40
    # a fine-tune of a dated snapshot: finetuned prices of the base entry
    tuned = resolve_price("ft:gpt-4o-mini-2024-07-18:org::xyz", None)
    assert tuned is not None and tuned.finetuned
    assert (tuned.per_1m("input"), tuned.per_1m("cached_input"), tuned.per_1m("output")) == (0.30, 0.15, 1.20)


def test_suite_override_of_the_output_price_keeps_the_sheet_input_price():
    suite = _suite_with_prices({"gpt-4o-mini": {"output_per_1m_usd": 0.90}})
    price = resolve_price("gpt-4o-mini", suite)
    assert price is not None
    assert price.per_1m("input") == 0.15  # from the sheet
    assert price.per_1m("output") == 0.90  # from the suite
    assert "suite" in price.origin and "price sheet" in price.origin
    # 1,000 in x 0.15 + 10 out x 0.90 = 150 + 9 = $159 per 1M requests
    assert token_cost(price, 1000, 10) == pytest.approx(159e-6, rel=1e-9)
    # the override does not leak into the no-suite lookup
    assert resolve_price("gpt-4o-mini", None).per_1m("output") == 0.60


def test_same_as_prices_a_deployment_like_another_entry():
    suite = _suite_with_prices({"my-deployment": {"same_as": "gpt-4o-mini"}})
    price = resolve_price("my-deployment", suite)
    assert price is not None
    assert (price.per_1m("input"), price.per_1m("output")) == (0.15, 0.60)
    # the sheet's Azure entry: OpenAI's token prices plus $1.70 an hour of hosting
    azure = resolve_price("azure/gpt-4o-mini", None)
    assert azure is not None
    assert (azure.per_1m("input"), azure.per_1m("output")) == (0.15, 0.60)
    assert azure.price.hosting_usd_per_hour == 1.70
    # a suite deployment pointing at the Azure entry follows both links
    chained = resolve_price("prod", _suite_with_prices({"prod": {"same_as": "azure/gpt-4o-mini"}}))
    assert chained is not None and chained.per_1m("input") == 0.15 and chained.price.hosting_usd_per_hour == 1.70


def test_a_model_nobody_prices_has_no_price():
    assert resolve_price("my-local-llama", None) is None
    assert resolve_price("ft:my-local-llama:org::id", None) is None
    assert resolve_price("gpt-4ox", None) is None  # no entry followed by "-" starts it
    assert resolve_price("gpt-5", None) is None


def test_price_sheet_is_dated_and_every_model_price_has_a_source():
    sheet = price_sheet()
    assert sheet.version
    assert isinstance(sheet.date, date)
    assert sheet.currency == "USD"
    assert sheet.models
    for name, entry in sheet.models.items():
        assert entry.source, name
        assert isinstance(entry.as_of, date), name
    for name, rate in sheet.devices.items():
        assert rate.source and rate.as_of, name


# ---- 8. decision.md ---------------------------------------------------------------------------------------------


def _unescaped_pipes(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line))


def test_decision_markdown_has_the_verdict_and_escapes_pipes_and_html():
    few = _option("few|shot", "few_shot", CostModel(per_request_usd=FEW_SHOT_PER_REQUEST))
    ft = _option("ft<b>", "finetune", CostModel(per_request_usd=FINETUNE_PER_REQUEST, setup_usd=TRAINING_USD))
    decision = decide([few, ft], _equal_scores(["few|shot", "ft<b>"]), _policy(10_000), metric="acc")
    decision.reasons.append("a reason with | a pipe and <script>alert(1)</script>")
    md = render_markdown(decision, suite_name="toy")
    # the verdict leads, escaped like every text from the run
    assert f"**{decision.verdict.replace('<', '&lt;').replace('>', '&gt;')}**" in md
    assert "few\\|shot" in md
    assert "ft&lt;b&gt;" in md
    assert "\\| a pipe and &lt;script&gt;" in md
    assert "<script>" not in md
    # table rows keep their columns: 8 in the ranking table (9 bars), 7 in the fine-tuning table (8 bars)
    ranking = [ln for ln in md.splitlines() if ln.startswith(("| few", "| ft"))]
    assert len(ranking) == 3  # two ranking rows and one fine-tuning row
    assert sorted(_unescaped_pipes(ln) for ln in ranking) == [8, 9, 9]


def _value_pair(n: int = 2000):
    """A right on 90% of n cases, B on 85% (B's right cases are a subset of A's): A is settled better by 5 points."""
    a = {f"c{i}": float(i < 0.90 * n) for i in range(n)}
    b = {f"c{i}": float(i < 0.85 * n) for i in range(n)}
    pairs = pairwise({"big": a, "small": b}, binary=True, confidence=0.95, min_gain=0.02)
    big = _option("big", "few_shot", CostModel(per_request_usd=0.01), quality=0.90, n=n)
    small = _option("small", "finetune", CostModel(per_request_usd=0.001), quality=0.85, n=n)
    return big, small, pairs


def test_when_right_answers_are_worth_a_lot_the_better_dearer_strategy_wins_on_net_value():
    big, small, pairs = _value_pair()
    value = ValueSpec(correct_usd=1.0, wrong=[OutcomeCost(name="escalation", cost_usd=2.0)])
    d = decide([big, small], pairs, _policy(10_000), metric="acc", value=value)
    # net value a month at 10,000 requests: big 10,000 x (0.90 x 1 - 0.10 x 2) - 10,000 x 0.01 = 7,000 - 100 = 6,900
    #                                       small 10,000 x (0.85 x 1 - 0.15 x 2) - 10,000 x 0.001 = 5,500 - 10 = 5,490
    ranking = {r.strategy: r.net_value_month_usd for r in d.by_volume[0].ranking}
    assert ranking["big"] == pytest.approx(6900) and ranking["small"] == pytest.approx(5490)
    assert d.winner == "big" and d.status == "decided"
    (row,) = d.finetune
    assert row.outcome == "worse_but_cheaper"


def test_when_answers_are_worth_little_the_cheaper_strategy_wins_on_net_value():
    big, small, pairs = _value_pair()
    value = ValueSpec(correct_usd=0.01, wrong=[OutcomeCost(name="retry", cost_usd=0.01)])
    d = decide([big, small], pairs, _policy(10_000), metric="acc", value=value)
    # big 10,000 x (0.009 - 0.001) - 100 = 80 - 100 = -20; small 10,000 x (0.0085 - 0.0015) - 10 = 70 - 10 = 60
    ranking = {r.strategy: r.net_value_month_usd for r in d.by_volume[0].ranking}
    assert ranking["big"] == pytest.approx(-20) and ranking["small"] == pytest.approx(60)
    assert d.winner == "small"
    # big's 5-point lead would have to exceed (100 - 10) / (10,000 x 0.02) = 0.45 to pay for its cost: settled
    assert d.status == "decided"


def test_an_azure_finetuned_deployment_is_priced_at_finetuned_prices_with_hosting():
    suite = _suite_with_prices({"support-ft-01": {"same_as": "azure/gpt-4o-mini", "finetuned": True}})
    price = resolve_price("support-ft-01", suite)
    assert price.finetuned and price.entry == "gpt-4o-mini"
    assert price.per_1m("input") == 0.30 and price.per_1m("output") == 1.20  # gpt-4o-mini's fine-tuned prices
    assert price.price.hosting_usd_per_hour == 1.70  # Azure's hosting while deployed
    assert resolve_price("gpt-4o-minix", None) is None  # a similar name is not a dated snapshot


def test_the_cheapest_leader_is_not_declared_the_winner_while_a_dearer_rival_may_still_be_better():
    # 100 cases, continuous scores: the leader is cheaper and ahead by 0.01 on average, but the per-case
    # differences are so spread that the dearer rival could still be better by more than the minimum gain (0.02).
    lead = {f"c{i}": (0.6 if i % 2 else 0.2) for i in range(100)}
    rival = {f"c{i}": (0.2 if i % 2 else 0.58) for i in range(100)}
    pairs = pairwise({"lead": lead, "rival": rival}, binary=False, confidence=0.95, min_gain=0.02)
    cheap = _option("lead", "finetune", CostModel(per_request_usd=0.001), quality=0.40, n=100)
    dear = _option("rival", "rag", CostModel(per_request_usd=0.01), quality=0.39, n=100)
    d = decide([cheap, dear], pairs, _policy(10_000), metric="f1")
    assert d.status == "inconclusive", d.verdict
    assert "whether rival is better by the minimum gain of 0.02" in d.verdict
    # when the rival's interval rules that out, the cheaper leader wins
    close = {f"c{i}": lead[f"c{i}"] - 0.01 for i in range(100)}
    pairs = pairwise({"lead": lead, "rival": close}, binary=False, confidence=0.95, min_gain=0.02)
    d = decide([cheap, dear], pairs, _policy(10_000), metric="f1")
    assert d.status == "decided" and d.winner == "lead"


def test_with_a_value_of_outcomes_each_strategy_shows_its_net_value_interval_and_break_even_accuracy():
    big, small, pairs = _value_pair()
    big.ci_low, big.ci_high = 0.88, 0.92
    value = ValueSpec(correct_usd=1.0, wrong=[OutcomeCost(name="escalation", cost_usd=2.0)])
    d = decide([big, small], pairs, _policy(10_000), metric="acc", value=value)
    row = next(r for r in d.by_volume[0].ranking if r.strategy == "big")
    # per request: 0.90 x 1 - 0.10 x 2 - 0.01 = 0.69; at the interval's ends 0.88 - 0.24 - 0.01 = 0.63
    # and 0.92 - 0.16 - 0.01 = 0.75; it loses money below (2 + 0.01) / (1 + 2) = 0.67
    assert row.net_value_per_request_usd == pytest.approx(0.69)
    assert row.net_value_ci_usd == pytest.approx([0.63, 0.75])
    assert row.break_even_accuracy == pytest.approx(2.01 / 3)
    assert any("loses money below acc 0.670" in r for r in d.reasons)


def test_two_points_on_40_cases_of_continuous_scores_is_inconclusive_and_on_4000_it_is_not():
    # token-F1-like scores: the leader is 0.02 ahead on average, each case varying by +-0.3 around that
    def scores(n):
        base = {f"c{i}": 0.5 for i in range(n)}
        lead = {f"c{i}": 0.5 + 0.02 + (0.3 if i % 2 else -0.3) for i in range(n)}
        return base, lead

    for n, expected in ((40, "inconclusive"), (4000, "decided")):
        base, lead = scores(n)
        pairs = pairwise({"lead": lead, "base": base}, binary=False, confidence=0.95, min_gain=0.02)
        # the leader is dearer, so whether the cheaper one is as good is what the decision turns on
        options = [
            _option("lead", "finetune", CostModel(per_request_usd=0.002), quality=0.52, n=n),
            _option("base", "few_shot", CostModel(per_request_usd=0.001), quality=0.50, n=n),
        ]
        d = decide(options, pairs, _policy(10_000), metric="f1")
        assert d.status == expected, (n, d.verdict)
    assert d.winner == "lead"


def test_a_strategy_over_the_latency_slo_cannot_win():
    pairs = _equal_scores(["fast", "slow"])
    fast = _option("fast", "few_shot", CostModel(per_request_usd=0.01))
    slow = _option("slow", "finetune", CostModel(per_request_usd=0.001))
    fast.p95_s, slow.p95_s = 0.8, 3.0
    policy = DecisionSpec(min_gain=0.02, monthly_requests=10_000, latency_slo_p95_s=2.0)
    d = decide([fast, slow], pairs, policy, metric="acc")
    assert d.winner == "fast"  # the cheaper one is 3.0 s at p95, over the 2 s SLO
    assert any("cannot win: misses p95_latency_s <= 2 (measured 3)" in r for r in d.reasons)
    assert "slow cannot win: misses p95_latency_s <= 2" in d.verdict


def test_dedicated_hosting_keeps_one_machine_up_and_adds_machines_with_volume():
    # 0.5 s of device time per request on a $2/hour machine kept up all month (730 h = $1,460)
    local = CostModel(per_request_usd=0.5 / 3600 * 2.0, busy_s_per_request=0.5, device_usd_per_hour=2.0)
    assert local.monthly_usd(1_000, 12, dedicated=True) == pytest.approx(1460.0)  # one machine, mostly idle
    # 10M requests x 0.5 s = 5M s = 1,388.9 h of work: more than one machine's 730 h, so two machines = $2,920
    assert local.monthly_usd(10_000_000, 12, dedicated=True) == pytest.approx(2 * 1460.0)
    # pay-per-use: only the busy time, $0.000278 a request
    assert local.monthly_usd(1_000, 12) == pytest.approx(1_000 * 0.5 / 3600 * 2.0)


def test_prices_given_for_a_finetuned_model_name_are_that_models_prices():
    suite = _suite_with_prices({"ft:gpt-4o-mini:org::x": {"input_per_1m_usd": 5.0, "output_per_1m_usd": 20.0}})
    price = resolve_price("ft:gpt-4o-mini:org::x", suite)
    assert price.finetuned
    assert price.per_1m("input") == 5.0 and price.per_1m("output") == 20.0  # not the sheet's 0.30 / 1.20
    assert price.price.training_per_1m_usd == 3.00  # the rest still from the base entry


# ---- an under-trained fine-tune never loses quietly ----------------------------------------------------------------


def _tuned(cost: CostModel, **training) -> Option:
    """A fine-tune option scoring 2/3 on 60 cases, with these costs and training facts."""
    return Option(name="ft", kind="finetune", quality=2 / 3, ci_low=None, ci_high=None, n=60, cost=cost, **training)


def test_a_fine_tune_still_improving_at_its_last_epoch_gets_a_provisional_verdict_not_a_quiet_loss():
    # the fine-tune is no better (equal scores) and dearer per request: as trained it "never" pays off
    few = _option("few", "few_shot", CostModel(per_request_usd=0.0001))

    def ft(**training) -> Option:
        return _tuned(CostModel(per_request_usd=0.0002, setup_usd=0.5), **training)

    def against_few(tuned: Option):
        return decide([few, tuned], _equal_scores(["few", "ft"]), _policy(10_000), metric="acc")

    settled = against_few(ft())
    assert settled.finetune[0].outcome == "never" and not settled.provisional
    rising = against_few(ft(under_trained=True, epochs=3, training_usd=0.5))
    (row,) = rising.finetune
    assert row.outcome == "under_trained" and row.under_trained and row.more_training_usd == 0.5
    assert "still improving" in row.reason and "3 more epochs would cost $0.500" in row.reason
    assert "As trained, it never pays off" in row.reason  # what it would have said stays visible
    assert rising.provisional and rising.verdict.startswith("Provisional (ft still improving")
    assert rising.winner == "few"  # the ranking itself does not change: only what the verdict claims
    md = render_markdown(rising)
    assert "under trained" in md and "Provisional" in md
    edge = "learning_rate=0.001 is the largest tried and beat learning_rate=0.0003 on dev (0.700 vs 0.600)"
    at_edge = against_few(ft(under_trained=True, grid_edge=[edge], epochs=2, training_usd=0.25))
    (row,) = at_edge.finetune
    assert row.outcome == "under_trained" and row.grid_edge == [edge] and edge in row.reason
    assert "wider search" in row.reason and "about $0.250" in row.reason
    assert at_edge.verdict.startswith("Provisional (ft's best setting on the edge of its search grid)")


def test_a_fine_tune_that_wins_while_still_improving_is_not_marked():
    few = _option("few", "few_shot", CostModel(per_request_usd=FEW_SHOT_PER_REQUEST))
    ft = _tuned(
        CostModel(per_request_usd=FINETUNE_PER_REQUEST, setup_usd=TRAINING_USD),
        under_trained=True,
        epochs=2,
        training_usd=TRAINING_USD,
    )
    d = decide([few, ft], _equal_scores(["few", "ft"]), _policy(10_000), metric="acc")
    assert d.winner == "ft" and d.finetune[0].outcome == "pays_off" and not d.provisional
