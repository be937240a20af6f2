"""Every pair of strategies compared on the same cases, and what one comparison says against the minimum gain:
better, worse, equivalent or not yet known (with the test cases it would take to know)."""

from __future__ import annotations

from collections.abc import Mapping

from harness.records.decision import PairedComparison, Relation
from harness.verdict.paired import adjust, cases_to_settle, compare_paired
from harness.verdict.stats import cases_to_bound

EPS = 1e-9  # a difference computed from counts may miss the gain by a rounding error


def pairwise(
    per_case: Mapping[str, Mapping[str, float]], *, binary: bool, confidence: float, min_gain: float
) -> list[PairedComparison]:
    """Every pair (a, b) in order, on the cases both answered, Holm-corrected across all pairs; each with the total
    number of test cases that would decide it against `min_gain` (`cases_to_decide`)."""
    names = [n for n in per_case if per_case[n]]
    found = [
        compare_paired(a, b, per_case[a], per_case[b], binary=binary, confidence=confidence)
        for i, a in enumerate(names)
        for b in names[i + 1 :]
    ]
    for c in adjust(found):
        if c.settled and abs(c.diff) >= min_gain:
            continue
        # Holm's first step tests at alpha / (number of pairs): the cases needed are counted at that level, so
        # "N more cases" is enough whatever the other pairs show (Bonferroni: conservative). Either settling the
        # difference or bounding it below the minimum gain decides the comparison, whichever comes first.
        level = c.alpha / len(found)
        found_n = [
            x
            for x in (
                None if c.settled else cases_to_settle(c, alpha=level),
                cases_to_bound(c.diff, c.sd_diff, min_gain, alpha=level, fixed_var=c.seed_var),
            )
            if x is not None
        ]
        c.cases_to_decide = max(min(found_n), c.n + 1) if found_n else None
    return found


def best_against_others(
    pairs: list[PairedComparison], per_case: Mapping[str, Mapping[str, float]]
) -> list[PairedComparison]:
    """The strategy with the best mean against each other one (the terminal's and run.json's `comparisons`)."""
    names = [n for n in per_case if per_case[n]]
    if len(names) < 2:
        return []
    means = {n: sum(per_case[n].values()) / len(per_case[n]) for n in names}
    best = max(names, key=lambda n: (means[n], -names.index(n)))
    return [p for p in (find_pair(pairs, best, other) for other in names if other != best) if p is not None]


def find_pair(pairs: list[PairedComparison], a: str, b: str) -> PairedComparison | None:
    """The comparison of a against b (flipped when stored as b against a)."""
    for p in pairs:
        if p.a == a and p.b == b:
            return p
        if p.a == b and p.b == a:
            return p.flipped()
    return None


def relation(pair: PairedComparison | None, min_gain: float) -> Relation:
    """A against B: better or worse by at least `min_gain` and settled by the paired test; equivalent when settled
    below `min_gain` or when the whole interval lies within ±min_gain; otherwise inconclusive."""
    if pair is None or pair.n == 0:
        return "inconclusive"
    diff, low, high = pair.diff, pair.ci_low, pair.ci_high
    if pair.settled:
        if diff >= min_gain - EPS:
            return "better"
        if diff <= -min_gain + EPS:
            return "worse"
        return "equivalent"
    if low is not None and high is not None and -min_gain < low and high < min_gain:
        return "equivalent"
    if low is None and diff == 0 and pair.ties == pair.n:
        return "equivalent"  # identical scores on every case
    return "inconclusive"


def more_cases(pair: PairedComparison | None) -> int | None:
    """Test cases to add (beyond those run) to decide the pair against the minimum gain."""
    if pair is None or pair.cases_to_decide is None:
        return None
    return max(pair.cases_to_decide - pair.n, 1)
