"""The decision: the suite's policy applied to the measured quality, costs and latency.

Plain functions over plain inputs, so the report recomputes a what-if (another volume, other prices, a dearer GPU)
with exactly the code the run used:

- `decide(options, pairs, policy, value)`: the winner at each volume, the ranking, fine-tuning against each
  alternative (payback requests, break-even volume, "never", "not needed", "inconclusive: about N more cases").
- `decide_run(suite, summaries, pairs)`: what `harness compare` stores in run.json.
- `conclude(...)`: the pairs, the best strategy against the others, and the decision of one run.

A finished run's decision with changed volume or prices (the report's what-if) is harness.verdict.what_if.

Every sentence of the verdict is written by harness.verdict.explain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from harness.costs.model import (
    CostChange,
    CostModel,
    break_even_accuracy,
    break_even_volume,
    cost_model,
    net_value_per_request,
    payback_requests,
)
from harness.records.cases import CaseResult
from harness.records.decision import (
    Decision,
    Diagnosis,
    FinetuneAtVolume,
    FinetuneVerdict,
    Outcome,
    PairedComparison,
    PriceSheetInfo,
    RankRow,
    Relation,
    VolumeVerdict,
)
from harness.records.setup import FineTuneGiven
from harness.records.summary import StrategySummary
from harness.suite.schema import DataPrepSpec, DecisionSpec, Suite, ValueSpec
from harness.verdict import explain
from harness.verdict.guards import Bounds, guard_values, missed
from harness.verdict.horizon import horizon_lines
from harness.verdict.pairs import EPS, best_against_others, find_pair, more_cases, pairwise, relation
from harness.verdict.scorer_stats import agreement_text
from harness.verdict.seeds import seed_lines
from harness.verdict.summary import per_case_scores


@dataclass
class Option:
    """One strategy as the decision sees it."""

    name: str
    kind: str  # strategy kind: "finetune" strategies get the payback analysis
    quality: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    cost: CostModel
    p95_s: float | None = None
    errors: int = 0
    under_trained: bool = False  # a fine-tune still rising on dev at its last epoch, or best at its grid's edge
    grid_edge: list[str] = field(default_factory=list)  # why, when it is the grid's edge
    epochs: int = 0  # epochs it trained
    training_usd: float | None = None  # what that training cost
    guard_values: dict[str, Bounds] = field(default_factory=dict)  # what decision.guards are checked against


def options_from_summaries(
    summaries: dict[str, StrategySummary],
    kinds: dict[str, str],
    metric: str,
    *,
    policy: DecisionSpec | None = None,
    data: DataPrepSpec | None = None,
    change: CostChange | None = None,
) -> list[Option]:
    """Options from run.json's strategy summaries, as the run decided and as a report's what-if (or a tipping
    point's search) recomputes with `change`; `policy` says how often training and indexing recur."""
    policy = policy or DecisionSpec()
    options = []
    for name, s in summaries.items():
        m = s.metrics.get(metric)
        c = s.cost
        cost = (
            cost_model(
                c,
                retrain_every_months=policy.every_months("retrain", name),
                reindex_every_months=policy.every_months("reindex", name),
                refresh_share=data.refresh_share if data else 0.0,
                change=change,
            )
            if c
            else CostModel(per_request_usd=None)
        )
        options.append(
            Option(
                name=name,
                kind=kinds.get(name, ""),
                quality=m.mean if m else None,
                ci_low=m.ci_low if m else None,
                ci_high=m.ci_high if m else None,
                n=m.n if m else 0,
                cost=cost,
                p95_s=s.latency.p95_s,
                errors=s.n_errors,
                guard_values=guard_values(s),
                **_training(s),
            )
        )
    return options


def _training(s: StrategySummary) -> dict[str, Any]:
    """A fine-tune's training as the decision weighs it: still improving at its last epoch or best on the edge of
    its search grid, epochs, cost."""
    given = s.setup.given
    if not isinstance(given, FineTuneGiven):
        return {}
    training = next((c.usd for c in given.setup_costs if c.what == "training"), None)
    return {
        "under_trained": given.dev_still_rising_at_last_epoch is True or bool(given.grid_edge),
        "grid_edge": list(given.grid_edge),
        "epochs": given.epochs_trained,
        "training_usd": training,
    }


def monthly(o: Option, volume: float, policy: DecisionSpec) -> float | None:
    return o.cost.monthly_usd(volume, policy.horizon_months, dedicated=policy.dedicated_hosting)


def net_value_month(o: Option, volume: float, policy: DecisionSpec, value: ValueSpec) -> float | None:
    m = monthly(o, volume, policy)
    if m is None or o.quality is None:
        return None
    return volume * net_value_per_request(o.quality, value, 0.0) - m


# ---- the winner at one volume ------------------------------------------------------------------------------------


def _rank_row(o: Option, volume: int, policy: DecisionSpec, value: ValueSpec | None) -> RankRow:
    """One strategy at one volume; with a value of outcomes, the net value of a request at the measured accuracy
    and at its interval's ends (setup and hosting shared out), and the accuracy below which a request loses money."""
    m = monthly(o, volume, policy)
    misses = missed(o, policy.all_guards(), m)
    row = RankRow(
        strategy=o.name,
        quality=o.quality,
        ci_low=o.ci_low,
        ci_high=o.ci_high,
        monthly_usd=m,
        per_request_usd=o.cost.per_request_usd,
        setup_usd=o.cost.setup_usd,
        p95_s=o.p95_s,
        meets_slo=not misses,
        guards_missed=misses,
    )
    if value is None:
        return row
    row.net_value_month_usd = net_value_month(o, volume, policy, value)
    if m is not None and o.quality is not None:
        cost = m / volume

        def net(acc: float | None) -> float | None:
            return None if acc is None else net_value_per_request(acc, value, cost)

        row.net_value_per_request_usd = net(o.quality)
        row.net_value_ci_usd = [net(o.ci_low), net(o.ci_high)]
        row.break_even_accuracy = break_even_accuracy(value, cost)
    return row


def rank_at(
    options: list[Option], pairs: list[PairedComparison], policy: DecisionSpec, value: ValueSpec | None, volume: int
) -> VolumeVerdict:
    """Winner and ranking at one monthly volume: by net value when the suite prices outcomes, else the best
    quality (and the cheapest of those as good)."""
    rows = [_rank_row(o, volume, policy, value) for o in options]
    meets = {r.strategy: r.meets_slo for r in rows}
    scored = [o for o in options if o.quality is not None]
    eligible = [o for o in scored if meets[o.name]]
    if not scored or not eligible:
        return VolumeVerdict(
            volume=volume,
            winner=None,
            status="undecided",
            ranking=rows,
            why=explain.why_undecided(bool(scored), [g.label for g in policy.all_guards()]),
        )
    if value is not None:
        return _by_value(eligible, rows, pairs, policy, value, volume)
    return _by_quality(eligible, rows, pairs, policy, volume)


def _by_value(
    eligible: list[Option],
    rows: list[RankRow],
    pairs: list[PairedComparison],
    policy: DecisionSpec,
    value: ValueSpec,
    volume: int,
) -> VolumeVerdict:
    cost = {o.name: monthly(o, volume, policy) for o in eligible}
    worth = {o.name: net_value_month(o, volume, policy, value) for o in eligible}

    def worth_of(o: Option) -> float:
        found = worth[o.name]
        return -math.inf if found is None else found

    order = sorted(eligible, key=lambda o: -worth_of(o))
    winner = order[0]
    verdict = VolumeVerdict(
        volume=volume, winner=winner.name, status="decided", ranking=rows, why=explain.why_net_value(worth[winner.name])
    )
    spread = value.correct_usd + value.wrong_usd
    for other in order[1:]:
        pair = find_pair(pairs, winner.name, other.name)
        if pair is None or worth[winner.name] is None or worth[other.name] is None or spread <= 0:
            continue
        # The quality gain at which the winner's extra cost is paid for by better outcomes.
        dearer = {n: math.inf if (c := cost[n]) is None else c for n in (winner.name, other.name)}
        needed = (dearer[winner.name] - dearer[other.name]) / (volume * spread)
        if pair.ci_low is None or pair.ci_low <= needed:
            from harness.verdict.stats import cases_needed

            n_total = cases_needed(pair.diff - needed, pair.sd_diff, alpha=pair.alpha, fixed_var=pair.seed_var)
            verdict.status, verdict.against = "inconclusive", other.name
            verdict.more_cases = None if n_total is None else max(n_total - pair.n, 1)
            verdict.why = explain.why_value_unsettled(winner.name, other.name, pair, needed)
            break
    verdict.ranking = sorted(
        rows,
        key=lambda r: (not r.meets_slo, -(r.net_value_month_usd if r.net_value_month_usd is not None else -math.inf)),
    )
    return verdict


def _by_quality(
    eligible: list[Option], rows: list[RankRow], pairs: list[PairedComparison], policy: DecisionSpec, volume: int
) -> VolumeVerdict:
    cost = {o.name: monthly(o, volume, policy) for o in eligible}

    def dearer(x: str) -> float:
        found = cost[x]
        return math.inf if found is None else found

    best = max(eligible, key=lambda o: (o.quality or 0.0, -dearer(o.name)))
    rel = {o.name: relation(find_pair(pairs, best.name, o.name), policy.min_gain) for o in eligible if o is not best}
    contenders = [best] + [o for o in eligible if rel.get(o.name) == "equivalent"]
    winner = min(contenders, key=lambda o: (dearer(o.name), -(o.quality or 0.0)))

    def could_be_better(o: Option) -> bool:  # the interval leaves room for o beating the best by min_gain
        pair = find_pair(pairs, best.name, o.name)
        return pair is None or pair.ci_low is None or pair.ci_low <= -policy.min_gain + EPS

    def could_be_as_good_and_cheaper(o: Option) -> bool:
        return cost[o.name] is None or cost[winner.name] is None or dearer(o.name) < dearer(winner.name)

    unsure = [
        o
        for o in eligible
        if rel.get(o.name) == "inconclusive" and (could_be_as_good_and_cheaper(o) or could_be_better(o))
    ]
    verdict = VolumeVerdict(
        volume=volume,
        winner=winner.name,
        status="decided",
        ranking=rows,
        why=explain.why_best(
            best.name, winner.name, len(contenders), policy.min_gain, cost[winner.name], cost[best.name]
        ),
    )
    if unsure:
        # the comparison that needs the most cases is the one that keeps the decision open longest
        other = max(unsure, key=lambda o: (more_cases(find_pair(pairs, best.name, o.name)) or 0, -dearer(o.name)))
        pair = find_pair(pairs, best.name, other.name)
        verdict.status, verdict.against, verdict.more_cases = "inconclusive", other.name, more_cases(pair)
        verdict.why = explain.why_quality_unsettled(
            best.name, other.name, pair, could_be_as_good_and_cheaper(other), policy.min_gain
        )
    ranked = sorted(eligible, key=lambda o: (o is not winner, -(o.quality or 0.0), dearer(o.name)))
    order = [o.name for o in ranked] + [r.strategy for r in rows if r.strategy not in {o.name for o in ranked}]
    verdict.ranking = sorted(rows, key=lambda r: order.index(r.strategy))
    return verdict


# ---- fine-tuning against each alternative ------------------------------------------------------------------------


def _whole(x: float | None) -> int | None:
    """A count of requests as every view shows it: rounded up once, here, and at least one."""
    return None if x is None else max(1, math.ceil(x))


def finetune_against(
    f: Option, a: Option, pairs: list[PairedComparison], policy: DecisionSpec, value: ValueSpec | None
) -> FinetuneVerdict:
    """Fine-tune `f` against alternative `a`: the quality relation, the saving per request, when the extra setup is
    paid back, and the outcome with its reason."""
    pair = find_pair(pairs, f.name, a.name)
    rel = relation(pair, policy.min_gain)
    cf, ca = f.cost.per_request_usd, a.cost.per_request_usd
    saving = None if cf is None or ca is None else ca - cf
    extra = f.cost.setup_usd - a.cost.setup_usd
    at = []
    for v in policy.volumes:
        mf, ma = monthly(f, v, policy), monthly(a, v, policy)
        # months until the extra setup is paid back by the monthly saving (hosting included)
        running = (
            None
            if mf is None or ma is None
            else ((ma - a.cost.setup_usd / policy.horizon_months) - (mf - f.cost.setup_usd / policy.horizon_months))
        )
        at.append(
            FinetuneAtVolume(
                volume=v,
                finetune_monthly_usd=mf,
                alternative_monthly_usd=ma,
                monthly_saving_usd=None if mf is None or ma is None else ma - mf,
                payback_months=None if running is None or running <= 0 else max(extra, 0) / running,
            )
        )
    payback = payback_requests(extra, saving) if saving is not None else None
    verdict = FinetuneVerdict(
        strategy=f.name,
        against=a.name,
        relation=rel,
        pair=pair,
        saving_per_request_usd=saving,
        extra_setup_usd=extra,
        payback_requests=_whole(payback),
        break_even_monthly_volume=_whole(
            break_even_volume(f.cost, a.cost, policy.horizon_months, dedicated=policy.dedicated_hosting)
        ),
        at_volume=at,
        outcome=_outcome(rel, saving, at),
        reason="",
    )
    if rel == "inconclusive":
        verdict.more_cases_needed = more_cases(pair)
    verdict.reason = explain.finetune_reason(verdict, cf, ca, policy, value)
    if f.under_trained and verdict.outcome in UNDER_TRAINED_LOSSES:
        # it lost, tied or did not pay as trained, yet it was still improving: a provisional verdict, never a quiet loss
        verdict.under_trained = True
        verdict.grid_edge = list(f.grid_edge)
        if f.training_usd is not None:
            verdict.more_training_usd = f.training_usd  # as many epochs again cost what these did
        verdict.reason = explain.under_trained_reason(verdict, f.epochs, f.grid_edge)
        verdict.outcome = "under_trained"
    return verdict


UNDER_TRAINED_LOSSES = {"never", "not_needed", "worse_but_cheaper", "inconclusive"}


def _outcome(rel: Relation, saving: float | None, at: list[FinetuneAtVolume]) -> Outcome:
    cheaper_at_volume = all(x.monthly_saving_usd is not None and x.monthly_saving_usd >= 0 for x in at)
    if saving is None:
        return "unknown_cost"
    if rel == "inconclusive":
        return "inconclusive"
    if rel == "better":
        return "pays_off" if cheaper_at_volume else "better_at_a_price"
    if saving <= 0:
        return "never"
    if rel == "worse":
        return "worse_but_cheaper"
    return "pays_off" if cheaper_at_volume else "not_needed"


# ---- the whole decision ------------------------------------------------------------------------------------------


def decide(
    options: list[Option],
    pairs: list[PairedComparison],
    policy: DecisionSpec,
    *,
    metric: str,
    value: ValueSpec | None = None,
    prices: PriceSheetInfo | None = None,
) -> Decision:
    by_volume = [rank_at(options, pairs, policy, value, v) for v in policy.volumes]
    finetune = [
        finetune_against(f, a, pairs, policy, value)
        for f in options
        if f.kind == "finetune" and f.quality is not None
        for a in options
        if a.kind != "finetune" and a.quality is not None
    ]
    decision = Decision(
        status="undecided",
        verdict="",
        winner=None,
        metric=metric,
        policy=policy,
        by_volume=by_volume,
        finetune=finetune,
        prices=prices,
        pairs=pairs,
    )
    explain.explain(decision, options, value)
    return decision


def decide_run(
    suite: Suite, summaries: dict[str, StrategySummary], pairs: list[PairedComparison], *, prices: PriceSheetInfo | None
) -> Decision | None:
    """The suite's decision policy applied to a run's summaries and paired comparisons: what `harness compare`
    stores in run.json."""
    if not summaries:
        return None
    policy = suite.decision or DecisionSpec()
    options = options_from_summaries(
        summaries,
        {s.name: s.kind for s in suite.strategies},
        suite.primary_metric,
        policy=policy,
        data=suite.economics.data if suite.economics else None,
    )
    value = suite.economics.value if suite.economics else None
    decision = decide(options, pairs, policy, metric=suite.primary_metric, value=value, prices=prices)
    decision.uncertainty += seed_lines(summaries, suite.primary_metric) + horizon_lines(suite)
    decision.uncertainty += judge_lines(summaries)
    distrust = distrusted_judge(summaries, suite.primary_metric)
    if distrust:
        decision.status, decision.winner = "undecided", None
        for verdict in decision.by_volume:
            verdict.status, verdict.winner = "undecided", None
        decision.verdict = (
            f"Undecided: the decision would rest on {suite.primary_metric}, a model judge's grades, and {distrust}. "
            "Fix: improve the rubric or use a stronger judge, and check it again against the human grades; the "
            "rankings below use the judge's scores as they are."
        )
        return decision
    from harness.verdict.tipping import tipping_points

    decision.tipping = tipping_points(suite, summaries, pairs, decision)
    return decision


def _trusts(summaries: dict[str, StrategySummary], metric: str | None = None):
    for name, s in summaries.items():
        for m, summary in s.metrics.items():
            if summary.judge is not None and (metric is None or m == metric):
                yield name, m, summary.judge


def judge_lines(summaries: dict[str, StrategySummary]) -> list[str]:
    """Each model-graded metric's agreement with the human grades and a pairwise judge's position bias."""
    lines = []
    for name, metric, t in _trusts(summaries):
        if (agreement := agreement_text(t)) is not None:
            lines.append(
                f"{metric} on {name}: the judge agrees with the human grades at {agreement} over {t.n_graded} cases"
                + (f" (min_agreement {t.min_agreement:g})" if t.min_agreement is not None else "")
            )
        if t.position_first_share is not None:
            lines.append(
                f"{metric} on {name}: the judge preferred the answer it saw first in {t.position_first_share:.0%} "
                f"of {t.n_position} decisive replies (50% is unbiased); wins count only when both orders agree"
            )
    return lines


def distrusted_judge(summaries: dict[str, StrategySummary], metric: str) -> str | None:
    """Why the primary metric's judge cannot be relied on (its agreement with humans below `min_agreement`, or no
    human grades to check it against), or None."""
    for name, _, t in _trusts(summaries, metric):
        if t.min_agreement is None:
            continue
        if t.agreement is None and not t.n_graded:
            return f"no case of {name} has a human grade to check the judge against (min_agreement {t.min_agreement:g})"
        if t.agreement is None:
            return (
                f"its agreement with the human grades cannot be measured on {t.n_graded} cases (one of them gives "
                f"every answer the same grade; min_agreement {t.min_agreement:g})"
            )
        if t.agreement < t.min_agreement:
            return (
                f"on {name}'s answers it agrees with the human grades at only {t.agreement:.2f} over {t.n_graded} "
                f"cases, below min_agreement {t.min_agreement:g}"
            )
    return None


def conclude(
    suite: Suite,
    by_strategy: dict[str, list[CaseResult]],
    summaries: dict[str, StrategySummary],
    *,
    binary: dict[str, bool],
    conditional: set[str],
    prices: PriceSheetInfo | None,
) -> tuple[list[PairedComparison], Decision | None, Diagnosis | None]:
    """Every pair of strategies compared on the same cases (Holm-corrected together), the best strategy against
    each other one (run.json's `comparisons`), the decision (both read the same tests), and the diagnosis of why;
    its cautions join the verdict."""
    from harness.verdict.diagnose import diagnose

    policy = suite.decision or DecisionSpec()
    per_case = per_case_scores(by_strategy, suite.primary_metric)
    pairs = pairwise(
        per_case, binary=binary.get(suite.primary_metric, False), confidence=policy.confidence, min_gain=policy.min_gain
    )
    decision = decide_run(suite, summaries, pairs, prices=prices)
    if decision is None:
        return best_against_others(pairs, per_case), None, None
    diagnosis = diagnose(
        suite, by_strategy, summaries, pairs, binary=binary, conditional=conditional, winner=decision.winner
    )
    if diagnosis.cautions:
        decision.verdict += " Caution: " + " ".join(diagnosis.cautions)
    return best_against_others(pairs, per_case), decision, diagnosis
