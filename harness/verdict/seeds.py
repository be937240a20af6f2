"""A strategy run with several seeds (N trainings, N exemplar draws): its intervals and paired tests resample the
seeds as well as the cases, so seed luck widens them instead of hiding.

The method is the two-stage (hierarchical) bootstrap of Davison & Hinkley (1997, section 3.8): each draw resamples
a strategy's seeds with replacement, then the test cases with replacement (the same cases for both strategies of a
pair, so the comparison stays paired), and takes the mean. Resampling at both stages counts the case-level noise
twice over a little, so the interval errs on the wide side; with few seeds it is the honest direction. A paired
test's p-value is read from the same draws (twice the share on the far side of 0), so the interval excludes 0
exactly when the test rejects. The cases a comparison needs come from the same variance split: more test cases
shrink the case part, never the seed part, so a difference within seed noise is reported as needing more seeds.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from harness.verdict.stats import agree_at_zero

if TYPE_CHECKING:
    from harness.records.summary import StrategySummary

DRAWS = 4000
CHUNK = 250  # draws per vectorised step (memory: CHUNK x seeds x cases floats)


class CaseScores(dict[str, float]):
    """A strategy's score per case id (the mean over its repeats and seeds); `seeds` holds the same per seed, in
    seed order, when it ran with more than one."""

    seeds: list[dict[str, float]]

    def __init__(self, scores: dict[str, float], seeds: list[dict[str, float]] | None = None):
        super().__init__(scores)
        self.seeds = seeds if seeds and len(seeds) > 1 else []


def seed_matrix(per_seed: list[dict[str, float]], cases: list[str]) -> np.ndarray:
    """Seeds x cases, NaN where a seed has no score for a case."""
    return np.array([[s.get(c, math.nan) for c in cases] for s in per_seed], dtype=float)


def _nanmean(x: np.ndarray, axis: int) -> np.ndarray:
    """Mean leaving NaN out; NaN (no warning) where all are NaN (a case no resampled seed scored)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(x, axis=axis)


def draws(a: np.ndarray, b: np.ndarray | None = None, *, n_draws: int = DRAWS, seed: int = 0) -> np.ndarray:
    """Bootstrap distribution of the mean of `a` (seeds x cases), or of mean(a) - mean(b) on the same cases."""
    rng = np.random.default_rng(seed)
    n = a.shape[1]
    out = []
    for start in range(0, n_draws, CHUNK):
        m = min(CHUNK, n_draws - start)
        per_case = _nanmean(a[rng.integers(0, a.shape[0], size=(m, a.shape[0]))], axis=1)
        if b is not None:
            per_case = per_case - _nanmean(b[rng.integers(0, b.shape[0], size=(m, b.shape[0]))], axis=1)
        cases = rng.integers(0, n, size=(m, n))
        out.append(_nanmean(np.take_along_axis(per_case, cases, axis=1), axis=1))
    found = np.concatenate(out)
    return found[~np.isnan(found)]


def interval(found: np.ndarray, confidence: float) -> tuple[float, float] | None:
    """The percentile interval of bootstrap draws (the inverted empirical CDF, so it agrees with `p_value`)."""
    if len(found) == 0:
        return None
    q = (1 - confidence) / 2
    low, high = np.quantile(found, [q, 1 - q], method="inverted_cdf")
    return float(low), float(high)


def p_value(found: np.ndarray) -> float:
    """Two-sided bootstrap p-value of a zero difference: twice the share of draws on the far side of 0."""
    if len(found) == 0:
        return 1.0
    below, above = float(np.mean(found <= 0)), float(np.mean(found >= 0))
    return min(1.0, 2 * min(below, above))


def seed_variance(*per_seed: list[dict[str, float]]) -> float:
    """The part of a (difference of) mean(s) that comes from which seeds were drawn: for each strategy with more
    than one seed, the variance of its per-seed means over its number of seeds (case noise removed)."""
    total = 0.0
    for seeds in per_seed:
        if len(seeds) < 2:
            continue
        cases = sorted(set.intersection(*(set(s) for s in seeds)))
        if len(cases) < 2:
            continue
        matrix = seed_matrix(seeds, cases)
        k, n = matrix.shape
        means = matrix.mean(axis=1)
        within = float(np.sum((matrix - means[:, None] - matrix.mean(axis=0)[None, :] + matrix.mean()) ** 2))
        within /= max((k - 1) * (n - 1), 1)  # seed x case interaction: noise that averages out over cases
        between = max(float(np.var(means, ddof=1)) - within / n, 0.0)
        total += between / k
    return total


def spread(values: list[float]) -> tuple[float | None, float | None, float | None]:
    """(standard deviation, lowest, highest) of per-seed scores; sd None with fewer than two."""
    if not values:
        return None, None, None
    return (float(np.std(values, ddof=1)) if len(values) > 1 else None), min(values), max(values)


def test(found: np.ndarray, confidence: float) -> tuple[float, tuple[float, float] | None]:
    """The p-value and interval of a difference from the same draws, made to agree at 0 (they can part only on a
    tie of draws at exactly 0)."""
    p, bounds = p_value(found), interval(found, confidence)
    if bounds is None:
        return p, None
    return p, agree_at_zero(p, *bounds, alpha=1 - confidence, mean=float(np.mean(found)))


def seed_lines(strategies: Mapping[str, StrategySummary], metric: str) -> list[str]:
    """Per strategy run with several seeds: each seed's score on `metric` and the spread (the terminal, decision.md
    and the report say the same)."""
    out = []
    for s in strategies.values():
        spread = s.seed_spread.get(metric)
        if not s.seeds or spread is None:
            continue
        scores = ", ".join("-" if (v := x.metrics.get(metric)) is None else f"{v:.3f}" for x in s.seeds)
        out.append(
            f"{s.strategy} over {len(s.seeds)} seeds ({', '.join(str(x.seed) for x in s.seeds)}): {metric} {scores}; "
            + (f"sd {spread.sd:.3f}, " if spread.sd is not None else "")
            + (f"range {spread.high - spread.low:.3f}" if spread.low is not None and spread.high is not None else "")
            + "; its interval and paired tests resample seeds as well as cases"
        )
    return out
