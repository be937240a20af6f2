"""Every sentence and table of the verdict, in one place: the reasons the decision gives for each volume and each
fine-tune, the verdict and its reasons and uncertainty, decision.md, and the lines `harness compare` prints. The
report's HTML and Markdown build their tables from the same cells, so a number reads the same everywhere."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from harness.costs.money import usd
from harness.records.decision import Decision, Diagnosis, FinetuneVerdict, PairedComparison, RankRow
from harness.records.setup import FineTuneGiven
from harness.records.summary import StrategySummary
from harness.suite.schema import DecisionSpec, ValueSpec

if TYPE_CHECKING:
    from harness.verdict.decide import Option

OUTCOME_WORDS = {
    "under_trained": "is provisional",
    "pays_off": "pays off",
    "never": "never pays off",
    "not_needed": "is not needed",
    "better_at_a_price": "is better at a price",
    "inconclusive": "is inconclusive",
    "worse_but_cheaper": "is worse but cheaper",
    "unknown_cost": "cannot be priced",
}


class _Scored(Protocol):
    quality: float | None
    ci_low: float | None
    ci_high: float | None


# ---- numbers as the verdict writes them --------------------------------------------------------------------------


def requests(x: float | None) -> str:
    """A count of requests: 4,392; 10.9M; never."""
    if x is None:
        return "never"
    if x <= 1:
        return "1"
    if x >= 1e6:
        millions = f"{x / 1e6:,.1f}"
        return (millions[:-2] if millions.endswith(".0") else millions) + "M"
    return f"{math.ceil(x):,}"


def plural(x: float | None) -> str:
    return "" if x is not None and x <= 1 else "s"


def quality(o: _Scored) -> str:
    """0.900 [0.842, 0.938]"""
    if o.quality is None:
        return "no score"
    ci = f" [{o.ci_low:.3f}, {o.ci_high:.3f}]" if o.ci_low is not None and o.ci_high is not None else ""
    return f"{o.quality:.3f}{ci}"


def difference(pair: PairedComparison) -> str:
    """+0.480 [+0.393, +0.560], p=1.5e-19; with several pairs, Holm's p after it: p=0.031 (Holm 0.19). The interval
    and the first p come from the same test, so one excludes 0 exactly when the other is below alpha."""
    ci = f" [{pair.ci_low:+.3f}, {pair.ci_high:+.3f}]" if pair.ci_low is not None and pair.ci_high is not None else ""
    holm = f" (Holm {pair.p_holm:.2g})" if pair.p_holm is not None and pair.pairs > 1 else ""
    return f"{pair.diff:+.3f}{ci}, p={pair.p_value:.2g}{holm}"


def num(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


# ---- why a volume's winner won -----------------------------------------------------------------------------------


def why_undecided(any_scored: bool, guards: Sequence[str]) -> str:
    return "no strategy has a score" if not any_scored else f"no strategy meets the guards ({'; '.join(guards)})"


def why_net_value(worth: float | None) -> str:
    return f"highest net value: {usd(worth)} a month"


def why_value_unsettled(winner: str, other: str, pair: PairedComparison, needed: float) -> str:
    return (
        f"{winner} is worth more than {other} only if its quality lead ({difference(pair)}) exceeds "
        f"{needed:+.3f}, which the interval does not settle"
    )


def why_best(
    best: str, winner: str, contenders: int, min_gain: float, winner_usd: float | None, best_usd: float | None
) -> str:
    if winner == best:
        return "best quality" + ("" if contenders == 1 else ", and cheapest of those as good")
    return (
        f"as good as {best} (within the minimum gain of {min_gain:g}) and cheaper: "
        f"{usd(winner_usd)} against {usd(best_usd)} a month"
    )


def why_quality_unsettled(best: str, other: str, pair: PairedComparison | None, cheaper: bool, min_gain: float) -> str:
    doubt = (
        f"whether {other} (cheaper) is as good"
        if cheaper
        else f"whether {other} is better by the minimum gain of {min_gain:g}"
    )
    lead = difference(pair) if pair else "no paired cases"
    return f"{best} leads {other} by {lead}, which does not settle {doubt}"


# ---- a fine-tune against one alternative -------------------------------------------------------------------------


def finetune_reason(
    v: FinetuneVerdict, cf: float | None, ca: float | None, policy: DecisionSpec, value: ValueSpec | None
) -> str:
    """Why the fine-tune `v.strategy` has its outcome against `v.against`, with the numbers."""
    diff = difference(v.pair) if v.pair else "no paired cases"
    vol = " to ".join(f"{x:,}" for x in policy.volumes) + " requests a month"
    payback, costs = v.payback_requests, f"({usd(cf)} against {usd(ca)})"
    pays_back = f"after {requests(payback)} request{plural(payback)}"
    extra = v.extra_setup_usd
    if v.outcome == "unknown_cost":
        return f"no price for {v.strategy if cf is None else v.against}: costs cannot be compared"
    if v.outcome == "inconclusive":
        n = v.more_cases_needed
        reason = f"quality against {v.against} is not settled ({diff}): " + (
            f"about {n:,} more test cases needed" if n else "more test cases needed"
        )
        if (v.saving_per_request_usd or 0) > 0:
            return (
                reason
                + f"; it is cheaper per request {costs} and would pay back its extra setup {pays_back} if it is as good"
            )
        return reason + f"; it costs more per request {costs}, so only better quality can pay"
    if v.outcome == "better_at_a_price":
        reason = f"better ({diff}) but {usd(-(v.at_volume[0].monthly_saving_usd or 0))} a month dearer at {policy.volumes[0]:,} requests"
        if value is not None and v.pair is not None:
            gain = policy.volumes[0] * v.pair.diff * (value.correct_usd + value.wrong_usd)
            reason += f"; the better answers are worth {usd(gain)} a month"
        return reason
    if v.outcome == "pays_off" and v.relation == "better":
        return f"better ({diff}) and no dearer at {vol}" + (
            f"; pays back its extra setup of {usd(extra)} {pays_back}" if extra > 0 and payback is not None else ""
        )
    if v.outcome == "never":
        return f"costs more per request {costs} and wins nothing on quality ({diff}), so it pays back at no volume"
    if v.outcome == "worse_but_cheaper":
        return f"worse ({diff}) though cheaper per request {costs}"
    if v.outcome == "pays_off":
        months = v.at_volume[0].payback_months
        return (
            f"as good ({diff}) and cheaper per request {costs}: pays back its extra setup of {usd(extra)} {pays_back}"
            + (
                f", within {months:.1f} months at {policy.volumes[0]:,} a month"
                if months is not None and extra > 0
                else ""
            )
        )
    return (
        f"{v.against} is as good ({diff}) and cheaper at {vol}; fine-tuning saves {usd(v.saving_per_request_usd)} "
        f"per request but pays off only from {requests(v.break_even_monthly_volume)} requests a month"
    )


def under_trained_reason(v: FinetuneVerdict, epochs: int, grid_edge: Sequence[str] = ()) -> str:
    """A fine-tune that lost or tied as trained while its dev score was still rising, or whose search's best sits on
    the edge of its grid: provisional, with the price of training it longer (or once more)."""
    cost = usd(v.more_training_usd) if v.more_training_usd is not None else "an unknown amount"
    as_trained = f"As trained, it {OUTCOME_WORDS[v.outcome]}: {v.reason}"
    if not grid_edge:
        more = f"{epochs} more epoch{'s' if epochs != 1 else ''}"
        return (
            f"provisional: {v.strategy} was still improving on dev at its last epoch, so it may lose here only for "
            f"want of training; {more} would cost {cost}. {as_trained}"
        )
    return (
        f"provisional: {v.strategy}'s search found its best on the edge of the grid ({'; '.join(grid_edge)}), so "
        f"a wider search may do better; each more candidate would cost about {cost}. {as_trained}"
    )


# ---- the verdict, its reasons and its uncertainty ----------------------------------------------------------------


def explain(d: Decision, options: Sequence[Option], value: ValueSpec | None) -> None:
    """Fill in the decision's status, winner, verdict, reasons and uncertainty from its numbers."""
    _verdict(d, options)
    by_name = {o.name: o for o in options}
    first = d.by_volume[0]
    d.reasons = [
        _strategy_reason(by_name[row.strategy], row, d.metric, first.volume, d.policy) for row in first.ranking
    ]
    d.reasons += [f"{v.strategy} vs {v.against}: {v.outcome.replace('_', ' ')}: {v.reason}" for v in d.finetune]
    d.uncertainty = _uncertainty(d, value)


