"""Terminal summary of a run: one table, the counts, and where the files are."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.costs.money import usd
from harness.records.run import RunRecord
from harness.verdict.explain import decision_lines, num
from harness.verdict.seeds import seed_lines


def diagnostics(record: RunRecord) -> list[str]:
    """One line per strategy with the metrics that are not the primary one (retrieval, judges) and retrieval cost."""
    lines = []
    for s in record.strategies.values():
        parts = [
            f"{name} {num(m.mean)}" + (f" ({m.n_unscored} unscored)" if m.n_unscored else "")
            for name, m in s.metrics.items()
            if name != record.primary_metric
        ]
        if s.retrieval:
            r = s.retrieval
            parts.append(
                f"retrieval p50 {num(r.latency.p50_s and r.latency.p50_s * 1000, '.0f')} ms, "
                f"{num(r.context_tokens_mean, '.0f')} context tokens"
                + (f", {r.contexts_dropped_total} passages dropped to fit" if r.contexts_dropped_total else "")
            )
        if parts:
            lines.append(f"  {s.strategy}: " + "; ".join(parts))
    return lines + [f"  {line}" for line in seed_lines(record.strategies, record.primary_metric)]


def comparison_lines(record: RunRecord) -> list[str]:
    """The best strategy against each other one: the paired difference, its interval and whether it is settled."""
    if not record.comparisons:
        return []
    confidence = round(100 * (1 - record.comparisons[0].alpha))
    lines = [
        f"paired on the same cases ({record.primary_metric}, {confidence}% CI and p of the same test; settled "
        "after Holm's correction over all pairs):"
    ]
    for c in record.comparisons:
        ci = f"[{num(c.ci_low, '+.3f')}, {num(c.ci_high, '+.3f')}]"
        verdict = (
            "settled"
            if c.settled
            else (f"not settled: about {c.cases_needed} cases would settle it" if c.cases_needed else "not settled")
        )
        lines.append(
            f"  {c.a} vs {c.b}: {c.diff:+.3f} {ci}, better on {c.wins}, worse on {c.losses}, "
            f"p={num(c.p_value, '.2g')} (Holm {num(c.p_holm, '.2g')}, {c.test}); {verdict}"
        )
    return lines


COLUMNS = ("95% CI", "errors", "invalid", "unscored", "p50 s", "p95 s", "in tok", "out tok", "out tok/s")


def results_table(record: RunRecord) -> Any:
    """One row per strategy: the primary metric with its interval, errors, latency and tokens (a rich Table)."""
    from rich.table import Table

    metric, repeats = record.primary_metric, record.options.repeats
    seeds = {spec.name: spec.seeds for spec in record.suite.strategies}
    n_cases = max((s.n_planned // (repeats * seeds.get(s.strategy, 1)) for s in record.strategies.values()), default=0)
    per = f" x {repeats} repeats" if repeats > 1 else ""
    table = Table(title=f"{record.suite_name}: {metric} on {n_cases} test cases{per} (95% CI)")
    table.add_column("strategy", justify="left")
    for col in (metric, *COLUMNS):
        table.add_column(col, justify="right")
    for s in record.strategies.values():
        m = s.metrics.get(metric)
        table.add_row(
            s.strategy + (f" ({seeds[s.strategy]} seeds)" if seeds.get(s.strategy, 1) > 1 else ""),
            num(m.mean if m else None),
            f"[{num(m.ci_low)}, {num(m.ci_high)}]" if m else "-",
            f"{s.n_errors}/{s.n_done}",
            str(m.n_invalid) if m else "-",
            str(m.n_unscored) if m else "-",
            num(s.latency.p50_s, ".2f"),
            num(s.latency.p95_s, ".2f"),
            num(s.input_tokens_mean, ".0f"),
            num(s.output_tokens_mean, ".1f"),
            num(s.throughput_output_tok_s, ".1f"),
        )
    return table


def status_lines(record: RunRecord, run_dir: Path) -> list[str]:
    """What this invocation did, whether the plan is finished, the budget, and where the files are."""
    counts = record.options.counts
    lines = [
        f"status: {record.status}; model calls: {counts.model_calls}, cache hits: {counts.cache_hits}, "
        f"already finished: {counts.skipped_finished}, errors: {counts.errors}"
        + (f", judge calls: {counts.judge_calls}" if counts.judge_calls else "")
    ]
    if record.status == "incomplete":
        least = min(record.strategies.values(), key=lambda s: s.n_done / max(s.n_planned, 1))
        lines.append(
            f"incomplete: {least.n_done} of {least.n_planned} planned answers of {least.strategy} are done; "
            "rerun without --limit to finish (finished cases are kept)."
        )
    budget = record.budget
    if budget.budget_usd is not None:
        skipped = sum(budget.skipped.values())
        lines.append(
            f"budget: {usd(budget.paid_usd)} paid of {usd(budget.budget_usd)}"
            + (
                f"; {skipped} paid calls not made at the cap (rerun with a larger budget_usd to make them)"
                if skipped
                else ""
            )
        )
    files = "run.json, cases.jsonl" + (", decision.md" if (run_dir / "decision.md").exists() else "")
    return [*lines, f"run folder: {run_dir} ({files})"]


def print_summary(record: RunRecord, run_dir: Path) -> None:
    """The run's table and lines on stdout (a wide console when it is not a terminal, so CI logs keep rows whole)."""
    import sys

    from rich.console import Console

    console = Console() if sys.stdout.isatty() else Console(width=160)
    console.print(results_table(record))
    for line in [*diagnostics(record), *comparison_lines(record)]:
        console.print(line, highlight=False)
    why = [f"why: {record.diagnosis.sentence}"] if record.diagnosis and record.diagnosis.sentence else []
    for line in [*decision_lines(record.decision, record.strategies), *why, *status_lines(record, run_dir)]:
        console.print(line, highlight=False, markup=False)
