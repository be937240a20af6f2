"""Summarising a run: per strategy, means with 95% CIs (Wilson for 0/1 scores, bootstrap otherwise), error and
unscored counts, latency percentiles without cache hits, tokens, retrieval and cost. Pure functions of what the run
folder holds (its suite, cases.jsonl and each strategy's setup), so a report or a rerun gets the same numbers."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable

import numpy as np

from harness.costs.pricing import Pricing, pricing_of, pricing_of_spec, setup_usd, strategy_cost
from harness.costs.tokens import TOKEN_PARTS
from harness.records.cases import CaseResult
from harness.records.setup import StrategySetup
from harness.records.summary import (
    LatencySummary,
    MetricSummary,
    RetrievalSummary,
    SeedResult,
    SeedSpread,
    StrategySummary,
)
from harness.suite.schema import DataPrepSpec, Suite, seed_of
from harness.verdict import seeds
from harness.verdict.scorer_stats import field_scores, judge_trust
from harness.verdict.seeds import CaseScores
from harness.verdict.stats import BCA_MAX_N, CONFIDENCE, bootstrap_ci, wilson


def latest(results: Iterable[CaseResult]) -> dict[tuple[str, str, int], CaseResult]:
    """The last line per (strategy, case, repeat): a retried case supersedes its earlier error."""
    out: dict[tuple[str, str, int], CaseResult] = {}
    for r in results:
        out[r.key] = r
    return out


def per_case_values(rows: list[CaseResult], metric: str) -> tuple[dict[str, list[float]], int, int, int]:
    """Scores per case id (a list over repeats). Errors count as 0; unscored answers are left out and counted."""
    values: dict[str, list[float]] = defaultdict(list)
    unscored = invalid = scored = 0
    for r in rows:
        if r.error is not None:
            values[r.case_id].append(0.0)
            continue
        score = r.scores.get(metric)
        if score is None or score.value is None:
            unscored += 1
            continue
        invalid += int(score.invalid)
        scored += 1
        values[r.case_id].append(score.value)
    return values, unscored, invalid, scored


def case_means(rows: list[CaseResult], metric: str) -> dict[str, float]:
    """The score per case id on `metric`, repeats (and seeds) averaged; errors count as 0."""
    values, *_ = per_case_values(rows, metric)
    return {case: sum(v) / len(v) for case, v in values.items()}


def by_seed(rows: list[CaseResult]) -> dict[str, list[CaseResult]]:
    """A strategy's rows per seed (the name its rows carry: `strategy`, `strategy@seed2`, ...), in seed order."""
    out: dict[str, list[CaseResult]] = defaultdict(list)
    for r in rows:
        out[r.strategy].append(r)
    return dict(sorted(out.items(), key=lambda item: seed_of(item[0])[1]))


def seed_case_means(rows: list[CaseResult], metric: str) -> list[dict[str, float]]:
    """Per seed, the score per case id; empty for a strategy run with one seed (nothing more to say than
    `case_means`)."""
    groups = by_seed(rows) if len({r.strategy for r in rows}) > 1 else {}
    return [case_means(seed_rows, metric) for seed_rows in groups.values()]


def summarize_metric(rows: list[CaseResult], metric: str, *, binary: bool) -> MetricSummary:
    per_seed = seed_case_means(rows, metric)
    if per_seed:
        return _summarize_seeded(rows, metric, per_seed)
    values, unscored, invalid, scored = per_case_values(rows, metric)
    case_means = np.array([v[0] if len(v) == 1 else sum(v) / len(v) for v in values.values()], dtype=float)
    n = len(case_means)
    if n == 0:
        return MetricSummary(
            mean=None,
            ci_low=None,
            ci_high=None,
            ci_method="none",
            n=0,
            n_scored=0,
            n_unscored=unscored,
            n_invalid=invalid,
        )
    one_draw = all(len(v) == 1 for v in values.values())
    low: float | None
    high: float | None
    if binary and np.all((case_means == 0) | (case_means == 1)):
        low, high = wilson(int(case_means.sum()), n)
        method = "wilson"
    else:
        low, high = bootstrap_ci(case_means)
        method = ("bootstrap_bca" if n <= BCA_MAX_N else "bootstrap_percentile") + (
            "" if one_draw else " (cases resampled, repeats averaged)"
        )
        if binary and math.isnan(low or 0.0):  # 0/1 scores averaged over repeats, all equal: Wilson on the pooled rate
            low, high = wilson(round(float(case_means.mean()) * n), n)
            method = "wilson (pooled over repeats)"
        elif math.isnan(low or 0.0):
            low = high = None
            method = "none (fewer than 2 distinct values)"
    return MetricSummary(
        mean=float(case_means.mean()),
        ci_low=low,
        ci_high=high,
        ci_method=method,
        n=n,
        n_scored=scored,
        n_unscored=unscored,
        n_invalid=invalid,
    )