def _verdict(d: Decision, options: Sequence[Option]) -> None:
    first = d.by_volume[0]
    winners = {b.winner for b in d.by_volume}
    statuses = {b.status for b in d.by_volume}
    vols = " to ".join(f"{v:,}" for v in d.policy.volumes)
    if "undecided" in statuses:
        d.status = "undecided"
        d.verdict = f"No decision: {first.why or next(b.why for b in d.by_volume if b.status == 'undecided')}."
        return
    if "inconclusive" in statuses:
        b = next(b for b in d.by_volume if b.status == "inconclusive")
        d.status, d.winner = "inconclusive", b.winner
        d.verdict = (
            f"Inconclusive: {b.why}; about {b.more_cases:,} more test cases needed."
            if b.more_cases
            else f"Inconclusive: {b.why}."
        )
    elif len(winners) > 1:
        d.status, d.winner = "decided", first.winner
        d.verdict = (
            "The winner depends on volume: "
            + "; ".join(f"{b.winner} at {b.volume:,} requests a month" for b in d.by_volume)
            + "."
        )
    else:
        d.status, d.winner = "decided", first.winner
        w = next(o for o in options if o.name == d.winner)
        costs = [usd(next(r for r in b.ranking if r.strategy == d.winner).monthly_usd) for b in d.by_volume]
        d.verdict = (
            f"At {vols} requests a month, {d.winner} wins: {d.metric} {quality(w)}, {' to '.join(costs)} "
            f"a month ({first.why})."
        )
    barred = [r for r in first.ranking if r.guards_missed and r.quality is not None]
    if barred:
        d.verdict += " " + " ".join(f"{r.strategy} cannot win: misses {'; '.join(r.guards_missed)}." for r in barred)
    untrained = {v.strategy: v for v in d.finetune if v.under_trained}
    if untrained:
        d.provisional = True
        why = [
            f"{name}'s best setting on the edge of its search grid"
            if v.grid_edge
            else f"{name} still improving on dev when training ended"
            for name, v in sorted(untrained.items())
        ]
        d.verdict = f"Provisional ({'; '.join(why)}): " + d.verdict
    rows: dict[str, list[FinetuneVerdict]] = {}
    for v in d.finetune:
        rows.setdefault(v.strategy, []).append(v)
    for name, found in rows.items():
        if d.winner == name:
            continue
        ref = next((v for v in found if v.against == d.winner), found[0])
        d.verdict += f" Fine-tuning ({name}) against {ref.against} {OUTCOME_WORDS[ref.outcome]}: {ref.reason}."


