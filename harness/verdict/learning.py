"""The value of more data: a fine-tune's learning-curve points (the strategy trained on nested subsets of its train
split, `config.learning_curve`) from the run's rows, the curve fitted through them (harness.verdict.curve), and
whether labelling twice the examples is worth it at the suite's volume.

With economics.value, more data is worth it when the expected gain's value over the horizon exceeds labelling and
training again; without, when the expected score clears the minimum gain (over its own, or over the winner's when it
does not win).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from harness.costs.money import usd
from harness.records.cases import CaseResult
from harness.records.curve import CurvePoint, LearningCurve, MoreData
from harness.records.decision import Decision
from harness.records.setup import FineTuneGiven, StrategySetup
from harness.suite.schema import DecisionSpec, Suite, curve_variant
from harness.verdict.curve import fit_learning_curve
from harness.verdict.summary import case_means, latest, summarize_metric

MORE = 2.0  # "with 2x the training data"
BAND_POINTS = 12  # the curve's band is drawn through predictions at this many sizes, smallest point to MORE x


def _point(
    name: str, fraction: float, rows: list[CaseResult], setup: StrategySetup | None, metric: str, binary: bool
) -> CurvePoint:
    given = setup.given if setup else None
    used = given.data_used if given else None
    training = next((c.usd for c in given.setup_costs if c.what == "training"), None) if given else None
    m = summarize_metric(rows, metric, binary=binary)
    return CurvePoint(
        fraction=fraction,
        n_examples=used.train if used else 0,
        mean=m.mean,
        ci_low=m.ci_low,
        ci_high=m.ci_high,
        n_cases=m.n,
        training_usd=training,
        epochs=given.epochs_trained if isinstance(given, FineTuneGiven) else None,
        name=name,
        setup=setup if fraction < 1 else None,  # the full split's is the strategy's own
    )


def learning_curves(
    suite: Suite,
    rows: Iterable[CaseResult],
    setups: dict[str, StrategySetup],
    *,
    test_ids: set[str],
    binary: bool,
    decision: Decision | None,
) -> list[LearningCurve]:
    """Each fine-tune with a learning curve whose points have answers: its points, fit and more-data estimate."""
    final = latest(rows)
    by_name: dict[str, list[CaseResult]] = {}
    for (name, case, repeat), r in final.items():
        if case in test_ids and repeat < suite.repeats:
            by_name.setdefault(name, []).append(r)
    metric = suite.primary_metric
    out = []
    for spec in suite.strategies:
        fractions = spec.curve_fractions()
        if not fractions:
            continue
        names = [(curve_variant(spec.name, f), f) for f in fractions] + [(spec.name, 1.0)]
        points = [
            _point(name, f, by_name[name], setups.get(name), metric, binary)
            for name, f in names
            if by_name.get(name) and setups.get(name) is not None
        ]
        if len(points) < 2 or points[-1].name != spec.name:
            continue
        means = [case_means(by_name[p.name], metric) for p in points]
        cases = sorted(set.intersection(*(set(m) for m in means)))
        scores = np.array([[m[c] for m in means] for c in cases], dtype=float)
        bounds = (0.0, 1.0) if scores.size and scores.min() >= 0 and scores.max() <= 1 else (None, None)
        sizes = [p.n_examples for p in points]
        target = round(sizes[-1] * MORE)
        band = {round(x) for x in np.geomspace(sizes[0], target, BAND_POINTS)} - {target}
        fit = fit_learning_curve(sizes, scores, targets=[target, *sorted(band)], bounds=bounds, seed=suite.seed)
        curve = LearningCurve(strategy=spec.name, metric=metric, points=points, fit=fit)
        curve.more_data = more_data(curve, suite, decision)
        out.append(curve)
    return out


def more_data(curve: LearningCurve, suite: Suite, decision: Decision | None) -> MoreData:
    """What labelling as many examples again costs, what it is expected to gain, and whether that is worth it."""
    full = curve.points[-1]
    data = suite.economics.data if suite.economics else None
    per = data.per_example_usd if data else None
    more = max(1, round(full.n_examples * (MORE - 1)))
    labelling = None if per is None else more * per
    found = MoreData(
        factor=MORE,
        more_examples=more,
        labelling_usd=labelling,
        extra_training_usd=full.training_usd,  # twice the examples: about one more training's worth
        expected_gain=None,
        gain_low=None,
        gain_high=None,
        worth_it=None,
        sentence="",
    )
    name, fit = curve.strategy, curve.fit
    shown = ", ".join(f"{p.n_examples} examples {p.mean:.3f}" for p in curve.points if p.mean is not None)
    if fit.status == "flat":
        found.worth_it = False
        found.sentence = (
            f"{name}'s learning curve is flat ({shown}): more labelled data is not expected to help. {fit.reason}"
        )
        return found
    if fit.status != "extrapolated" or not fit.predictions or full.mean is None:
        found.sentence = f"{name}'s learning curve cannot be extrapolated ({shown}): {fit.reason}"
        return found
    pred = fit.predictions[0]  # at MORE x the examples (the others draw the band)
    found.expected_gain, found.gain_low, found.gain_high = (
        pred.mean - full.mean,
        pred.low - full.mean,
        pred.high - full.mean,
    )
    policy = suite.decision or DecisionSpec()
    found.worth_it, why = _worth(found, curve, suite, policy, decision)
    cost = (
        f"labelling {more:,} more examples costs {usd(labelling)} (economics.data)"
        if labelling is not None
        else (f"labelling {more:,} more examples is not priced (set economics.data)")
    )
    train = f" and training again about {usd(full.training_usd)}" if full.training_usd is not None else ""
    verdict = (
        "at your volume that is "
        + {True: "worth it", False: "not worth it", None: "not known to be worth it"}[found.worth_it]
    )
    if found.worth_it is None and found.pays_from_monthly_requests is not None:
        verdict = "whether that is worth it depends on your volume"
    found.sentence = (
        f"With {MORE:g}x the training data ({pred.n_examples:,} examples) {name} is expected to reach "
        f"{curve.metric} {pred.mean:.3f} [{pred.low:.3f}, {pred.high:.3f}] (from {full.mean:.3f}); {cost}{train}; "
        f"{verdict}: {why}."
    )
    return found


def _worth(
    found: MoreData, curve: LearningCurve, suite: Suite, policy: DecisionSpec, decision: Decision | None
) -> tuple[bool | None, str]:
    gain = found.expected_gain or 0.0
    value = suite.economics.value if suite.economics else None
    if value is not None and (value.correct_usd + value.wrong_usd) > 0:
        return _worth_in_dollars(found, value.correct_usd + value.wrong_usd, policy)
    winner = decision.winner if decision else None
    if winner is None or winner == curve.strategy:
        ok = gain >= policy.min_gain
        return ok, (
            f"the expected gain of {gain:+.3f} is {'at least' if ok else 'below'} the minimum worthwhile gain of "
            f"{policy.min_gain:g}"
        )
    rows = decision.by_volume[0].ranking if decision and decision.by_volume else []
    best = next((r.quality for r in rows if r.strategy == winner), None)
    if best is None:
        return None, f"{winner}'s score is not known"
    reach = (curve.points[-1].mean or 0.0) + gain
    ok = reach >= best + policy.min_gain
    return ok, (
        f"{winner} leads with {best:.3f}; the expected {reach:.3f} would "
        + ("overtake it by the minimum gain" if ok else f"not overtake it by the minimum gain of {policy.min_gain:g}")
    )


def _worth_in_dollars(found: MoreData, spread: float, policy: DecisionSpec) -> tuple[bool | None, str]:
    """The expected gain's worth over the horizon at each of the suite's volumes against labelling and training
    again; the volume from which it pays is kept in `found.pays_from_monthly_requests`. Worth it (True) only when it
    pays at every volume, not (False) at none, None when the answer depends on the volume or labelling is unpriced."""
    gain, low = found.expected_gain or 0.0, found.gain_low or 0.0
    months = policy.horizon_months
    per_request = gain * spread * months  # the gain's worth over the horizon for each request a month
    worth = {v: per_request * v for v in policy.volumes}
    said = " and ".join(f"{usd(w)} at {v:,} requests a month" for v, w in worth.items())
    if found.labelling_usd is None:
        return None, f"the expected gain of {gain:+.3f} is worth {said} over {months} months"
    cost = found.labelling_usd + (found.extra_training_usd or 0.0)
    found.pays_from_monthly_requests = cost / per_request if per_request > 0 else None
    pays = {v: w > cost for v, w in worth.items()}
    where = (
        f"; it pays from about {float(f'{found.pays_from_monthly_requests:.3g}'):,.0f} requests a month"
        if found.pays_from_monthly_requests is not None
        else ""
    )
    top = max(v for v, ok in pays.items() if ok) if any(pays.values()) else None
    at_low = ""
    if top is not None:
        at_low = (
            f" (and {usd(low * spread * months * top)} at the interval's low end)"
            if low > 0
            else f" (the interval's low end is a gain of {low:+.3f}: it may not pay at all)"
        )
    answer = True if all(pays.values()) else False if not any(pays.values()) else None
    return (
        answer,
        f"the expected gain of {gain:+.3f} is worth {said} over {months} months{at_low}, against {usd(cost)}{where}",
    )


def points_setups(curves: Iterable[LearningCurve]) -> dict[str, StrategySetup]:
    """The setups of the curves' subset trainings (kept in run.json for a rerun that does not prepare them)."""
    return {p.name: p.setup for c in curves for p in c.points if p.setup is not None and p.fraction < 1}