def _summarize_seeded(rows: list[CaseResult], metric: str, per_seed: list[dict[str, float]]) -> MetricSummary:
    """A metric over several seeds: the mean of the per-case means over seeds, its interval from the two-stage
    bootstrap (seeds, then cases)."""
    values, unscored, invalid, scored = per_case_values(rows, metric)
    cases = sorted(values)
    found = seeds.draws(seeds.seed_matrix(per_seed, cases)) if len(cases) >= 2 else np.array([])
    bounds = seeds.interval(found, CONFIDENCE)
    return MetricSummary(
        mean=float(np.mean([sum(v) / len(v) for v in values.values()])) if values else None,
        ci_low=bounds[0] if bounds else None,
        ci_high=bounds[1] if bounds else None,
        ci_method=f"two-stage bootstrap ({len(per_seed)} seeds resampled, then cases)" if bounds else "none",
        n=len(cases),
        n_scored=scored,
        n_unscored=unscored,
        n_invalid=invalid,
    )


def summarize_seeds(
    rows: list[CaseResult], metrics: Iterable[str], setups: dict[str, StrategySetup], base_seed: int
) -> tuple[list[SeedResult], dict[str, SeedSpread]]:
    """Each seed's own scores (and, after the first, its setup), and per metric the spread between seeds; nothing
    for a strategy run with one seed."""
    groups = by_seed(rows)
    if len(groups) < 2:
        return [], {}
    metrics = list(metrics)
    found = []
    for name, seed_rows in groups.items():
        means = {}
        for metric in metrics:
            scores = case_means(seed_rows, metric)
            means[metric] = float(np.mean(list(scores.values()))) if scores else None
        number = seed_of(name)[1]
        found.append(
            SeedResult(
                name=name,
                seed=base_seed + number - 1,
                n_done=len(seed_rows),
                metrics=means,
                setup=setups.get(name) if number > 1 else None,
            )
        )
    spread = {}
    for metric in metrics:
        sd, low, high = seeds.spread([v for s in found if (v := s.metrics[metric]) is not None])
        spread[metric] = SeedSpread(sd=sd, low=low, high=high)
    return found, spread


def summarize_latency(rows: list[CaseResult]) -> LatencySummary:
    fresh = [r for r in rows if not r.cache_hit and r.error is None]
    how = "cache hits excluded"
    if not fresh:  # every answer from the cache: the latency each was measured with when it was made
        fresh = [r for r in rows if r.error is None and r.latency_s]
        how = "every answer came from the response cache: latency as measured when each answer was made"
    lat = np.array([r.latency_s for r in fresh if r.latency_s is not None])
    kinds = sorted({r.latency_kind for r in fresh})
    out = latency_summary(lat, how + "; " + (", ".join(kinds) if kinds else "no calls"))
    ttft = np.array([r.ttft_s for r in fresh if r.ttft_s is not None])
    if len(ttft):
        out.ttft_p50_s, out.ttft_p95_s = (float(x) for x in np.percentile(ttft, [50, 95]))
    return out


def tokens_by_part(rows: list[CaseResult]) -> dict[str, float]:
    """Mean tokens per request by part (instructions, exemplars, context, input, template, output)."""
    ok = [r for r in rows if r.error is None and r.tokens]
    if not ok:
        return {}
    return {
        part: float(np.mean([r.tokens.get(part, 0) for r in ok]))
        for part in TOKEN_PARTS
        if any(part in r.tokens for r in ok)
    }


def latency_summary(lat: np.ndarray, how: str) -> LatencySummary:
    if len(lat) == 0:
        return LatencySummary(n=0, p50_s=None, p95_s=None, p99_s=None, mean_s=None, how=how)
    p50, p95, p99 = (float(x) for x in np.percentile(lat, [50, 95, 99]))
    return LatencySummary(n=len(lat), p50_s=p50, p95_s=p95, p99_s=p99, mean_s=float(lat.mean()), how=how)


def summarize_retrieval(rows: list[CaseResult]) -> RetrievalSummary | None:
    found = [r.meta.retrieval for r in rows if r.error is None and r.meta.retrieval is not None]
    if not found:
        return None
    return RetrievalSummary(
        latency=latency_summary(
            np.array([f.retrieval_s for f in found]),
            "per query, one at a time, measured when "
            "the prompt was built (cache hits of the answer included: retrieval ran)",
        ),
        context_tokens_mean=float(np.mean([f.context_tokens for f in found])),
        contexts_used_mean=float(np.mean([f.used for f in found])),
        contexts_dropped_total=int(sum(f.dropped for f in found)),
        cases_with_dropped_contexts=sum(f.dropped > 0 for f in found),
    )