def _strategy_reason(o: Option, row: RankRow, metric: str, volume: int, policy: DecisionSpec) -> str:
    parts = [f"{metric} {quality(o)}", f"{usd(o.cost.per_request_usd)} per request"]
    if o.cost.setup_usd:
        parts.append(f"{usd(o.cost.setup_usd)} setup")
    if o.cost.hosting_usd_per_hour:
        parts.append(f"{usd(o.cost.hosting_usd_per_hour)}/h hosting")
    parts.append(f"{usd(row.monthly_usd)} a month at {volume:,} requests")
    if row.net_value_month_usd is not None:
        low, high = row.net_value_ci_usd or (None, None)
        ci = f" [{usd(low)}, {usd(high)}]" if low is not None and high is not None else ""
        parts.append(
            f"net value {usd(row.net_value_per_request_usd)} a request{ci}, {usd(row.net_value_month_usd)} a month"
        )
        if row.break_even_accuracy is not None:
            parts.append(f"loses money below {metric} {row.break_even_accuracy:.3f}")
    if o.p95_s is not None:
        parts.append(f"p95 {o.p95_s:.2f} s")
    elif policy.latency_slo_p95_s is not None:
        parts.append("p95 unknown (every answer came from the cache; rerun with --no-cache to measure it)")
    if o.errors:
        parts.append(f"{o.errors} errors (scored as wrong)")
    if row.guards_missed:
        parts.append("cannot win: misses " + "; ".join(row.guards_missed))
    return f"{o.name}: " + ", ".join(parts)


def _too_few(p: PairedComparison) -> str:
    """Said when the exact McNemar test cannot settle anything at this many cases and Holm's level."""
    from harness.verdict.paired import least_disagreements

    needed = least_disagreements(p.alpha / p.pairs)
    if p.test != "mcnemar_exact" or p.n >= needed:
        return ""
    return (
        f" ({p.n} cases are too few for the exact test to settle anything across {p.pairs} pairs: it needs at "
        f"least {needed} cases where the two disagree, all one way)"
    )


