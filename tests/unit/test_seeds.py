"""`seeds: N`: each seed's scores and the spread in the summary, intervals and paired tests that resample seeds as
well as cases (so seed luck cannot pass for a settled difference), and the run, resume and estimate of a seeded
strategy end to end on the scripted backend."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
import pytest

from harness.records.cases import CaseResult, CaseScore
from harness.records.setup import StrategySetup
from harness.suite.schema import Suite
from harness.verdict.paired import adjust, compare_paired
from harness.verdict.pairs import pairwise
from harness.verdict.seeds import CaseScores
from harness.verdict.summary import per_case_scores, summarize_run, summarize_strategy
from tests.conftest import base_suite, harness_cli, run_json, write_suite

CASES = [f"c{i}" for i in range(400)]


def draws(rate: float, rng: np.random.Generator) -> dict[str, float]:
    return {c: float(rng.random() < rate) for c in CASES}


def rows(name: str, scores: dict[str, float]) -> list[CaseResult]:
    return [
        CaseResult(
            strategy=name,
            case_id=c,
            repeat=0,
            input="q",
            target="t",
            output="a",
            scores={"m": CaseScore(value=v)},
            latency_s=0.1,
            compute_s=0.1,
            finished_at=datetime.now(timezone.utc),
        )
        for c, v in scores.items()
    ]


def seeded(per_seed: list[dict[str, float]]) -> CaseScores:
    return CaseScores({c: float(np.mean([s[c] for s in per_seed])) for c in CASES}, per_seed)


def test_each_seeds_score_and_the_spread_are_in_the_summary_and_the_interval_widens_with_seed_luck():
    rng = np.random.default_rng(3)
    lucky = [draws(r, rng) for r in (0.45, 0.7, 0.95)]  # three trainings that came out very differently
    steady = [draws(0.7, rng) for _ in range(3)]
    suite = Suite.model_validate(
        {
            **base_suite(),
            "strategies": [
                {"name": "lucky", "kind": "few_shot", "backend": "fake", "seeds": 3},
                {"name": "steady", "kind": "few_shot", "backend": "fake", "seeds": 3},
            ],
        }
    )
    by_strategy = {
        name: [r for i, s in enumerate(per_seed) for r in rows(name if i == 0 else f"{name}@seed{i + 1}", s)]
        for name, per_seed in (("lucky", lucky), ("steady", steady))
    }
    second = StrategySetup(backend="fake")
    out = summarize_run(
        suite,
        by_strategy,
        {"lucky@seed2": second},
        n_cases=len(CASES),
        binary={"m": True},
        conditional=set(),
    )
    lucky_summary, steady_summary = out["lucky"], out["steady"]
    assert [s.name for s in lucky_summary.seeds] == ["lucky", "lucky@seed2", "lucky@seed3"]
    assert [s.seed for s in lucky_summary.seeds] == [7, 8, 9]  # the suite's seed, +1, +2
    assert lucky_summary.seeds[1].setup == second and lucky_summary.seeds[0].setup is None
    means = [s.metrics["m"] for s in lucky_summary.seeds]
    assert means == pytest.approx([np.mean(list(s.values())) for s in lucky])
    spread = lucky_summary.seed_spread["m"]
    assert spread.sd == pytest.approx(np.std(means, ddof=1)) and spread.sd > 0.15
    assert spread.low == min(means) and spread.high == max(means)
    assert lucky_summary.n_planned == 3 * len(CASES) and lucky_summary.n_done == 3 * len(CASES)
    m = lucky_summary.metrics["m"]
    assert m.mean == pytest.approx(np.mean(means)) and "two-stage bootstrap (3 seeds" in m.ci_method
    # seed luck shows in the interval: far wider than three seeds of the same model, and than cases alone
    steady_width = steady_summary.metrics["m"].ci_high - steady_summary.metrics["m"].ci_low
    cases_only = summarize_strategy(
        "pooled",
        "fake",
        rows("pooled", {c: float(np.mean([s[c] for s in lucky])) for c in CASES}),
        StrategySetup(backend="fake"),
        n_planned=len(CASES),
        binary={"m": True},
    ).metrics["m"]
    assert m.ci_high - m.ci_low > 3 * steady_width
    assert m.ci_high - m.ci_low > 3 * (cases_only.ci_high - cases_only.ci_low)


def test_a_lead_within_seed_luck_is_not_settled_though_a_test_over_cases_alone_would_settle_it():
    rng = np.random.default_rng(1)
    a = seeded([draws(r, rng) for r in (0.55, 0.75, 0.95)])
    b = CaseScores(draws(0.6, rng))
    naive = compare_paired("a", "b", dict(a), dict(b), binary=True)  # seeds averaged away, only cases resampled
    assert naive.p_value < 0.01
    pair = adjust([compare_paired("a", "b", a, b, binary=True)])[0]
    assert pair.test == "two_stage_bootstrap" and not pair.settled and pair.p_value > 0.05
    assert pair.ci_low < 0 < pair.ci_high
    assert pair.seed_var > 0 and pair.cases_needed is None  # more cases cannot beat seed luck


def test_without_seed_luck_the_seeded_test_settles_what_the_case_test_settles_and_is_at_most_a_little_wider():
    rng = np.random.default_rng(2)
    a = seeded([draws(0.75, rng) for _ in range(3)])
    b = CaseScores(draws(0.6, rng))
    pair = compare_paired("a", "b", a, b, binary=True)
    naive = compare_paired("a", "b", dict(a), dict(b), binary=True)
    assert pair.settled and naive.settled
    width, naive_width = pair.ci_high - pair.ci_low, naive.ci_high - naive.ci_low
    assert naive_width <= width < 1.35 * naive_width
    assert pair.cases_needed is None  # settled


@pytest.mark.parametrize("spread", [0.0, 0.05, 0.1, 0.2, 0.3])
@pytest.mark.parametrize("n", [12, 40, 150])
def test_the_seeded_interval_and_test_never_contradict_each_other(spread, n):
    rng = np.random.default_rng(int(spread * 100) + n)
    cases = CASES[:n]
    per_seed = [{c: float(rng.random() < 0.6 + d) for c in cases} for d in (-spread, 0.0, spread)]
    a = CaseScores({c: float(np.mean([s[c] for s in per_seed])) for c in cases}, per_seed)
    b = CaseScores({c: float(rng.random() < 0.45) for c in cases})
    pair = compare_paired("a", "b", a, b, binary=True)
    excludes_zero = pair.ci_low > 0 or pair.ci_high < 0
    assert excludes_zero == (pair.p_value < pair.alpha), pair
    assert pair.ci_low <= pair.diff <= pair.ci_high


def test_the_pairs_of_a_decision_read_seeds_from_the_per_case_scores():
    rng = np.random.default_rng(4)
    per_seed = [draws(r, rng) for r in (0.5, 0.8)]
    by_strategy = {
        "ft": rows("ft", per_seed[0]) + rows("ft@seed2", per_seed[1]),
        "zero": rows("zero", draws(0.6, rng)),
    }
    per_case = per_case_scores(by_strategy, "m")
    assert len(per_case["ft"].seeds) == 2 and per_case["zero"].seeds == []
    assert per_case["ft"]["c0"] == pytest.approx((per_seed[0]["c0"] + per_seed[1]["c0"]) / 2)
    (pair,) = pairwise(per_case, binary=True, confidence=0.95, min_gain=0.02)
    assert pair.test == "two_stage_bootstrap"


def seeded_suite(folder, **few):
    suite = base_suite()
    suite["strategies"][1] = {
        "name": "few",
        "kind": "few_shot",
        "backend": "fake",
        "config": {"k": 3, "selection": "random"},
        **few,
    }
    return write_suite(folder, suite, n_test=12)


def test_a_few_shot_strategy_with_three_seeds_draws_three_exemplar_sets_and_a_rerun_asks_nothing_again(tmp_path):
    path = seeded_suite(tmp_path / "s", seeds=3)
    out = tmp_path / "run"
    first = harness_cli("compare", str(path), "--out", str(out), home=tmp_path / "home")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "few (3 seeds)" in first.stdout
    assert "few over 3 seeds (7, 8, 9): label_accuracy" in first.stdout
    record = run_json(out)
    few = record["strategies"]["few"]
    assert [s["name"] for s in few["seeds"]] == ["few", "few@seed2", "few@seed3"]
    draws_seen = [few["setup"]["given"]["exemplar_ids"]] + [
        s["setup"]["given"]["exemplar_ids"] for s in few["seeds"][1:]
    ]
    assert len({tuple(d) for d in draws_seen}) == 3  # each seed drew its own exemplars
    assert few["n_planned"] == few["n_done"] == 3 * 12
    assert "two-stage bootstrap" in few["metrics"]["label_accuracy"]["ci_method"]
    assert record["options"]["strategies"] == ["zero", "few"]
    lines = [json.loads(x) for x in (out / "cases.jsonl").read_text().splitlines()]
    assert sorted({r["strategy"] for r in lines}) == ["few", "few@seed2", "few@seed3", "zero"]
    assert any("few over 3 seeds" in x for x in record["decision"]["uncertainty"])
    assert "few over 3 seeds" in (out / "decision.md").read_text()

    again = harness_cli("compare", str(path), "--out", str(out), home=tmp_path / "home")
    assert again.returncode == 0 and "model calls: 0" in again.stdout, again.stdout + again.stderr
    assert run_json(out)["strategies"]["few"]["seeds"][1]["setup"] is not None  # kept across the resume

    estimate = harness_cli("estimate", str(path), "--strategies", "few", "--json", home=tmp_path / "home")
    assert [s["strategy"] for s in json.loads(estimate.stdout)["strategies"]] == ["few", "few@seed2", "few@seed3"]


def test_seeds_are_refused_where_every_seed_would_send_the_same_prompts(tmp_path):
    path = seeded_suite(tmp_path / "s", seeds=2, config={"k": 3, "selection": "similar"})
    result = harness_cli("validate", str(path), home=tmp_path / "home")
    assert result.returncode == 2 and "strategies[1].seeds" in result.stderr and "similar" in result.stderr
    assert "Fix:" in result.stderr and "Traceback" not in result.stderr
