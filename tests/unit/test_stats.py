"""Paired statistics: exact McNemar, paired permutation and bootstrap, Holm, detectable differences."""

from __future__ import annotations

import numpy as np
import pytest

from harness.verdict.paired import (
    adjust,
    compare_paired,
    least_disagreements,
    mcnemar_cases,
    mcnemar_exact,
    mcnemar_interval,
    mcnemar_power,
    permutation_test,
)
from harness.verdict.stats import cases_needed, holm, min_detectable_diff


def test_mcnemar_exact_matches_the_binomial_tail():
    # Only discordant pairs count: 135 wins, 0 losses is 2 * 0.5**135.
    assert mcnemar_exact(135, 0) == pytest.approx(2 * 0.5**135, rel=1e-9)
    assert mcnemar_exact(10, 10) == pytest.approx(1.0)
    assert 1e-21 < mcnemar_exact(74, 2) < 1e-19
    assert mcnemar_exact(0, 0) == 1.0


def test_holm_adjusts_in_step_down_order_and_keeps_input_order():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])


def test_detectable_difference_and_cases_needed_are_inverse():
    # z(0.975) + z(0.8) = 2.8016: with sd 1 on 100 cases, 0.28 is the smallest difference seen 80% of the time.
    assert min_detectable_diff(100, 1.0) == pytest.approx(0.28016, abs=1e-4)
    assert 100 <= cases_needed(min_detectable_diff(100, 0.5), 0.5) <= 101
    assert cases_needed(0.0, 1.0) is None and min_detectable_diff(1, 1.0) is None
    # Four times the cases halve the detectable difference.
    assert min_detectable_diff(400, 1.0) == pytest.approx(min_detectable_diff(100, 1.0) / 2)


def binary_scores(wins: int, losses: int, both: int, neither: int) -> tuple[dict, dict]:
    a, b, i = {}, {}, 0
    for va, vb, count in ((1, 0, wins), (0, 1, losses), (1, 1, both), (0, 0, neither)):
        for _ in range(count):
            a[f"c{i}"], b[f"c{i}"] = va, vb
            i += 1
    return a, b


def test_a_clear_binary_gain_is_settled_with_a_positive_interval():
    a, b = binary_scores(wins=30, losses=5, both=40, neither=25)
    c = compare_paired("lora", "few_shot", a, b, binary=True)
    assert c.test == "mcnemar_exact" and (c.wins, c.losses, c.ties, c.n) == (30, 5, 65, 100)
    assert c.diff == pytest.approx(0.25) and c.p_value < 1e-4 and c.settled
    assert 0 < c.ci_low < 0.25 < c.ci_high
    assert c.cases_needed is None


def test_an_unsettled_difference_says_how_many_cases_would_settle_it():
    a, b = binary_scores(wins=9, losses=6, both=30, neither=35)
    c = compare_paired("rag", "lora", a, b, binary=True)
    assert not c.settled and c.ci_low < 0 < c.ci_high
    assert c.cases_needed > c.n  # more cases than we have
    assert c.min_detectable_diff > abs(c.diff)


def test_continuous_scores_use_a_paired_permutation_test():
    rng = np.random.default_rng(3)
    base = rng.uniform(0, 1, 200)
    a = {f"c{i}": float(min(1, x + 0.1)) for i, x in enumerate(base)}
    b = {f"c{i}": float(x) for i, x in enumerate(base)}
    c = compare_paired("a", "b", a, b, binary=False)
    assert c.test == "paired_permutation" and c.p_value < 0.001 and c.ci_low > 0
    same = compare_paired("a", "a", a, a, binary=False)
    assert same.p_value == 1.0 and same.diff == 0 and (same.ci_low, same.ci_high) == (0.0, 0.0)


def test_only_cases_both_answered_are_compared():
    a = {"x": 1.0, "y": 0.0, "z": 1.0}
    b = {"y": 1.0, "z": 1.0, "w": 0.0}
    c = compare_paired("a", "b", a, b, binary=True)
    assert c.n == 2 and (c.wins, c.losses, c.ties) == (0, 1, 1)


def test_holm_correction_can_unsettle_a_marginal_comparison():
    strong = compare_paired("a", "b", *binary_scores(30, 2, 30, 38), binary=True)
    marginal = compare_paired("a", "c", *binary_scores(14, 4, 40, 42), binary=True)
    assert marginal.p_value < 0.05  # alone it looks settled
    adjust([strong, marginal, compare_paired("a", "d", *binary_scores(5, 5, 40, 50), binary=True)])
    assert strong.settled and marginal.p_holm == pytest.approx(2 * marginal.p_value)
    assert not marginal.settled  # corrected for three comparisons, p = 0.06
    assert marginal.cases_needed > marginal.n