def _uncertainty(d: Decision, value: ValueSpec | None) -> list[str]:
    out = []
    for p in d.pairs:
        if p.diff < 0:  # the stronger strategy first
            p = p.flipped()
        if not p.settled:
            n = p.cases_to_decide
            out.append(
                f"{p.a} vs {p.b}: {difference(p)} on {p.n} cases is not settled"
                + (
                    f"; about {max(n - p.n, 1):,} more cases would decide it against the minimum gain of "
                    f"{d.policy.min_gain:g}"
                    if n
                    else (
                        "; seed luck alone is too large for more test cases to decide it: run more seeds"
                        if p.seed_var > 0
                        else ""
                    )
                )
                + _too_few(p)
            )
    mdd = [p.min_detectable_diff for p in d.pairs if p.min_detectable_diff]
    if mdd:
        out.append(
            f"with {max(p.n for p in d.pairs)} test cases, the smallest difference these paired tests "
            f"reliably detect (80% power) is about {min(mdd):.3f} to {max(mdd):.3f}"
        )
    if value is not None:
        out.append(
            f"value of outcomes: a right answer is worth {usd(value.correct_usd)}, a wrong one costs "
            f"{usd(value.wrong_usd)} on average; {d.metric} is taken as the rate of right answers"
        )
    if d.prices:
        out.append(
            f"prices from the price sheet {d.prices.version} of {d.prices.date}"
            + (" with the suite's overrides" if d.prices.overrides is not None else "")
        )
    return out


# ---- tables shared by decision.md, the terminal and the report --------------------------------------------------

RANKING_HEADER = ["strategy", "quality", "95% CI", "per request", "setup", "a month", "p95 s", "meets guards"]
FINETUNE_HEADER = [
    "fine-tune",
    "against",
    "outcome",
    "saving per request",
    "extra setup",
    "payback (requests)",
    "break-even volume / month",
]


def ranking_cells(r: RankRow) -> list[str]:
    ci = f"[{r.ci_low:.3f}, {r.ci_high:.3f}]" if r.ci_low is not None and r.ci_high is not None else ""
    return [
        r.strategy,
        num(r.quality),
        ci,
        usd(r.per_request_usd),
        usd(r.setup_usd),
        usd(r.monthly_usd),
        num(r.p95_s, ".2f"),
        "yes" if r.meets_slo else "no: " + "; ".join(r.guards_missed),
    ]


def finetune_cells(v: FinetuneVerdict) -> list[str]:
    return [
        v.strategy,
        v.against,
        v.outcome.replace("_", " "),
        usd(v.saving_per_request_usd),
        usd(v.extra_setup_usd),
        requests(v.payback_requests),
        requests(v.break_even_monthly_volume),
    ]


def _md(text: str) -> str:
    """Text from a run shown as text in Markdown: no table breaks, no HTML."""
    return str(text).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(_md(c) for c in row) + " |" for row in rows
    ]


def diagnosis_lines(diag: Diagnosis) -> list[str]:
    """The diagnosis as Markdown bullet lines: the pattern, each gain over zero-shot, how answers fail."""
    out = [f"- {diag.sentence}"] if diag.sentence else []
    out += [
        f"- {g.strategy} ({g.kind}) over {g.over}: {difference(g.pair)}" + ("" if g.pair.settled else " (not settled)")
        for g in diag.gains
    ]
    out += [f"- {s}: hit rate {rate:.0%} (a gold passage among those retrieved)" for s, rate in diag.hit_rate.items()]
    for f in diag.failures:
        if f.failed:
            out.append(
                f"- {f.strategy}: {f.failed} of {f.answers} answers fail: {f.format} on form (invalid, empty or "
                f"cut), {f.content} on content, {f.errors} errors"
            )
    return out + [f"- Caution: {c}" for c in diag.cautions]


