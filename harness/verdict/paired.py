"""A against B on the same test cases: the test, an interval that agrees with it, and the cases it would take.

- 0/1 scores: the exact McNemar test (a binomial test at 1/2 on the cases where exactly one strategy is right). Its
  interval is the Clopper-Pearson interval of the share of those cases that A wins, carried over to the difference
  at the observed rate of disagreement: it excludes 0 exactly when the test rejects.
- Other scores, up to `PERMUTATION_MAX_N` cases: a paired permutation test (sign flips of the per-case differences,
  all of them up to 12 cases, else a seeded sample) and the interval made of the shifts it does not reject (test
  inversion), so the two agree. Beyond that size, the paired z-test and its interval (the permutation test's own
  large-sample form).
- A strategy run with several seeds: the two-stage bootstrap of harness.verdict.seeds (seeds, then cases), its
  p-value and percentile interval read from the same draws.
- Cases needed: for McNemar, the exact power of the test at the observed win and loss rates (summed over the
  binomial number of disagreements), at the level it will be judged at (Holm's strictest, alpha / pairs); for
  other scores the normal approximation, which the permutation test follows at the sizes it is asked for.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np

from harness.records.decision import PairedComparison
from harness.verdict import seeds
from harness.verdict.stats import ALPHA, POWER, agree_at_zero, cases_needed, holm, min_detectable_diff

PERMUTATION_MAX_N = 2000  # above it the paired z-test is as exact and far cheaper
EXACT_SIGNS_MAX_N = 12  # all 2**n sign flips up to here, a seeded sample of SIGN_SAMPLES beyond
SIGN_SAMPLES = 4999
MAX_CASES = 10_000_000  # "cases needed" beyond this is reported as unknown


# ---- 0/1 scores: exact McNemar -----------------------------------------------------------------------------------


def mcnemar_exact(wins: int, losses: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pairs (a binomial test at 1/2)."""
    from scipy.stats import binomtest

    if wins + losses == 0:
        return 1.0
    return float(binomtest(wins, wins + losses, 0.5).pvalue)


def mcnemar_interval(wins: int, losses: int, n: int, *, confidence: float) -> tuple[float, float] | None:
    """Interval of the difference A - B that agrees with the exact McNemar test: Clopper-Pearson for the share of
    disagreements A wins, times the observed disagreement rate."""
    from scipy.stats import binomtest

    if n == 0:
        return None
    d = wins + losses
    if d == 0:
        return (0.0, 0.0)
    ci = binomtest(wins, d, 0.5).proportion_ci(confidence_level=confidence, method="exact")
    return (d / n * (2 * float(ci.low) - 1), d / n * (2 * float(ci.high) - 1))


def mcnemar_power(n: int, p_win: float, p_loss: float, *, alpha: float) -> float:
    """Exact power of the two-sided exact McNemar test on n cases whose disagreements fall A's way with probability
    p_win and B's way with p_loss (each case independently)."""
    from scipy.stats import binom

    p_disagree = p_win + p_loss
    if n <= 0 or p_disagree <= 0:
        return 0.0
    d = np.arange(n + 1)
    # the largest k with 2 * P(X <= k | d, 1/2) < alpha: reject when the winner's count is <= k or >= d - k
    k = binom.ppf(alpha / 2, d, 0.5) - 1
    k = np.where(2 * binom.cdf(k + 1, d, 0.5) < alpha, k + 1, k)  # ppf works at <=; the test is strict
    q = p_win / p_disagree
    reject = np.where(k >= 0, binom.cdf(k, d, q) + binom.sf(d - k - 1, d, q), 0.0)
    return float(np.sum(binom.pmf(d, n, p_disagree) * reject))


def mcnemar_cases(p_win: float, p_loss: float, *, alpha: float, power: float = POWER) -> int | None:
    """The fewest cases at which the exact McNemar test rejects with the given power at these rates; None when no
    number up to MAX_CASES does (no difference, or one too small)."""
    if p_win == p_loss or p_win + p_loss <= 0:
        return None
    return _smallest(lambda n: mcnemar_power(n, p_win, p_loss, alpha=alpha) >= power)


def _smallest(enough: Callable[[int], bool]) -> int | None:
    """The smallest n where `enough(n)` holds, assuming it holds from some n on (doubling, then bisection)."""
    high = 8
    while not enough(high):
        if high > MAX_CASES:
            return None
        high *= 2
    low = high // 2
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if enough(mid) else (mid, high)
    return high


def least_disagreements(alpha: float) -> int:
    """The fewest disagreements, all one way, with which the exact McNemar test can reject at `alpha`."""
    return math.floor(math.log2(2 / alpha)) + 1


# ---- other scores: permutation test and its inversion ------------------------------------------------------------


def _signs(n: int, seed: int) -> np.ndarray:
    if n <= EXACT_SIGNS_MAX_N:
        grid = (np.arange(2**n)[:, None] >> np.arange(n)) & 1
        return (1 - 2 * grid).astype(np.float64)
    rng = np.random.default_rng(seed)
    return rng.choice(np.array([-1.0, 1.0]), size=(SIGN_SAMPLES, n))


