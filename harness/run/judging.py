"""The judge phase: model-judged scorers (ragas metrics, rubrics, pairwise preferences) over a strategy's finished answers that lack their score,
batched across cases through the gateway, each score appended to cases.jsonl as it comes, and the judges' work
recorded as evaluation cost (never production cost)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING

from harness.errors import BudgetReached
from harness.records.cases import CaseResult, CaseScore
from harness.records.setup import JudgeCounts, JudgeUsage
from harness.scoring.base import JudgedScorer, Score
from harness.scoring.judge import Judge, run_concurrently
from harness.scoring.rubric import Pairwise, self_score
from harness.suite.schema import GenerationParams

if TYPE_CHECKING:
    from harness.run.compare import Run

log = logging.getLogger(__name__)


def judge_answers(run: Run, name: str) -> None:
    """Every deferred scorer over `name`'s answers on the test plan that it has not scored yet. A pairwise scorer
    judges only the answers whose `against` answer exists (the rest wait for the pass after every strategy has
    answered); the `against` strategy itself ties with itself, without a judge call."""
    cases = {c.id: c for c in run.plan.test}
    for scorer in [s for s in run.scorers if isinstance(s, JudgedScorer)]:
        rows = [
            r
            for k, r in run.cases.rows.items()
            if k[0] == name
            and k[1] in cases
            and k[2] < run.plan.repeats
            and r.error is None
            and r.output is not None
            and scorer.name not in r.scores
        ]
        if not isinstance(scorer, Pairwise):
            if rows:
                _judge_with(run, name, scorer, rows)
            continue
        if name == scorer.config.against:
            for r in rows:
                _record(run, r, scorer.name, self_score())
            continue
        others = {}
        for r in rows:
            other = run.cases.rows.get((scorer.config.against, r.case_id, r.repeat))
            if other is not None and other.error is None and other.output is not None:
                others[r.key] = other.output
        rows = [r for r in rows if r.key in others]
        if rows:
            _judge_with(run, name, scorer, rows, others)


def warn_unjudged(run: Run) -> None:
    """After the last pass: a pairwise scorer whose `against` strategy has no answer in the run folder (left out
    with --strategies, or failed) judged nothing; say so rather than leave its scores silently empty."""
    for scorer in run.scorers:
        if isinstance(scorer, Pairwise) and not any(k[0] == scorer.config.against for k in run.cases.rows):
            log.warning(
                "%s: no answers of '%s' in this run folder, so no answer was compared with it. Fix: run '%s' too "
                "(e.g. add it to --strategies).",
                scorer.name,
                scorer.config.against,
                scorer.config.against,
            )


def _record(run: Run, row: CaseResult, metric: str, score: Score) -> None:
    """One score appended to the case's line in cases.jsonl."""
    row = run.cases.rows[row.key]
    entry = CaseScore(value=score.value, invalid=score.invalid, detail=score.detail)
    run.cases.append(row.model_copy(update={"scores": {**row.scores, metric: entry}}))


def _judge_with(run: Run, name: str, scorer: JudgedScorer, rows: list[CaseResult], others: dict | None = None) -> None:
    cfg = scorer.config
    judge = Judge(
        run.backend(cfg.judge),
        run.gateway.ask,
        retries=cfg.retries,
        max_chars=cfg.max_chars,
        max_items=cfg.max_items,
        binary_fields=scorer.binary_fields,
        params=GenerationParams(max_new_tokens=cfg.max_new_tokens, temperature=0.0),
    )
    scorer.prepare(judge)
    cases = {c.id: c for c in run.plan.test}
    run.progress.start(f"{name}: {scorer.name}", len(rows))

    def done(i: int, score: Score | None) -> None:
        run.progress.advance()
        if score is not None:
            _record(run, rows[i], scorer.name, score)

    jobs: list[Callable[[], Awaitable[Score | None]]]
    if isinstance(scorer, Pairwise) and others is not None:
        jobs = [partial(scorer.ascompare, r.output or "", others[r.key], cases[r.case_id]) for r in rows]
    else:
        jobs = [partial(scorer.ascore, r.output or "", cases[r.case_id], r.meta) for r in rows]
    skipped = None
    try:
        run_concurrently(jobs, done)
    except BudgetReached as exc:
        skipped = str(exc)
        log.warning("%s: %s not judged: budget_usd reached (%s)", name, scorer.name, exc)
        run.gateway.spend.skipped[f"{name}: {scorer.name}"] = len(rows)
    finally:
        run.progress.finish()
        evaluation = run.setups[name].evaluation
        earlier = evaluation.get(scorer.name)
        totals = earlier.judge.model_copy() if earlier else JudgeCounts()
        totals.add(judge.counts)
        pricing = run.gateway.pricing(judge.backend)
        cost = pricing.call_usd(totals.input_tokens, totals.output_tokens, 0, totals.compute_s)
        evaluation[scorer.name] = JudgeUsage(
            judge=totals,
            judge_backend=cfg.judge,
            cost_usd=None if cost is None else round(cost, 9),
            cost_basis=pricing.basis,
            paid=pricing.paid,
            skipped=skipped,
        )
        run.counts.judge_calls += judge.counts.calls