def render_markdown(d: Decision, *, suite_name: str = "", diagnosis: Diagnosis | None = None) -> str:
    """decision.md: the verdict, the ranking at each volume, fine-tuning against each alternative, the reasons."""
    pol = d.policy
    volume = list(pol.monthly_requests) if isinstance(pol.monthly_requests, tuple) else pol.monthly_requests
    out = [
        f"# Decision{': ' + _md(suite_name) if suite_name else ''}",
        "",
        f"**{_md(d.verdict)}**",
        "",
        f"Policy: primary metric `{d.metric}`, minimum worthwhile gain {pol.min_gain}, confidence "
        f"{pol.confidence}, guards {'; '.join(g.label for g in pol.all_guards()) or 'none'}, volume {volume} requests a month, "
        f"setup spread over {pol.horizon_months} months, "
        f"{'dedicated' if pol.dedicated_hosting else 'pay-per-use'} hosting.",
        "",
    ]
    for b in d.by_volume:
        out += [
            f"## At {b.volume:,} requests a month: {_md(b.winner or 'no winner')} ({b.status})",
            "",
            *_md_table(RANKING_HEADER, [ranking_cells(r) for r in b.ranking]),
            "",
        ]
    if d.finetune:
        out += [
            "## Fine-tuning against each alternative",
            "",
            *_md_table(FINETUNE_HEADER, [finetune_cells(v) for v in d.finetune]),
            "",
        ]
    if diagnosis is not None and (lines := diagnosis_lines(diagnosis)):
        out += ["## Why: knowledge or format", "", *(_md(x) for x in lines), ""]
    for curve in d.learning_curves:
        out += [
            f"## More data: {_md(curve.strategy)}'s learning curve",
            "",
            *_md_table(
                ["train fraction", "examples", curve.metric, "95% CI", "training"],
                [
                    [
                        f"{p.fraction:g}",
                        f"{p.n_examples:,}",
                        num(p.mean),
                        f"[{num(p.ci_low)}, {num(p.ci_high)}]",
                        usd(p.training_usd),
                    ]
                    for p in curve.points
                ],
            ),
            "",
            f"- {_md(curve.more_data.sentence if curve.more_data else curve.fit.reason)}",
            "",
        ]
    if d.tipping:
        out += ["## Where the decision tips", ""] + [f"- {_md(t.sentence)}" for t in d.tipping] + [""]
    out += ["## Reasons", ""] + [f"- {_md(x)}" for x in d.reasons] + [""]
    if d.uncertainty:
        out += ["## Uncertainty", ""] + [f"- {_md(x)}" for x in d.uncertainty] + [""]
    return "\n".join(out)


def decision_lines(d: Decision | None, strategies: dict[str, StrategySummary]) -> list[str]:
    """The verdict, fine-tuning against each alternative, and each strategy's costs, as the terminal shows them."""
    if not d:
        return []
    lines = [f"decision: {d.verdict}"]
    lines += [f"  {v.strategy} vs {v.against}: {v.outcome.replace('_', ' ')}: {v.reason}" for v in d.finetune]
    lines += [f"  more data: {c.more_data.sentence}" for c in d.learning_curves if c.more_data]
    lines += [f"  tips: {t.sentence}" for t in d.tipping if t.low is not None or t.high is not None]
    costs = []
    for s in strategies.values():
        c = s.cost
        if c is None or c.per_request_usd is None:
            continue
        parts = [f"{usd(c.per_request_usd * 1000)} per 1,000 requests"]
        if c.setup_usd:
            parts.append(f"{usd(c.setup_usd)} setup")
        if c.hosting_usd_per_hour:
            parts.append(f"{usd(c.hosting_usd_per_hour)}/h hosting")
        if c.evaluation_usd:
            parts.append(f"{usd(c.evaluation_usd)} judging (evaluation only)")
        costs.append(f"  {s.strategy}: " + ", ".join(parts) + f" [{c.pricing.basis}]")
    return lines + (["costs:", *costs] if costs else [])


def training_summary(given: FineTuneGiven) -> str:
    """One line on a fine-tune: its tuner, epochs, the checkpoint chosen (and on what), time and cost, and its
    search when it had one."""
    chosen, stats = given.chosen, given.training
    cost = next((c.usd for c in given.setup_costs if c.what == "training"), None)
    rising = " (dev score still rising at the last epoch)" if given.dev_still_rising_at_last_epoch else ""
    line = (
        f"tuner {given.tuner}, {given.epochs_trained} epochs; chosen: epoch {chosen.epoch:g} (step {chosen.step}, "
        f"dev score {num(chosen.dev_score)}, on {chosen.on}){rising}; training {stats.wall_s:.0f} s on "
        f"{stats.device}, cost {usd(cost)}"
    )
    stop = given.early_stopping
    if stop is not None:
        stopped = sum(c.stopped_early for c in given.search)
        line += (
            f"; epochs: auto (patience {stop.patience}, at most {stop.max_epochs}): "
            f"{stopped} of {len(given.search)} training(s) stopped early"
        )
    if len(given.search) > 1:
        search = next((c.usd for c in given.setup_costs if c.what == "search"), None)
        best = next(c for c in given.search if c.chosen)
        tried = ", ".join(
            f"{' '.join(f'{k}={v}' for k, v in c.values.items())}: {num(c.best_dev_score)}" for c in given.search
        )
        line += (
            f"; search over {len(given.search)} candidates on dev ({tried}), chosen "
            f"{' '.join(f'{k}={v}' for k, v in best.values.items())}; the other trainings cost {usd(search)}"
        )
    if given.grid_edge:
        line += "; best on the grid's edge: " + "; ".join(given.grid_edge)
    return line
