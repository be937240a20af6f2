"""Paired statistics on the same test cases: is strategy A better than B, by how much, and how sure are we?

Plain functions (scipy.stats underneath), used by the decision and the report alike:
- 0/1 scores: exact McNemar test on the discordant pairs; other scores: a paired permutation test.
- The effect (mean difference A - B) with a 95% paired bootstrap interval.
- Holm's correction across the comparisons of one decision.
- The minimum detectable difference at this test-set size, and the cases needed to settle an observed one
  (normal approximation of the paired test, two-sided alpha, power 80% by default).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from harness.records.decision import PairedComparison

ALPHA = 0.05
POWER = 0.8
CONFIDENCE = 0.95
# BCa needs a jackknife over all n cases (O(n^2) work); above this size the percentile interval is as good.
BCA_MAX_N = 2000


def wilson(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of a proportion; (nan, nan) with no cases."""
    from scipy.stats import binomtest

    if n == 0:
        return (math.nan, math.nan)
    ci = binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    return (float(ci.low), float(ci.high))


def bootstrap_ci(values: np.ndarray, confidence: float = CONFIDENCE, *, seed: int = 0) -> tuple[float, float]:
    """BCa bootstrap interval of the mean; (nan, nan) when there is nothing to resample (n < 2 or all equal)."""
    from scipy.stats import bootstrap

    if len(values) < 2 or np.all(values == values[0]):
        return (math.nan, math.nan)
    method = "BCa" if len(values) <= BCA_MAX_N else "percentile"
    res = bootstrap(
        (values,),
        np.mean,
        confidence_level=confidence,
        n_resamples=2000,
        method=method,
        batch=200,
        random_state=np.random.default_rng(seed),
    )
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if math.isnan(low) or math.isnan(high):  # BCa can fail on very skewed data; fall back to percentiles
        res = bootstrap(
            (values,),
            np.mean,
            confidence_level=confidence,
            n_resamples=2000,
            method="percentile",
            random_state=np.random.default_rng(seed),
        )
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return (low, high)


def _z(q: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(q))


def mcnemar_exact(wins: int, losses: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pairs (a binomial test at 1/2)."""
    from scipy.stats import binomtest

    if wins + losses == 0:
        return 1.0
    return float(binomtest(wins, wins + losses, 0.5).pvalue)


def permutation_p(diffs: np.ndarray, *, seed: int = 0, n_resamples: int = 10_000) -> float:
    """Two-sided paired permutation test (random sign flips of the per-case differences)."""
    from scipy.stats import permutation_test

    if len(diffs) < 2 or np.all(diffs == 0):
        return 1.0
    result = permutation_test(
        (diffs,),
        np.mean,
        permutation_type="samples",
        n_resamples=n_resamples,
        alternative="two-sided",
        random_state=np.random.default_rng(seed),
    )
    return float(result.pvalue)


def paired_bootstrap_ci(
    diffs: np.ndarray, *, confidence: float = 0.95, seed: int = 0
) -> tuple[float | None, float | None]:
    """Bootstrap interval of the mean per-case difference (cases resampled in pairs)."""
    if len(diffs) < 2:
        return None, None
    if np.all(diffs == diffs[0]):
        return float(diffs[0]), float(diffs[0])
    low, high = bootstrap_ci(diffs, confidence, seed=seed)
    return (None, None) if math.isnan(low) else (low, high)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def min_detectable_diff(n: int, sd_diff: float, *, alpha: float = ALPHA, power: float = POWER) -> float | None:
    """Smallest true mean difference a paired test on n cases detects with the given power."""
    if n < 2 or sd_diff <= 0:
        return None
    return (_z(1 - alpha / 2) + _z(power)) * sd_diff / math.sqrt(n)


def cases_needed(diff: float, sd_diff: float, *, alpha: float = ALPHA, power: float = POWER) -> int | None:
    """Test cases a paired test needs to detect a true difference `diff` with the given power."""
    if diff == 0 or sd_diff <= 0:
        return None
    return math.ceil(((_z(1 - alpha / 2) + _z(power)) * sd_diff / abs(diff)) ** 2)


def cases_to_decide(
    diff: float, sd_diff: float, margin: float, *, alpha: float = ALPHA, power: float = POWER
) -> int | None:
    """Test cases needed to decide against a `margin` (the smallest difference that matters): enough to settle the
    observed difference with a two-sided paired test, or, when it is below the margin, enough to show the true
    difference is below the margin (a one-sided equivalence bound), whichever comes first. Either settles the
    comparison for the decision. None when the data cannot say (sd 0, or no difference at the margin)."""
    if sd_diff <= 0:
        return None
    found: list[int] = []
    needed = cases_needed(diff, sd_diff, alpha=alpha, power=power) if diff != 0 else None
    if needed is not None:
        found.append(needed)
    gap = margin - abs(diff)
    if gap > 0:
        found.append(math.ceil(((_z(1 - alpha) + _z(power)) * sd_diff / gap) ** 2))
    return min(found) if found else None


def compare_paired(
    a: str,
    b: str,
    scores_a: Mapping[str, float],
    scores_b: Mapping[str, float],
    *,
    binary: bool,
    seed: int = 0,
    confidence: float = 1 - ALPHA,
) -> PairedComparison:
    """A against B on the cases both have a score for (per-case means over repeats)."""
    common = sorted(set(scores_a) & set(scores_b))
    xa = np.array([scores_a[c] for c in common], dtype=float)
    xb = np.array([scores_b[c] for c in common], dtype=float)
    diffs = xa - xb
    n = len(common)
    wins, losses = int((diffs > 0).sum()), int((diffs < 0).sum())
    zero_one = binary and np.all(np.isin(xa, (0, 1))) and np.all(np.isin(xb, (0, 1)))
    p = mcnemar_exact(wins, losses) if zero_one else permutation_p(diffs, seed=seed)
    low, high = paired_bootstrap_ci(diffs, seed=seed, confidence=confidence)
    sd = float(diffs.std(ddof=1)) if n > 1 else 0.0
    mean_diff = float(diffs.mean()) if n else 0.0
    alpha = 1 - confidence
    needed = cases_needed(mean_diff, sd, alpha=alpha) if p >= alpha else None
    return PairedComparison(
        a=a,
        b=b,
        n=n,
        mean_a=float(xa.mean()) if n else None,
        mean_b=float(xb.mean()) if n else None,
        diff=mean_diff,
        ci_low=low,
        ci_high=high,
        test="mcnemar_exact" if zero_one else "paired_permutation",
        p_value=p,
        wins=wins,
        losses=losses,
        ties=n - wins - losses,
        min_detectable_diff=min_detectable_diff(n, sd, alpha=alpha),
        cases_needed=needed,
        sd_diff=sd,
        alpha=alpha,
        settled=p < alpha,
    )


def adjust(comparisons: list[PairedComparison]) -> list[PairedComparison]:
    """Holm-correct the p-values of comparisons made for one decision (in place; returned for chaining)."""
    m = len(comparisons)
    for comparison, p in zip(comparisons, holm([c.p_value for c in comparisons]), strict=True):
        comparison.p_holm = p
        comparison.settled = p < comparison.alpha
        if p >= comparison.alpha and comparison.diff != 0:  # counted at Holm's strictest level, alpha / m
            comparison.cases_needed = cases_needed(comparison.diff, comparison.sd_diff, alpha=comparison.alpha / m)
    return comparisons
