"""The decision: the suite's policy applied to the measured quality, costs and latency.

Plain functions over plain inputs, so the report recomputes a what-if (another volume, other prices, a dearer GPU)
with exactly the code the run used:

- `pairwise(...)`: every pair of strategies compared on the same cases (paired test, CI, Holm across the pairs).
- `relation(...)`: for one pair, better / worse / equivalent / inconclusive against the minimum worthwhile gain.
- `decide(options, pairs, policy, value)`: the winner at each volume, the ranking, fine-tuning against each
  alternative (payback requests, break-even volume, "never", "not needed", "inconclusive: about N more cases"),
  and the reasons with their numbers.
- `render_markdown(decision)`: decision.md.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from harness.costs.prices import (
    CostModel,
    break_even_accuracy,
    break_even_volume,
    net_value_per_request,
    payback_requests,
)
from harness.verdict.stats import adjust, cases_needed, cases_to_decide, compare_paired
from harness.suite.schema import DecisionSpec, ValueSpec

Relation = Literal["better", "worse", "equivalent", "inconclusive"]
EPS = 1e-9  # a difference computed from counts may miss the gain by a rounding error


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


def options_from_summaries(summaries: dict[str, Any], kinds: dict[str, str], metric: str) -> list[Option]:
    """Options from run.json's strategy summaries (`StrategySummary`), as the run decided and as a report's what-if
    recomputes with changed costs."""
    options = []
    for name, s in summaries.items():
        m = s.metrics.get(metric)
        c = s.cost
        cost = CostModel(per_request_usd=c.per_request_usd if c else None, setup_usd=c.setup_usd if c else 0.0,
                         hosting_usd_per_hour=c.hosting_usd_per_hour if c else 0.0,
                         busy_s_per_request=c.busy_s_per_request if c else None,
                         device_usd_per_hour=c.device_usd_per_hour if c else None)
        options.append(Option(name=name, kind=kinds.get(name, ""), quality=m.mean if m else None,
                              ci_low=m.ci_low if m else None, ci_high=m.ci_high if m else None, n=m.n if m else 0,
                              cost=cost, p95_s=s.latency.p95_s, errors=s.n_errors))
    return options


def pairwise(per_case: dict[str, dict[str, float]], *, binary: bool, confidence: float, min_gain: float
             ) -> list[dict[str, Any]]:
    """Every pair (a, b) in order, on the cases both answered, Holm-corrected across all pairs; each with the total
    number of test cases that would decide it against `min_gain` (`cases_to_decide`)."""
    names = [n for n in per_case if per_case[n]]
    found = [compare_paired(a, b, per_case[a], per_case[b], binary=binary, confidence=confidence)
             for i, a in enumerate(names) for b in names[i + 1:]]
    out = []
    for c in adjust(found):
        row = c.as_dict()
        # Holm's first step tests at alpha / (number of pairs): the cases needed are counted at that level, so
        # "N more cases" is enough whatever the other pairs show (Bonferroni: conservative)
        row["cases_to_decide"] = cases_to_decide(c.diff, c.sd_diff, min_gain, alpha=c.alpha / len(found)) if (
            not c.settled or abs(c.diff) < min_gain) else None
        out.append(row)
    return out


def best_against_others(pairs: list[dict[str, Any]], per_case: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """The strategy with the best mean against each other one (the terminal's and run.json's `comparisons`)."""
    names = [n for n in per_case if per_case[n]]
    if len(names) < 2:
        return []
    means = {n: sum(per_case[n].values()) / len(per_case[n]) for n in names}
    best = max(names, key=lambda n: (means[n], -names.index(n)))
    return [p for p in (find_pair(pairs, best, other) for other in names if other != best) if p is not None]


def find_pair(pairs: list[dict[str, Any]], a: str, b: str) -> dict[str, Any] | None:
    """The comparison of a against b (flipped when stored as b against a)."""
    for p in pairs:
        if p["a"] == a and p["b"] == b:
            return p
        if p["a"] == b and p["b"] == a:
            flipped = dict(p, a=a, b=b, diff=-p["diff"], mean_a=p["mean_b"], mean_b=p["mean_a"], wins=p["losses"],
                           losses=p["wins"])
            flipped["ci_low"] = None if p["ci_high"] is None else -p["ci_high"]
            flipped["ci_high"] = None if p["ci_low"] is None else -p["ci_low"]
            return flipped
    return None


def relation(pair: dict[str, Any] | None, min_gain: float) -> Relation:
    """A against B: better or worse by at least `min_gain` and settled by the paired test; equivalent when settled
    below `min_gain` or when the whole interval lies within ±min_gain; otherwise inconclusive."""
    if pair is None or pair["n"] == 0:
        return "inconclusive"
    diff, low, high = pair["diff"], pair["ci_low"], pair["ci_high"]
    if pair["settled"]:
        if diff >= min_gain - EPS:
            return "better"
        if diff <= -min_gain + EPS:
            return "worse"
        return "equivalent"
    if low is not None and high is not None and -min_gain < low and high < min_gain:
        return "equivalent"
    if low is None and diff == 0 and pair["ties"] == pair["n"]:
        return "equivalent"  # identical scores on every case
    return "inconclusive"


def more_cases(pair: dict[str, Any] | None) -> int | None:
    if pair is None or pair.get("cases_to_decide") is None:
        return None
    return max(int(pair["cases_to_decide"]) - int(pair["n"]), 1)


@dataclass
class Decision:
    status: Literal["decided", "inconclusive", "undecided"]
    verdict: str
    winner: str | None
    metric: str
    policy: dict[str, Any]
    by_volume: list[dict[str, Any]] = field(default_factory=list)
    finetune: list[dict[str, Any]] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    uncertainty: list[str] = field(default_factory=list)
    prices: dict[str, Any] = field(default_factory=dict)
    pairs: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def usd(x: float | None) -> str:
    """Dollars as the decision writes them: $1,241, $2.31, $0.024, $0.0000048."""
    if x is None:
        return "unknown"
    if x == 0:
        return "$0"
    if abs(x) >= 100:
        return f"${x:,.0f}"
    if abs(x) >= 1:
        return f"${x:,.2f}"
    if abs(x) >= 0.01:
        return f"${x:.3f}"
    import numpy as np

    return "$" + np.format_float_positional(x, precision=2, unique=True, fractional=False, trim="-")


def _count(x: float | None) -> str:
    if x is None:
        return "never"
    if x <= 1:
        return "1"
    if x >= 1e6:
        return f"{x / 1e6:,.1f}M"
    return f"{math.ceil(x):,}"


def _q(o: Option) -> str:
    if o.quality is None:
        return "no score"
    ci = f" [{o.ci_low:.3f}, {o.ci_high:.3f}]" if o.ci_low is not None and o.ci_high is not None else ""
    return f"{o.quality:.3f}{ci}"


def _diff(pair: dict[str, Any]) -> str:
    ci = (f" [{pair['ci_low']:+.3f}, {pair['ci_high']:+.3f}]" if pair.get("ci_low") is not None
          and pair.get("ci_high") is not None else "")
    p = pair["p_holm"] if pair.get("p_holm") is not None else pair["p_value"]
    return f"{pair['diff']:+.3f}{ci}, p={p:.2g}"


def monthly(o: Option, volume: float, policy: DecisionSpec) -> float | None:
    return o.cost.monthly_usd(volume, policy.horizon_months, dedicated=policy.dedicated_hosting)


def net_value_month(o: Option, volume: float, policy: DecisionSpec, value: ValueSpec) -> float | None:
    m = monthly(o, volume, policy)
    if m is None or o.quality is None:
        return None
    return volume * net_value_per_request(o.quality, value, 0.0) - m


def _value_row(o: Option, volume: float, policy: DecisionSpec, value: ValueSpec) -> dict[str, Any]:
    """Net value of one request at the measured accuracy and at its interval's ends (the request's share of setup
    and hosting included), and the accuracy below which a request loses money."""
    m = monthly(o, volume, policy)
    if m is None or o.quality is None:
        return {}
    cost = m / volume

    def net(acc: float | None) -> float | None:
        return None if acc is None else net_value_per_request(acc, value, cost)

    return {"net_value_per_request_usd": net(o.quality), "net_value_ci_usd": [net(o.ci_low), net(o.ci_high)],
            "break_even_accuracy": break_even_accuracy(value, cost)}


def _rank_at(options: list[Option], pairs: list[dict[str, Any]], policy: DecisionSpec, value: ValueSpec | None,
             volume: int) -> dict[str, Any]:
    """Winner and ranking at one monthly volume."""
    slo = policy.latency_slo_p95_s
    rows = []
    for o in options:
        meets = slo is None or o.p95_s is None or o.p95_s <= slo
        m = monthly(o, volume, policy)
        rows.append({"strategy": o.name, "quality": o.quality, "ci_low": o.ci_low, "ci_high": o.ci_high,
                     "monthly_usd": m, "per_request_usd": o.cost.per_request_usd,
                     "setup_usd": o.cost.setup_usd, "p95_s": o.p95_s, "meets_slo": meets,
                     "net_value_month_usd": net_value_month(o, volume, policy, value) if value else None,
                     **(_value_row(o, volume, policy, value) if value else {})})
    scored = [o for o in options if o.quality is not None]
    eligible = [o for o in scored if next(r for r in rows if r["strategy"] == o.name)["meets_slo"]]
    result: dict[str, Any] = {"volume": volume, "winner": None, "status": "undecided", "ranking": rows, "why": ""}
    if not scored:
        result["why"] = "no strategy has a score"
        return result
    if not eligible:
        result["why"] = f"no strategy meets the p95 latency SLO of {slo} s"
        return result
    cost = {o.name: monthly(o, volume, policy) for o in eligible}

    def dearer(x: str) -> float:
        return math.inf if cost[x] is None else cost[x]

    if value is not None:
        worth = {o.name: net_value_month(o, volume, policy, value) for o in eligible}
        order = sorted(eligible, key=lambda o: -(worth[o.name] if worth[o.name] is not None else -math.inf))
        winner = order[0]
        result.update(winner=winner.name, status="decided",
                      why=f"highest net value: {usd(worth[winner.name])} a month")
        spread = value.correct_usd + value.wrong_usd
        for other in order[1:]:
            pair = find_pair(pairs, winner.name, other.name)
            if pair is None or worth[winner.name] is None or worth[other.name] is None or spread <= 0:
                continue
            # The quality gain at which the winner's extra cost is paid for by better outcomes.
            needed = (dearer(winner.name) - dearer(other.name)) / (volume * spread)
            low = pair.get("ci_low")
            if low is None or low <= needed:
                n_total = cases_needed(pair["diff"] - needed, pair["sd_diff"], alpha=pair["alpha"])
                more = None if n_total is None else max(n_total - pair["n"], 1)
                result.update(status="inconclusive", against=other.name, more_cases=more,
                              why=f"{winner.name} is worth more than {other.name} only if its quality lead "
                                  f"({_diff(pair)}) exceeds {needed:+.3f}, which the interval does not settle")
                break
        result["ranking"] = sorted(rows, key=lambda r: (not r["meets_slo"], -(r["net_value_month_usd"]
                                                        if r["net_value_month_usd"] is not None else -math.inf)))
        return result

    best = max(eligible, key=lambda o: (o.quality, -dearer(o.name)))
    rel = {o.name: relation(find_pair(pairs, best.name, o.name), policy.min_gain) for o in eligible if o is not best}
    contenders = [best] + [o for o in eligible if rel.get(o.name) == "equivalent"]
    winner = min(contenders, key=lambda o: (dearer(o.name), -o.quality))
    def could_be_better(o: Option) -> bool:  # the interval leaves room for o beating the best by min_gain
        pair = find_pair(pairs, best.name, o.name)
        return pair is None or pair["ci_low"] is None or pair["ci_low"] <= -policy.min_gain + EPS

    def could_be_as_good_and_cheaper(o: Option) -> bool:
        return cost[o.name] is None or cost[winner.name] is None or dearer(o.name) < dearer(winner.name)

    unsure = [o for o in eligible if rel.get(o.name) == "inconclusive"
              and (could_be_as_good_and_cheaper(o) or could_be_better(o))]
    result["winner"] = winner.name
    result["status"] = "decided"
    if winner is best:
        result["why"] = "best quality" + ("" if len(contenders) == 1 else ", and cheapest of those as good")
    else:
        result["why"] = (f"as good as {best.name} (within the minimum gain of {policy.min_gain:g}) and cheaper: "
                         f"{usd(cost[winner.name])} against {usd(cost[best.name])} a month")
    if unsure:
        # the comparison that needs the most cases is the one that keeps the decision open longest
        other = max(unsure, key=lambda o: (more_cases(find_pair(pairs, best.name, o.name)) or 0, -dearer(o.name)))
        pair = find_pair(pairs, best.name, other.name)
        if could_be_as_good_and_cheaper(other):
            doubt = f"whether {other.name} (cheaper) is as good"
        else:
            doubt = f"whether {other.name} is better by the minimum gain of {policy.min_gain:g}"
        result.update(status="inconclusive", against=other.name, more_cases=more_cases(pair),
                      why=f"{best.name} leads {other.name} by {_diff(pair)}, which does not settle {doubt}")
    ranked = sorted(eligible, key=lambda o: (o is not winner, -o.quality, dearer(o.name)))
    order = [o.name for o in ranked] + [r["strategy"] for r in rows if r["strategy"] not in {o.name for o in ranked}]
    result["ranking"] = sorted(rows, key=lambda r: order.index(r["strategy"]))
    return result


def _finetune_vs(f: Option, a: Option, pairs: list[dict[str, Any]], policy: DecisionSpec, value: ValueSpec | None
                 ) -> dict[str, Any]:
    pair = find_pair(pairs, f.name, a.name)
    rel = relation(pair, policy.min_gain)
    cf, ca = f.cost.per_request_usd, a.cost.per_request_usd
    saving = None if cf is None or ca is None else ca - cf
    extra = f.cost.setup_usd - a.cost.setup_usd
    payback = payback_requests(extra, saving) if saving is not None else None
    volume_be = break_even_volume(f.cost, a.cost, policy.horizon_months, dedicated=policy.dedicated_hosting)
    at = []
    for v in policy.volumes:
        mf, ma = monthly(f, v, policy), monthly(a, v, policy)
        monthly_saving = None if mf is None or ma is None else ma - mf
        # months until the extra setup is paid back by the monthly saving (hosting included)
        running_saving = None
        if mf is not None and ma is not None:
            running_saving = (ma - a.cost.setup_usd / policy.horizon_months) - (mf - f.cost.setup_usd / policy.horizon_months)
        months = None if running_saving is None or running_saving <= 0 else max(extra, 0) / running_saving
        at.append({"volume": v, "finetune_monthly_usd": mf, "alternative_monthly_usd": ma,
                   "monthly_saving_usd": monthly_saving, "payback_months": months})
    row: dict[str, Any] = {
        "strategy": f.name, "against": a.name, "relation": rel, "pair": pair,
        "saving_per_request_usd": saving, "extra_setup_usd": extra, "payback_requests": payback,
        "break_even_monthly_volume": volume_be, "at_volume": at, "more_cases_needed": None,
    }
    cheaper_at_volume = all(x["monthly_saving_usd"] is not None and x["monthly_saving_usd"] >= 0 for x in at)
    diff = _diff(pair) if pair else "no paired cases"
    vol = " to ".join(f"{v:,}" for v in policy.volumes) + " requests a month"
    if saving is None:
        outcome, reason = "unknown_cost", f"no price for {f.name if cf is None else a.name}: costs cannot be compared"
        if rel == "inconclusive":
            row["more_cases_needed"] = more_cases(pair)
    elif rel == "inconclusive":
        outcome = "inconclusive"
        row["more_cases_needed"] = more_cases(pair)
        n = row["more_cases_needed"]
        reason = (f"quality against {a.name} is not settled ({diff}): "
                  + (f"about {n:,} more test cases needed" if n else "more test cases needed"))
        if saving > 0:
            reason += (f"; it is cheaper per request ({usd(cf)} against {usd(ca)}) and would pay back its extra "
                       f"setup after {_count(payback)} request{'' if payback is not None and payback <= 1 else 's'} if it is as good")
        else:
            reason += f"; it costs more per request ({usd(cf)} against {usd(ca)}), so only better quality can pay"
    elif rel == "better":
        if cheaper_at_volume:
            outcome = "pays_off"
            reason = (f"better ({diff}) and no dearer at {vol}"
                      + (f"; pays back its extra setup of {usd(extra)} after {_count(payback)} request{'' if payback is not None and payback <= 1 else 's'}"
                         if extra > 0 and payback is not None else ""))
        else:
            outcome = "better_at_a_price"
            extra_month = -(at[0]["monthly_saving_usd"] or 0)
            reason = f"better ({diff}) but {usd(extra_month)} a month dearer at {policy.volumes[0]:,} requests"
            if value is not None and pair is not None:
                gain = policy.volumes[0] * pair["diff"] * (value.correct_usd + value.wrong_usd)
                reason += f"; the better answers are worth {usd(gain)} a month"
    elif saving <= 0:
        outcome = "never"
        reason = (f"costs more per request ({usd(cf)} against {usd(ca)}) and wins nothing on quality ({diff}), "
                  "so it pays back at no volume")
    elif rel == "worse":
        outcome = "worse_but_cheaper"
        reason = f"worse ({diff}) though cheaper per request ({usd(cf)} against {usd(ca)})"
    elif cheaper_at_volume:
        outcome = "pays_off"
        reason = (f"as good ({diff}) and cheaper per request ({usd(cf)} against {usd(ca)}): pays back its extra "
                  f"setup of {usd(extra)} after {_count(payback)} request{'' if payback is not None and payback <= 1 else 's'}"
                  + (f", within {at[0]['payback_months']:.1f} months at {policy.volumes[0]:,} a month"
                     if at[0]["payback_months"] is not None and extra > 0 else ""))
    else:
        outcome = "not_needed"
        reason = (f"{a.name} is as good ({diff}) and cheaper at {vol}; fine-tuning saves {usd(saving)} per request "
                  f"but pays off only from {_count(volume_be)} requests a month")
    row.update(outcome=outcome, reason=reason)
    return row


def decide(options: list[Option], pairs: list[dict[str, Any]], policy: DecisionSpec, *, metric: str,
           value: ValueSpec | None = None, prices: dict[str, Any] | None = None) -> Decision:
    by_volume = [_rank_at(options, pairs, policy, value, v) for v in policy.volumes]
    finetune = [_finetune_vs(f, a, pairs, policy, value)
                for f in options if f.kind == "finetune" and f.quality is not None
                for a in options if a.kind != "finetune" and a.quality is not None]
    decision = Decision(status="undecided", verdict="", winner=None, metric=metric,
                        policy=policy.model_dump(mode="json"), by_volume=by_volume, finetune=finetune,
                        prices=prices or {}, pairs=pairs)
    _explain(decision, options, policy, value)
    return decision


def _explain(d: Decision, options: list[Option], policy: DecisionSpec, value: ValueSpec | None) -> None:
    first = d.by_volume[0]
    winners = {b["winner"] for b in d.by_volume}
    statuses = {b["status"] for b in d.by_volume}
    vols = " to ".join(f"{v:,}" for v in policy.volumes)
    if "undecided" in statuses:
        d.status = "undecided"
        d.verdict = f"No decision: {first['why'] or next(b['why'] for b in d.by_volume if b['status'] == 'undecided')}."
    elif "inconclusive" in statuses:
        d.status = "inconclusive"
        b = next(b for b in d.by_volume if b["status"] == "inconclusive")
        d.winner = b["winner"]
        more = b.get("more_cases")
        d.verdict = (f"Inconclusive: {b['why']}; about {more:,} more test cases needed." if more
                     else f"Inconclusive: {b['why']}.")
    elif len(winners) > 1:
        d.status = "decided"
        d.winner = d.by_volume[0]["winner"]
        d.verdict = ("The winner depends on volume: " + "; ".join(f"{b['winner']} at {b['volume']:,} requests a month"
                                                                    for b in d.by_volume) + ".")
    else:
        d.status = "decided"
        d.winner = first["winner"]
        w = next(o for o in options if o.name == d.winner)
        costs = [usd(next(r for r in b["ranking"] if r["strategy"] == d.winner)["monthly_usd"]) for b in d.by_volume]
        d.verdict = (f"At {vols} requests a month, {d.winner} wins: {d.metric} {_q(w)}, {' to '.join(costs)} a month "
                     f"({first['why']}).")
    ft_lines = {"pays_off": "pays off", "never": "never pays off", "not_needed": "is not needed",
                "better_at_a_price": "is better at a price", "inconclusive": "is inconclusive",
                "worse_but_cheaper": "is worse but cheaper", "unknown_cost": "cannot be priced"}
    if d.finetune and d.status != "undecided":
        best_alt = {}
        for row in d.finetune:
            best_alt.setdefault(row["strategy"], []).append(row)
        for name, rows in best_alt.items():
            if d.winner == name:
                continue
            ref = next((r for r in rows if r["against"] == d.winner), rows[0])
            d.verdict += f" Fine-tuning ({name}) against {ref['against']} {ft_lines[ref['outcome']]}: {ref['reason']}."
    # reasons: each strategy's numbers, then the pairs that matter, then fine-tuning
    by_name = {o.name: o for o in options}
    for row in first["ranking"]:
        o = by_name[row["strategy"]]
        parts = [f"{d.metric} {_q(o)}", f"{usd(o.cost.per_request_usd)} per request"]
        if o.cost.setup_usd:
            parts.append(f"{usd(o.cost.setup_usd)} setup")
        if o.cost.hosting_usd_per_hour:
            parts.append(f"{usd(o.cost.hosting_usd_per_hour)}/h hosting")
        parts.append(f"{usd(row['monthly_usd'])} a month at {first['volume']:,} requests")
        if row["net_value_month_usd"] is not None:
            low, high = row.get("net_value_ci_usd") or (None, None)
            ci = f" [{usd(low)}, {usd(high)}]" if low is not None and high is not None else ""
            parts.append(f"net value {usd(row['net_value_per_request_usd'])} a request{ci}, "
                         f"{usd(row['net_value_month_usd'])} a month")
            if row.get("break_even_accuracy") is not None:
                parts.append(f"loses money below {d.metric} {row['break_even_accuracy']:.3f}")
        if o.p95_s is not None:
            parts.append(f"p95 {o.p95_s:.2f} s" + ("" if row["meets_slo"] else f" (over the {policy.latency_slo_p95_s} s SLO)"))
        elif policy.latency_slo_p95_s is not None:
            parts.append("p95 unknown (every answer came from the cache; rerun with --no-cache to measure it)")
        if o.errors:
            parts.append(f"{o.errors} errors (scored as wrong)")
        d.reasons.append(f"{o.name}: " + ", ".join(parts))
    for row in d.finetune:
        d.reasons.append(f"{row['strategy']} vs {row['against']}: {row['outcome'].replace('_', ' ')}: {row['reason']}")
    for p in d.pairs:
        if p["diff"] < 0:  # the stronger strategy first
            p = find_pair([p], p["b"], p["a"])
        if not p["settled"]:
            n = p.get("cases_to_decide")
            d.uncertainty.append(
                f"{p['a']} vs {p['b']}: {_diff(p)} on {p['n']} cases is not settled"
                + (f"; about {max(n - p['n'], 1):,} more cases would decide it against the minimum gain of "
                   f"{policy.min_gain:g}" if n else ""))
    mdd = [p["min_detectable_diff"] for p in d.pairs if p.get("min_detectable_diff")]
    if mdd:
        d.uncertainty.append(f"with {max(p['n'] for p in d.pairs)} test cases, the smallest difference these paired "
                             f"tests reliably detect (80% power) is about {min(mdd):.3f} to {max(mdd):.3f}")
    if value is not None:
        d.uncertainty.append(f"value of outcomes: a right answer is worth {usd(value.correct_usd)}, a wrong one costs "
                             f"{usd(value.wrong_usd)} on average; {d.metric} is taken as the rate of right answers")
    if d.prices:
        d.uncertainty.append(f"prices from the price sheet {d.prices.get('version')} of {d.prices.get('date')}"
                             + (" with the suite's overrides" if d.prices.get("overrides") else ""))


def render_markdown(decision: dict[str, Any], *, suite_name: str = "") -> str:
    """decision.md: the verdict, the ranking at each volume, fine-tuning against each alternative, the reasons."""
    d = decision
    out = [f"# Decision{': ' + _md(suite_name) if suite_name else ''}", "", f"**{_md(d['verdict'])}**", ""]
    pol = d["policy"]
    out += [f"Policy: primary metric `{d['metric']}`, minimum worthwhile gain {pol['min_gain']}, confidence "
            f"{pol['confidence']}, p95 latency SLO {pol['latency_slo_p95_s'] or 'none'}, volume "
            f"{pol['monthly_requests']} requests a month, setup spread over {pol['horizon_months']} months, "
            f"{'dedicated' if pol['dedicated_hosting'] else 'pay-per-use'} hosting.", ""]
    for b in d["by_volume"]:
        out += [f"## At {b['volume']:,} requests a month: {_md(b['winner'] or 'no winner')} ({b['status']})", "",
                "| strategy | quality | 95% CI | per request | setup | a month | p95 s | meets SLO |",
                "|---|---|---|---|---|---|---|---|"]
        for r in b["ranking"]:
            ci = f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]" if r["ci_low"] is not None and r["ci_high"] is not None else ""
            quality = "-" if r["quality"] is None else f"{r['quality']:.3f}"
            p95 = "-" if r["p95_s"] is None else f"{r['p95_s']:.2f}"
            out.append(f"| {_md(r['strategy'])} | {quality} | {ci} | {usd(r['per_request_usd'])} | {usd(r['setup_usd'])} "
                       f"| {usd(r['monthly_usd'])} | {p95} | {'yes' if r['meets_slo'] else 'no'} |")
        out.append("")
    if d["finetune"]:
        out += ["## Fine-tuning against each alternative", "",
                "| fine-tune | against | outcome | saving per request | extra setup | payback (requests) | break-even volume / month |",
                "|---|---|---|---|---|---|---|"]
        for r in d["finetune"]:
            out.append(f"| {_md(r['strategy'])} | {_md(r['against'])} | {r['outcome'].replace('_', ' ')} | "
                       f"{usd(r['saving_per_request_usd'])} | {usd(r['extra_setup_usd'])} | {_count(r['payback_requests'])} | "
                       f"{_count(r['break_even_monthly_volume'])} |")
        out.append("")
    out += ["## Reasons", ""] + [f"- {_md(x)}" for x in d["reasons"]] + [""]
    if d["uncertainty"]:
        out += ["## Uncertainty", ""] + [f"- {_md(x)}" for x in d["uncertainty"]] + [""]
    return "\n".join(out)


def _md(text: str) -> str:
    """Text from a run shown as text in Markdown: no table breaks, no HTML."""
    return str(text).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def decide_suite(suite, summaries: dict[str, Any], pairs: list[dict[str, Any]], *, prices: dict[str, Any]
                 ) -> dict[str, Any] | None:
    """The suite's decision policy applied to a run's summaries and paired comparisons: what `harness compare`
    stores in run.json."""
    if not summaries:
        return None
    options = options_from_summaries(summaries, {s.name: s.kind for s in suite.strategies}, suite.primary_metric)
    value = suite.economics.value if suite.economics else None
    return decide(options, pairs, suite.decision or DecisionSpec(), metric=suite.primary_metric, value=value,
                  prices=prices).as_dict()


@dataclass
class WhatIf:
    """Changes to a finished run's economics; None keeps the run's own figure."""

    monthly_requests: int | tuple[int, int] | None = None
    horizon_months: int | None = None
    price_scale: float | None = None  # token prices x this (e.g. 0.5 for a provider's price cut)
    usd_per_hour: float | None = None  # local devices' $/hour, in place of what the run used
    training_usd: float | None = None  # each fine-tune's training cost, in place of what the run measured


def what_if(record: Any, change: WhatIf | None = None) -> tuple[Decision, list[Option]]:
    """The run's decision recomputed from its run.json (`harness.run.folder.RunRecord`) with changed volume, prices,
    $/hour, training cost or horizon: the same functions the run used, over the same paired comparisons.
    Returns the decision and the options (strategies with their changed costs) it was made from."""
    change = change or WhatIf()
    import copy

    from harness.suite.schema import DecisionSpec, Suite

    suite = Suite.model_validate(record.suite)
    kinds = {s.name: s.kind for s in suite.strategies}
    options = options_from_summaries(record.strategies, kinds, record.primary_metric)
    for option in options:
        summary = record.strategies[option.name]
        cost = copy.copy(option.cost)
        kind = (summary.cost.pricing.get("kind") if summary.cost else None)
        if change.price_scale is not None and kind == "tokens" and cost.per_request_usd is not None:
            cost.per_request_usd *= change.price_scale
        if change.usd_per_hour is not None and kind == "device_hours" and cost.busy_s_per_request is not None:
            old_rate = cost.device_usd_per_hour
            cost.per_request_usd = cost.busy_s_per_request / 3600 * change.usd_per_hour
            cost.device_usd_per_hour = change.usd_per_hour
            if old_rate:  # setup measured in device time (training, indexing, dev answers) at the new rate too
                timed = sum(i["usd"] for i in summary.cost.setup_items
                            if str(i.get("basis", "")).startswith(("device hours", "busy time")))
                cost.setup_usd += timed * (change.usd_per_hour / old_rate - 1)
        if change.training_usd is not None and summary.cost:
            trained = sum(i["usd"] for i in summary.cost.setup_items if i["what"] == "training")
            if any(i["what"] == "training" for i in summary.cost.setup_items):
                cost.setup_usd = cost.setup_usd - trained + change.training_usd
        option.cost = cost
    policy = (suite.decision or DecisionSpec()).model_copy()
    if change.monthly_requests is not None:
        policy = DecisionSpec.model_validate({**policy.model_dump(), "monthly_requests": change.monthly_requests})
    if change.horizon_months is not None:
        policy = DecisionSpec.model_validate({**policy.model_dump(), "horizon_months": change.horizon_months})
    value = suite.economics.value if suite.economics else None
    pairs = (record.decision or {}).get("pairs", [])
    return decide(options, pairs, policy, metric=record.primary_metric, value=value, prices=record.prices), options
