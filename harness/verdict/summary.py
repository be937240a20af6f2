"""Aggregates results: means with 95% CIs (Wilson for 0/1 scores, bootstrap otherwise), error and unscored
counts, latency percentiles without cache hits, tokens and throughput. Plain functions, reused by reports."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable

import numpy as np

from harness.run.folder import CaseResult, LatencySummary, MetricSummary, RetrievalSummary, StrategyCost, StrategySummary

CONFIDENCE = 0.95
# BCa needs a jackknife over all n cases (O(n^2) work); above this size the percentile interval is as good.
BCA_MAX_N = 2000


def latest(results: Iterable[CaseResult]) -> dict[tuple[str, str, int], CaseResult]:
    """The last line per (strategy, case, repeat): a retried case supersedes its earlier error."""
    out: dict[tuple[str, str, int], CaseResult] = {}
    for r in results:
        out[r.key] = r
    return out


def wilson(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
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
    res = bootstrap((values,), np.mean, confidence_level=confidence, n_resamples=2000, method=method, batch=200,
                    random_state=np.random.default_rng(seed))
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if math.isnan(low) or math.isnan(high):  # BCa can fail on very skewed data; fall back to percentiles
        res = bootstrap((values,), np.mean, confidence_level=confidence, n_resamples=2000, method="percentile",
                        random_state=np.random.default_rng(seed))
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return (low, high)


def per_case_values(rows: list[CaseResult], metric: str) -> tuple[dict[str, list[float]], int, int]:
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


def summarize_metric(rows: list[CaseResult], metric: str, *, binary: bool) -> MetricSummary:
    values, unscored, invalid, scored = per_case_values(rows, metric)
    case_means = np.array([v[0] if len(v) == 1 else sum(v) / len(v) for v in values.values()], dtype=float)
    n = len(case_means)
    if n == 0:
        return MetricSummary(mean=None, ci_low=None, ci_high=None, ci_method="none", n=0,
                             n_scored=0, n_unscored=unscored, n_invalid=invalid)
    one_draw = all(len(v) == 1 for v in values.values())
    if binary and np.all((case_means == 0) | (case_means == 1)):
        low, high = wilson(int(case_means.sum()), n)
        method = "wilson"
    else:
        low, high = bootstrap_ci(case_means)
        method = ("bootstrap_bca" if n <= BCA_MAX_N else "bootstrap_percentile") + (
            "" if one_draw else " (cases resampled, repeats averaged)")
        if binary and math.isnan(low):  # 0/1 scores averaged over repeats, all equal: Wilson on the pooled rate
            low, high = wilson(round(float(case_means.mean()) * n), n)
            method = "wilson (pooled over repeats)"
        elif math.isnan(low):
            low = high = None
            method = "none (fewer than 2 distinct values)"
    return MetricSummary(mean=float(case_means.mean()), ci_low=low, ci_high=high, ci_method=method, n=n,
                         n_scored=scored, n_unscored=unscored, n_invalid=invalid)


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
    from harness.costs.prices import TOKEN_PARTS

    ok = [r for r in rows if r.error is None and r.tokens]
    if not ok:
        return {}
    return {part: float(np.mean([r.tokens.get(part, 0) for r in ok])) for part in TOKEN_PARTS
            if any(part in r.tokens for r in ok)}


def summarize_cost(rows: list[CaseResult], setup: dict, pricing, *, tokens: dict[str, float]) -> StrategyCost:
    """A strategy's production cost per request (priced from every answer, cache hits included: production pays
    each request), its one-off setup items, fixed hosting, evaluation (judge) cost, and what this run spent."""
    from harness.costs.prices import token_cost

    ok = [r for r in rows if r.error is None]
    notes: list[str] = []
    per_request = busy = None
    by_part: dict[str, float] = {}
    if pricing.kind == "tokens" and ok:
        price = pricing.price
        per_request = float(np.mean([token_cost(price, r.input_tokens, r.output_tokens, r.cached_input_tokens) for r in ok]))
        in_price, out_price = (price.per_1m("input") or 0) / 1e6, (price.per_1m("output") or 0) / 1e6
        by_part = {k: v * (out_price if k == "output" else in_price) for k, v in tokens.items()}
    elif pricing.kind == "device_hours" and ok:
        timed = [r.compute_s for r in ok if r.compute_s > 0]
        if timed:
            busy = float(np.mean(timed))
            per_request = busy / 3600 * pricing.usd_per_hour
        else:
            notes.append("no busy time measured for these answers")
    elif pricing.kind == "unknown":
        notes.append(pricing.basis)
    queries = [r.meta["retrieval"]["query_embedding_usd"] for r in ok
               if "query_embedding_usd" in (r.meta.get("retrieval") or {})]
    if queries and per_request is not None:  # an API embedder's charge for embedding each query
        per_request += float(np.mean(queries))
        by_part["query_embedding"] = float(np.mean(queries))
    given = setup.get("given") or {}
    items = []
    for what, key in (("training", "training_cost"), ("indexing", "indexing_cost")):
        if given.get(f"{key}_usd") is not None:
            items.append({"what": what, "usd": given[f"{key}_usd"], "basis": given.get(f"{key}_basis", "")})
        elif f"{key}_basis" in given:
            notes.append(f"{what} cost unknown: {given[f'{key}_basis']}")
    dev = setup.get("dev")
    if dev and dev.get("cost_usd"):
        items.append({"what": f"dev answers ({dev.get('answers', dev['calls'])}: choosing settings on dev)", "usd": dev["cost_usd"],
                      "basis": dev.get("cost_basis", "")})
    deployment = given.get("deployment") or {}
    if deployment.get("usd"):
        items.append({"what": f"deployment hosting during the run ({deployment['hosted_s']:.0f} s)",
                      "usd": deployment["usd"], "basis": f"hosted time x {deployment['usd_per_hour']} $/h"})
    hosting = float(given.get("hosting_usd_per_hour") or 0.0)
    if not hosting and pricing.price is not None and pricing.price.finetuned:
        hosting = float(pricing.price.price.hosting_usd_per_hour or 0.0)
    evaluation = sum(e.get("cost_usd") or 0.0 for e in (setup.get("evaluation") or {}).values())
    setup_usd = float(sum(i["usd"] for i in items))
    answered = sum(r.cost_usd or 0.0 for r in rows if not r.cache_hit)
    return StrategyCost(
        pricing=pricing.as_dict(), per_request_usd=per_request, per_request_by_part_usd=by_part,
        busy_s_per_request=busy, device_usd_per_hour=pricing.usd_per_hour, hosting_usd_per_hour=hosting,
        setup_usd=setup_usd, setup_items=items, evaluation_usd=float(evaluation),
        run_usd=float(answered + setup_usd + evaluation), notes=notes,
    )


def latency_summary(lat: np.ndarray, how: str) -> LatencySummary:
    if len(lat) == 0:
        return LatencySummary(n=0, p50_s=None, p95_s=None, p99_s=None, mean_s=None, how=how)
    p50, p95, p99 = (float(x) for x in np.percentile(lat, [50, 95, 99]))
    return LatencySummary(n=len(lat), p50_s=p50, p95_s=p95, p99_s=p99, mean_s=float(lat.mean()), how=how)


def summarize_retrieval(rows: list[CaseResult]) -> RetrievalSummary | None:
    found = [r.meta["retrieval"] for r in rows if r.error is None and r.meta.get("retrieval")]
    if not found:
        return None
    return RetrievalSummary(
        latency=latency_summary(np.array([f["retrieval_s"] for f in found]), "per query, one at a time, measured when "
                                "the prompt was built (cache hits of the answer included: retrieval ran)"),
        context_tokens_mean=float(np.mean([f["context_tokens"] for f in found])),
        contexts_used_mean=float(np.mean([f["used"] for f in found])),
        contexts_dropped_total=int(sum(f["dropped"] for f in found)),
        cases_with_dropped_contexts=sum(f["dropped"] > 0 for f in found),
    )


def summarize_strategy(
    name: str, backend: str, rows: list[CaseResult], *, n_planned: int, binary: dict[str, bool], setup: dict,
    pricing=None,
) -> StrategySummary:
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
        metrics={m: summarize_metric(rows, m, binary=b) for m, b in binary.items()},
        latency=summarize_latency(rows),
        input_tokens_mean=float(np.mean([r.input_tokens for r in ok])) if ok else None,
        output_tokens_mean=float(np.mean([r.output_tokens for r in ok])) if ok else None,
        throughput_output_tok_s=(sum(r.output_tokens for r in fresh) / busy) if busy > 0 else None,
        compute_s_total=busy,
        tokens_mean=tokens,
        setup=setup,
        retrieval=summarize_retrieval(rows),
        cost=summarize_cost(rows, setup, pricing, tokens=tokens) if pricing is not None else None,
    )


def per_case_scores(rows: dict[str, list[CaseResult]], metric: str) -> dict[str, dict[str, float]]:
    """Each strategy's score per case id on `metric` (repeats averaged; errors count as 0)."""
    out = {}
    for name, strategy_rows in rows.items():
        values, *_ = per_case_values(strategy_rows, metric)
        out[name] = {case: sum(v) / len(v) for case, v in values.items()}
    return out
