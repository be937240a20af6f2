"""Aggregation: intervals, denominators, latency without cache hits."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from harness.records.cases import CaseResult, CaseScore
from harness.records.setup import StrategySetup
from harness.verdict.stats import bootstrap_ci, wilson
from harness.verdict.summary import summarize_strategy

SETUP = StrategySetup(backend="b")


def row(case_id, value, *, error=None, hit=False, latency=1.0, repeat=0, unscored=False):
    scores = {} if error else {"m": CaseScore(value=None if unscored else value)}
    return CaseResult(
        strategy="s",
        case_id=case_id,
        repeat=repeat,
        input="q",
        target="t",
        output=None if error else "a",
        error=error,
        scores=scores,
        latency_s=latency,
        cache_hit=hit,
        compute_s=0 if hit else latency,
        output_tokens=10,
        finished_at=datetime.now(timezone.utc),
    )


def test_wilson_matches_the_textbook_interval():
    low, high = wilson(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-3) and high == pytest.approx(0.9433, abs=1e-3)


def test_bootstrap_interval_covers_the_mean_and_shrinks_with_more_data():
    import numpy as np

    rng = np.random.default_rng(0)
    small = rng.normal(0.5, 0.2, 30)
    big = rng.normal(0.5, 0.2, 600)
    lo_s, hi_s = bootstrap_ci(small)
    lo_b, hi_b = bootstrap_ci(big)
    assert lo_s < small.mean() < hi_s and lo_b < big.mean() < hi_b
    assert (hi_b - lo_b) < (hi_s - lo_s) / 3


def test_errors_count_as_wrong_and_unscored_are_reported():
    rows = [row("a", 1), row("b", 1), row("c", 0, error="boom"), row("d", 1, unscored=True)]
    s = summarize_strategy("s", "b", rows, SETUP, n_planned=4, binary={"m": True})
    m = s.metrics["m"]
    assert s.n_errors == 1 and m.n_unscored == 1
    assert m.n == 3 and m.mean == pytest.approx(2 / 3) and m.n_scored == 2


def test_latency_percentiles_exclude_cache_hits():
    rows = [row(str(i), 1, latency=float(i)) for i in range(1, 101)] + [row("hit", 1, hit=True, latency=0.0)]
    s = summarize_strategy("s", "b", rows, SETUP, n_planned=101, binary={"m": True})
    assert s.latency.n == 100 and s.n_cache_hits == 1
    assert s.latency.p50_s == pytest.approx(50.5) and s.latency.p95_s == pytest.approx(95.05)
    assert s.throughput_output_tok_s == pytest.approx(1000 / 5050)


def test_no_zero_width_interval_from_too_little_data():
    all_right = [row(str(i), 1, repeat=r) for i in range(10) for r in range(2)]
    m = summarize_strategy("s", "b", all_right, SETUP, n_planned=20, binary={"m": True}).metrics["m"]
    assert m.mean == 1 and m.ci_low == pytest.approx(0.722, abs=1e-3) and m.ci_high == pytest.approx(1.0)
    same = [row(str(i), 0.5) for i in range(5)]
    c = summarize_strategy("s", "b", same, SETUP, n_planned=5, binary={"m": False}).metrics["m"]
    assert c.mean == 0.5 and c.ci_low is None and c.ci_method.startswith("none")


def test_repeats_are_averaged_per_case_before_the_interval():
    rows = [row("a", 1, repeat=0), row("a", 0, repeat=1), row("b", 1, repeat=0), row("b", 1, repeat=1)]
    m = summarize_strategy("s", "b", rows, SETUP, n_planned=4, binary={"m": True}).metrics["m"]
    assert m.n == 2 and m.mean == pytest.approx(0.75) and m.ci_method.startswith("bootstrap")