def _permutation_p(diffs: np.ndarray, signs: np.ndarray, shift: float) -> float:
    x = diffs - shift
    observed = abs(x.mean())
    flipped = np.abs(signs @ x) / len(x)
    hits = int(np.sum(flipped >= observed - 1e-12 * max(1.0, observed)))
    if len(x) <= EXACT_SIGNS_MAX_N:  # every sign flip, the identity among them
        return hits / len(signs)
    return (hits + 1) / (len(signs) + 1)


def permutation_test(
    diffs: np.ndarray, *, confidence: float, seed: int = 0
) -> tuple[float, tuple[float, float] | None]:
    """Two-sided paired permutation p-value of mean(diffs) = 0, and the interval of the shifts it does not reject."""
    n = len(diffs)
    if n < 2:
        return 1.0, None
    if np.all(diffs == diffs[0]) and diffs[0] == 0:
        return 1.0, (0.0, 0.0)
    signs = _signs(n, seed)
    alpha = 1 - confidence
    p = _permutation_p(diffs, signs, 0.0)
    mean = float(diffs.mean())

    def bound(outside: float) -> float:  # p(outside) < alpha <= p(mean): the crossing, by bisection
        inside = mean
        for _ in range(40):
            mid = (inside + outside) / 2
            inside, outside = (mid, outside) if _permutation_p(diffs, signs, mid) >= alpha else (inside, mid)
        return inside

    span = float(np.ptp(diffs)) + 1e-9
    low, high = bound(float(diffs.min()) - span), bound(float(diffs.max()) + span)
    return p, agree_at_zero(p, low, high, alpha=alpha, mean=mean)


def z_test(diffs: np.ndarray, *, confidence: float) -> tuple[float, tuple[float, float] | None]:
    """The paired z-test and its interval (large samples)."""
    from scipy.stats import norm

    n = len(diffs)
    mean, sd = float(diffs.mean()), float(diffs.std(ddof=1))
    if sd == 0:
        return (1.0 if mean == 0 else 0.0), (mean, mean)
    se = sd / math.sqrt(n)
    z = float(norm.ppf(1 - (1 - confidence) / 2))
    return float(2 * norm.sf(abs(mean) / se)), (mean - z * se, mean + z * se)


# ---- one comparison, and the comparisons of one decision ---------------------------------------------------------


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
    seeds_a, seeds_b = getattr(scores_a, "seeds", []), getattr(scores_b, "seeds", [])
    seed_var = 0.0
    if (seeds_a or seeds_b) and n >= 2:  # seed luck counts: resample seeds as well as cases
        found = seeds.draws(
            seeds.seed_matrix(seeds_a or [dict(scores_a)], common),
            seeds.seed_matrix(seeds_b or [dict(scores_b)], common),
            seed=seed,
        )
        test, (p, interval) = "two_stage_bootstrap", seeds.test(found, confidence)
        seed_var = seeds.seed_variance(seeds_a, seeds_b)
    elif zero_one:
        test, p, interval = (
            "mcnemar_exact",
            mcnemar_exact(wins, losses),
            mcnemar_interval(wins, losses, n, confidence=confidence),
        )
    elif n <= PERMUTATION_MAX_N:
        test, (p, interval) = "paired_permutation", permutation_test(diffs, confidence=confidence, seed=seed)
    else:
        test, (p, interval) = "paired_z", z_test(diffs, confidence=confidence)
    sd = float(diffs.std(ddof=1)) if n > 1 else 0.0
    alpha = 1 - confidence
    comparison = PairedComparison(
        a=a,
        b=b,
        n=n,
        mean_a=float(xa.mean()) if n else None,
        mean_b=float(xb.mean()) if n else None,
        diff=float(diffs.mean()) if n else 0.0,
        ci_low=interval[0] if interval else None,
        ci_high=interval[1] if interval else None,
        test=test,
        p_value=p,
        wins=wins,
        losses=losses,
        ties=n - wins - losses,
        min_detectable_diff=min_detectable_diff(n, sd, alpha=alpha),
        cases_needed=None,
        sd_diff=sd,
        seed_var=seed_var,
        alpha=alpha,
        settled=p < alpha,
    )
    if not comparison.settled:
        comparison.cases_needed = cases_to_settle(comparison, alpha=alpha)
    return comparison


def cases_to_settle(c: PairedComparison, *, alpha: float, power: float = POWER) -> int | None:
    """Test cases (in all) at which the test this comparison uses settles a difference like the observed one with
    the given power, at level `alpha`; never fewer than the cases already run plus one."""
    if c.n == 0 or c.diff == 0:
        return None
    if c.test == "mcnemar_exact":
        found = mcnemar_cases(c.wins / c.n, c.losses / c.n, alpha=alpha, power=power)
    else:
        found = cases_needed(c.diff, c.sd_diff, alpha=alpha, power=power, fixed_var=c.seed_var)
    return None if found is None else max(found, c.n + 1)


def adjust(comparisons: list[PairedComparison]) -> list[PairedComparison]:
    """Holm-correct the p-values of comparisons made for one decision (in place; returned for chaining). The cases
    a comparison needs are counted at Holm's strictest level, alpha / pairs, so they are enough whatever the other
    pairs show."""
    m = len(comparisons)
    for comparison, p in zip(comparisons, holm([c.p_value for c in comparisons]), strict=True):
        comparison.p_holm = p
        comparison.pairs = m
        comparison.settled = p < comparison.alpha
        comparison.cases_needed = (
            None if comparison.settled else cases_to_settle(comparison, alpha=comparison.alpha / m)
        )
    return comparisons