def summarize_strategy(
    name: str,
    backend: str,
    rows: list[CaseResult],
    setup: StrategySetup,
    *,
    n_planned: int,
    binary: dict[str, bool],
    pricing: Pricing | None = None,
    data: DataPrepSpec | None = None,
) -> StrategySummary:
    """One strategy over its test answers: quality per metric, latency, tokens, retrieval and (with the way its
    calls are priced) cost."""
    ok = [r for r in rows if r.error is None]
    fresh = [r for r in ok if not r.cache_hit]
    busy = sum(r.compute_s for r in fresh)
    tokens = tokens_by_part(rows)
    return StrategySummary(
        strategy=name,
        backend=backend,
        n_planned=n_planned,
        n_done=len(rows),
        n_errors=len(rows) - len(ok),
        n_cache_hits=sum(r.cache_hit for r in rows),
        metrics={m: _with_details(summarize_metric(rows, m, binary=b), rows, m) for m, b in binary.items()},
        latency=summarize_latency(rows),
        input_tokens_mean=float(np.mean([r.input_tokens for r in ok])) if ok else None,
        output_tokens_mean=float(np.mean([r.output_tokens for r in ok])) if ok else None,
        throughput_output_tok_s=(sum(r.output_tokens for r in fresh) / busy) if busy > 0 else None,
        compute_s_total=busy,
        tokens_mean=tokens,
        setup=setup,
        retrieval=summarize_retrieval(rows),
        cost=strategy_cost(rows, setup, pricing, tokens=tokens, data=data) if pricing is not None else None,
    )


def _with_details(summary: MetricSummary, rows: list[CaseResult], metric: str) -> MetricSummary:
    """A metric's summary with what its per-case details add up to (pairs of fields, a judge's trust)."""
    summary.fields = field_scores(rows, metric)
    summary.judge = judge_trust(rows, metric)
    return summary


def test_rows(
    suite: Suite, rows: Iterable[CaseResult], *, test_ids: set[str], names: Iterable[str]
) -> dict[str, list[CaseResult]]:
    """The latest line of each (strategy, case, repeat) on the test plan (every test case, the suite's repeats),
    per strategy (its seeds' lines with it): the strategies with results in the folder, and `names` (this run's)
    even without any."""
    final = latest(rows)
    present = {seed_of(name)[0] for name in [*(k[0] for k in final), *names]}
    seeded = {v.name: spec.name for spec in suite.strategies for v in spec.variants()}
    out: dict[str, list[CaseResult]] = {spec.name: [] for spec in suite.strategies if spec.name in present}
    for k, r in final.items():
        owner = seeded.get(k[0])
        if owner in out and k[1] in test_ids and k[2] < suite.repeats:
            out[owner].append(r)
    return out


def summarize_run(
    suite: Suite,
    by_strategy: dict[str, list[CaseResult]],
    setups: dict[str, StrategySetup],
    *,
    n_cases: int,
    binary: dict[str, bool],
    conditional: set[str],
) -> dict[str, StrategySummary]:
    """Every strategy of `by_strategy` (see `test_rows`), over the full test plan of `n_cases` cases, so a
    `--limit` or `--strategies` rerun never hides earlier work. `binary`: each metric's 0/1-ness; `conditional`:
    metrics that apply only to strategies they scored (retrieval metrics)."""
    out = {}
    for name, rows in by_strategy.items():
        applies = {m: b for m, b in binary.items() if m not in conditional or any(m in r.scores for r in rows)}
        spec = next(s for s in suite.strategies if s.name == name)
        backend = suite.backend_for(spec)
        setup = setups.get(name) or StrategySetup(backend=backend.name)
        pricing = pricing_of(suite, setup.serving) if setup.serving else pricing_of_spec(suite, backend)
        summary = out[name] = summarize_strategy(
            name,
            backend.name,
            rows,
            setup,
            n_planned=n_cases * suite.repeats * spec.seeds,
            binary=applies,
            pricing=pricing,
            data=suite.economics.data if suite.economics else None,
        )
        summary.seeds, summary.seed_spread = summarize_seeds(rows, applies, setups, suite.seed)
        extra = [s.setup for s in summary.seeds if s.setup is not None]
        if summary.cost is not None and extra:  # production trains (or draws) once: the other seeds were measurement
            usd = sum(setup_usd(s) for s in extra)
            summary.cost.run_usd += usd
            summary.cost.notes.append(
                f"setup priced as one seed's; the {len(extra)} other seed(s) cost {usd:.4g} USD more in this run "
                "(in run_usd), to measure the spread between seeds"
            )
    return out


def per_case_scores(rows: dict[str, list[CaseResult]], metric: str) -> dict[str, CaseScores]:
    """Each strategy's score per case id on `metric` (repeats and seeds averaged; errors count as 0), with its
    per-seed scores when it ran several seeds (the paired tests resample them)."""
    return {
        name: CaseScores(case_means(strategy_rows, metric), seed_case_means(strategy_rows, metric))
        for name, strategy_rows in rows.items()
    }