# ---- the interval agrees with the test; cases needed are for the test used -------------------------------------


def test_the_mcnemar_interval_excludes_zero_exactly_when_the_exact_test_rejects():
    disagreeing = 0
    for n in range(1, 26):  # every split of every small test set, where the two are most likely to part
        for wins in range(n + 1):
            for losses in range(n + 1 - wins):
                low, high = mcnemar_interval(wins, losses, n, confidence=0.95)
                rejects = mcnemar_exact(wins, losses) < 0.05
                disagreeing += rejects != (low > 0 or high < 0)
                assert low <= (wins - losses) / n <= high
    assert disagreeing == 0


def test_the_permutation_interval_excludes_zero_exactly_when_the_permutation_test_rejects():
    rng = np.random.default_rng(11)
    rejected = 0
    for trial in range(150):
        n = int(rng.integers(3, 40))
        diffs = np.round(rng.normal(rng.uniform(-0.4, 0.4), 0.4, n), 2)
        p, (low, high) = permutation_test(diffs, confidence=0.95, seed=trial)
        assert (p < 0.05) == (low > 0 or high < 0), (diffs, p, low, high)
        assert low <= diffs.mean() <= high
        rejected += p < 0.05
    assert 20 < rejected < 130  # the grid holds both kinds of case


def test_the_exact_power_matches_simulation():
    rng = np.random.default_rng(5)
    for p_win, p_loss, alpha in ((0.3, 0.05, 0.05), (0.12, 0.04, 0.05 / 3), (0.2, 0.1, 0.05)):
        n = mcnemar_cases(p_win, p_loss, alpha=alpha)
        assert mcnemar_power(n, p_win, p_loss, alpha=alpha) >= 0.8 > mcnemar_power(n - 3, p_win, p_loss, alpha=alpha)
        runs = rng.multinomial(n, [p_win, p_loss, 1 - p_win - p_loss], size=1500)
        settled = np.mean([mcnemar_exact(int(won), int(lost)) < alpha for won, lost, _ in runs])
        assert 0.76 <= settled <= 0.86, (p_win, p_loss, alpha, n, settled)


def test_adding_the_printed_cases_at_the_observed_rates_settles_it_80_percent_of_the_time():
    # 9 cases: A right alone on 5, B never: p = 0.0625, not settled; across 6 pairs Holm tests it at 0.05 / 6
    a, b = binary_scores(wins=5, losses=0, both=1, neither=3)
    found = [compare_paired("a", x, a, b, binary=True) for x in "bcdefg"]
    c = adjust(found)[0]
    assert not c.settled and c.pairs == 6
    assert c.ci_low < 0 < c.ci_high  # the interval agrees with p = 0.0625
    assert c.cases_needed >= 2 * least_disagreements(0.05 / 6)  # never "1 more case" where the exact test needs 8
    rng = np.random.default_rng(9)
    runs = rng.multinomial(c.cases_needed, [5 / 9, 0, 4 / 9], size=2000)
    p_values = np.array([mcnemar_exact(int(won), int(lost)) for won, lost, _ in runs])
    assert 0.76 <= np.mean(p_values < 0.05 / 6) <= 0.9


def test_a_run_records_the_best_strategy_against_the_others(tmp_path):
    from harness.run.compare import CompareOptions, compare
    from tests.conftest import base_suite, write_suite

    suite = base_suite()
    weaker = {"name": "weak", "kind": "fake", "config": {"rules": [{"pattern": "about alpha", "answer": "alpha"}]}}
    suite["backends"].append(weaker)
    suite["strategies"] = [
        {"name": "zero", "kind": "zero_shot", "backend": "fake"},
        {"name": "weak", "kind": "zero_shot", "backend": "weak"},
    ]
    record, _ = compare(write_suite(tmp_path / "s", suite, n_test=60), CompareOptions(out=tmp_path / "run"))
    (c,) = record.comparisons  # labels cycle alpha/beta/gamma: "zero" also gets beta right, 20 cases out of 60
    assert (c.a, c.b, c.wins, c.losses, c.n) == ("zero", "weak", 20, 0, 60)
    assert c.test == "mcnemar_exact" and c.p_holm == pytest.approx(2 * 0.5**20) and c.settled
    assert c.diff == pytest.approx(1 / 3) and c.ci_low > 0
