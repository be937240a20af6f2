"""Answering the test cases of one prepared strategy: build each case's request, plan its call, answer from the
cache or the model through the gateway, score the answer at once, and append its line to cases.jsonl.

A case whose request cannot be built (retrieval failed, say) is recorded as that case's error; the run goes on.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from harness.backends.base import Backend, GenRequest, GenResult
from harness.costs.pricing import Pricing
from harness.costs.tokens import attribute_tokens
from harness.errors import ConfigError
from harness.records.cases import CaseMeta, CaseResult, CaseScore
from harness.run.cache import cache_key
from harness.run.plan import PlannedCall
from harness.scoring.base import Score, Scorer
from harness.suite.data import Case

if TYPE_CHECKING:
    from harness.run.compare import Run
    from harness.strategy import Strategy, StrategyRequest

log = logging.getLogger(__name__)

CHUNK = 1024  # requests handed to a backend at once: enough to sort by length, small enough to bound memory


def score_now(scorers: list[Scorer], answer: str, case: Case, meta: CaseMeta) -> dict[str, CaseScore]:
    """The scores that need no model (model-judged ones come later, in the judge phase)."""
    out = {}
    for scorer in scorers:
        if scorer.deferred:
            continue
        try:
            s = scorer.score_result(answer, case, meta)
        except Exception as exc:  # a scorer failure leaves this case unscored, counted
            s = Score(None, detail={"error": f"{type(exc).__name__}: {exc}"})
        if s is not None:  # None: the scorer does not apply to this strategy (e.g. retrieval metrics)
            out[scorer.name] = CaseScore(value=s.value, invalid=s.invalid, detail=s.detail)
    return out


def result_line(
    strategy: str,
    case: Case,
    repeat: int,
    result: GenResult,
    *,
    meta: CaseMeta,
    hit: bool,
    scores: dict[str, CaseScore],
    parts: dict[str, int] | None = None,
    pricing: Pricing | None = None,
) -> CaseResult:
    """One cases.jsonl line: the answer, its scores, tokens by part, cost (0 for a cache hit) and timing."""
    cost = paid = None
    if pricing is not None:
        cost = (
            0.0
            if hit
            else pricing.call_usd(
                result.input_tokens, result.output_tokens, result.cached_input_tokens, result.compute_s
            )
        )
        paid = cost if pricing.paid else 0.0
    query = meta.retrieval.query_embedding_usd if meta.retrieval else None
    if query:  # an API embedder billed this case's query: part of what the answer cost, paid even on a cache hit
        cost, paid = (cost or 0.0) + query, (paid or 0.0) + query
    return CaseResult(
        strategy=strategy,
        case_id=case.id,
        repeat=repeat,
        input=case.input,
        target=case.target,
        prompt=result.prompt,
        output=result.text,
        error=result.error,
        scores=scores,
        input_tokens=result.input_tokens,
        output_tokens=result.output_tokens,
        cached_input_tokens=result.cached_input_tokens,
        tokens=attribute_tokens(parts, result.input_tokens, result.output_tokens)
        if parts is not None and result.error is None
        else {},
        cost_usd=cost,
        paid_usd=paid or 0.0,
        # A cache hit keeps the busy time its answer took when it was made (production pays it on every
        # request); busy-time totals and latency percentiles count only fresh calls.
        latency_s=result.latency_s,
        latency_kind=result.latency_kind,
        compute_s=result.compute_s,
        batch_size=result.batch_size,
        ttft_s=result.ttft_s,
        cache_hit=hit,
        meta=meta,
        finished_at=datetime.now(timezone.utc),
    )


@dataclass
class PromptTokens:
    """Tokens of each part of a prompt, memoised: instructions and fixed exemplars repeat in every case."""

    memo: dict[tuple[int, str], int] = field(default_factory=dict)

    def count(self, backend: Backend, parts: dict[str, str] | None, messages: list[dict[str, str]]) -> dict[str, int]:
        if parts is None:
            parts = {"input": "\n".join(m["content"] for m in messages)}
        out = {}
        for name, text in parts.items():
            if not text:
                continue
            key = (id(backend), text)
            if key not in self.memo:
                self.memo[key] = backend.count_tokens(text)
            out[name] = self.memo[key]
        return out


def answer_test_cases(run: Run, name: str, strategy: Strategy) -> None:
    """Every (case, repeat) of the test plan this strategy has not finished, in chunks, with progress."""
    todo = run.plan.todo(name)
    run.counts.skipped_finished += len(run.plan.test) * run.plan.repeats - len(todo)
    run.progress.start(name, len(todo))
    try:
        for start in range(0, len(todo), CHUNK):
            _answer_chunk(run, name, strategy, todo[start : start + CHUNK])
    finally:
        run.progress.finish()


def _answer_chunk(run: Run, name: str, strategy: Strategy, chunk: list[tuple[Case, int]]) -> None:
    backend = strategy.backend
    pricing = run.gateway.pricing(backend)
    planned = _plan_calls(run, name, strategy, chunk)

    def record(call: PlannedCall, result: GenResult, hit: bool) -> None:
        scores = (
            score_now(run.scorers, result.text, call.case, call.meta)
            if (result.error is None and result.text is not None)
            else {}
        )
        row = result_line(
            name,
            call.case,
            call.repeat,
            result,
            meta=call.meta,
            hit=hit,
            scores=scores,
            parts=call.parts,
            pricing=pricing,
        )
        run.gateway.paid(row.paid_usd)
        run.cases.append(row)
        run.progress.advance()

    found, groups = run.gateway.lookup(planned)
    for call, result in found:
        record(call, result, True)
        run.counts.cache_hits += 1
    if not groups:
        return
    setup = run.setups[name]
    if setup.load_s is None:  # load the model before the first timed call: load time is not latency
        started = time.perf_counter()
        backend.load()
        setup.load_s = round(time.perf_counter() - started, 3)
    run.progress.advance(run.gateway.send(backend, groups, record))


def _plan_calls(run: Run, name: str, strategy: Strategy, chunk: list[tuple[Case, int]]) -> list[PlannedCall]:
    """One planned call per (case, repeat); the request is built once per case, whatever the repeats (retrieval
    runs once). Stops at the budget: building a request can be billed (an API embedder)."""
    backend = strategy.backend
    identity = backend.identity()
    params = backend.spec.generation
    planned: list[PlannedCall] = []
    built: dict[str, StrategyRequest | Exception] = {}
    for case, repeat in chunk:
        if case.id not in built and run.gateway.spend.room() <= 0:
            held = sum(1 for c, _ in chunk if c.id not in built)
            run.gateway.hold_back(held)
            run.progress.advance(held)
            break
        if case.id not in built:
            try:
                built[case.id] = strategy.request(case)
            except (KeyboardInterrupt, ConfigError):
                raise
            except Exception as exc:  # e.g. retrieval failed for this case: recorded as data, the run goes on
                built[case.id] = exc
        req = built[case.id]
        if isinstance(req, Exception):
            failed = GenResult(text=None, error=f"{name}: building the request failed: {type(req).__name__}: {req}")
            run.cases.append(result_line(name, case, repeat, failed, meta=CaseMeta(), hit=False, scores={}))
            run.counts.errors += 1
            run.progress.advance()
            continue
        gen = GenRequest(req.messages, params)
        planned.append(
            PlannedCall(
                case,
                repeat,
                req.meta,
                gen,
                cache_key(identity, gen, repeat),
                run.tokens.count(backend, req.parts, req.messages),
            )
        )
    return planned
