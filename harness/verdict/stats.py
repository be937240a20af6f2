"""Statistics the summaries and the decision share (scipy.stats underneath): Wilson and bootstrap intervals of a
mean, Holm's correction across the comparisons of one decision, and normal-approximation planning figures (the
minimum detectable difference at a test-set size, the cases a paired test needs). The paired tests themselves are
harness.verdict.paired."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

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


def agree_at_zero(p: float, low: float, high: float, *, alpha: float, mean: float) -> tuple[float, float]:
    """An interval made to agree with its test at 0: it holds 0 when p >= alpha and leaves it out otherwise (test
    and interval can part by a hair where the p-value is not monotone in the shift, or on draws tied at 0)."""
    if p >= alpha:
        return min(low, 0.0), max(high, 0.0)
    if low <= 0.0 <= high:
        return (math.ulp(0.0), high) if mean > 0 else (low, -math.ulp(0.0))
    return low, high


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


def cases_needed(
    diff: float, sd_diff: float, *, alpha: float = ALPHA, power: float = POWER, fixed_var: float = 0.0
) -> int | None:
    """Test cases a paired test needs to detect a true difference `diff` with the given power. `fixed_var`: variance
    of the difference that more cases do not shrink (seed luck); None when it alone is too large for any n."""
    if diff == 0 or sd_diff <= 0:
        return None
    allowed = (abs(diff) / (_z(1 - alpha / 2) + _z(power))) ** 2 - fixed_var  # variance the case part may have
    if allowed <= 0:
        return None
    return math.ceil(sd_diff**2 / allowed)


def cases_to_bound(
    diff: float, sd_diff: float, margin: float, *, alpha: float = ALPHA, power: float = POWER, fixed_var: float = 0.0
) -> int | None:
    """Test cases needed to show a true difference below `margin` (a one-sided bound, normal approximation) when the
    observed one is below it; None otherwise, or when the data cannot say (sd 0) or seed luck alone (`fixed_var`)
    is too large for any n."""
    gap = margin - abs(diff)
    if sd_diff <= 0 or gap <= 0:
        return None
    allowed = (gap / (_z(1 - alpha) + _z(power))) ** 2 - fixed_var
    return math.ceil(sd_diff**2 / allowed) if allowed > 0 else None
