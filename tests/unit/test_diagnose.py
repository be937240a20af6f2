"""Why the verdict came out as it did: knowledge or format, and cautions about what the primary metric rewards."""

from __future__ import annotations

from datetime import datetime, timezone

from harness.records.cases import CaseResult, CaseScore
from harness.records.setup import StrategySetup
from harness.suite.schema import Suite
from harness.verdict.diagnose import diagnose
from harness.verdict.pairs import pairwise
from harness.verdict.summary import per_case_scores, summarize_strategy
from tests.conftest import base_suite

NOW = datetime.now(timezone.utc)
KINDS = {"zero": "zero_shot", "rag": "rag", "ft": "finetune", "few": "few_shot"}


def suite(metric: str = "exact_match", others: tuple[str, ...] = ()) -> Suite:
    data = base_suite()
    data["strategies"] = [{"name": n, "kind": k, "backend": "fake"} for n, k in KINDS.items()]
    data["scorers"] = [{"kind": metric}, *({"kind": o} for o in others)]
    data["backends"][0]["generation"] = {"max_new_tokens": 32}
    return Suite.model_validate(data)


def row(
    strategy: str,
    i: int,
    scores: dict[str, float],
    *,
    output: str = "an answer",
    invalid: bool = False,
    tokens: int = 4,
) -> CaseResult:
    return CaseResult(
        strategy=strategy,
        case_id=f"c{i}",
        repeat=0,
        input="q",
        target="t",
        output=output,
        scores={m: CaseScore(value=v, invalid=invalid and v == 0) for m, v in scores.items()},
        output_tokens=tokens,
        finished_at=NOW,
    )


def run(s: Suite, by: dict[str, list[CaseResult]], *, winner: str | None):
    metric = s.primary_metric
    binary = {sc.label: sc.kind != "token_f1" for sc in s.scorers}
    summaries = {
        n: summarize_strategy(
            n, "fake", rows, StrategySetup(backend="fake"), n_planned=len(rows), binary={m: binary[m] for m in binary}
        )
        for n, rows in by.items()
    }
    pairs = pairwise(per_case_scores(by, metric), binary=binary[metric], confidence=0.95, min_gain=0.02)
    return diagnose(s, by, summaries, pairs, binary=binary, conditional=set(), winner=winner)


def test_retrieval_that_beats_both_zero_shot_and_the_fine_tune_reads_as_a_knowledge_task():
    n = 60
    by = {
        "zero": [row("zero", i, {"exact_match": float(i < 6)}) for i in range(n)],
        "rag": [row("rag", i, {"exact_match": float(i < 45)}) for i in range(n)],
        "ft": [row("ft", i, {"exact_match": float(i < 12)}) for i in range(n)],
    }
    d = run(suite(), by, winner="rag")
    assert d.pattern == "knowledge" and d.sentence.startswith("Knowledge task: retrieval (rag) supplies facts")
    gains = {g.strategy: g.pair for g in d.gains}
    assert gains["rag"].settled and gains["rag"].diff == 39 / 60 and gains["ft"].diff == 6 / 60


def test_a_fine_tune_that_fixes_invalid_answers_reads_as_a_format_task():
    n = 60
    by = {
        "zero": [
            row("zero", i, {"exact_match": float(i < 20)}, output="I think it might be", invalid=i >= 20)
            for i in range(n)
        ],
        "ft": [row("ft", i, {"exact_match": float(i < 50)}) for i in range(n)],
    }
    d = run(suite(), by, winner="ft")
    mix = {f.strategy: f for f in d.failures}
    assert (mix["zero"].format, mix["zero"].content) == (40, 0) and (mix["ft"].format, mix["ft"].content) == (0, 10)
    assert d.pattern == "format" and "fixes format errors that prompting leaves" in d.sentence


def test_when_nothing_is_settled_the_pattern_is_unclear_and_no_fine_tune_means_no_pattern():
    by = {
        "zero": [row("zero", i, {"exact_match": float(i % 2)}) for i in range(10)],
        "ft": [row("ft", i, {"exact_match": float(i % 3 == 0)}) for i in range(10)],
    }
    assert run(suite(), by, winner="zero").pattern == "unclear"
    assert run(suite(), {"zero": by["zero"]}, winner="zero").pattern == "none"


def test_an_answer_cut_at_the_token_limit_or_empty_fails_on_form():
    by = {
        "zero": [
            row("zero", 0, {"exact_match": 0.0}, tokens=32),
            row("zero", 1, {"exact_match": 0.0}, output=" "),
            row("zero", 2, {"exact_match": 0.0}),
            row("zero", 3, {"exact_match": 1.0}),
        ]
    }
    (mix,) = run(suite(), by, winner="zero").failures
    assert (mix.failed, mix.format, mix.content) == (3, 2, 1)


def test_a_terse_winner_on_a_metric_that_rewards_brevity_gets_a_caution():
    # the QA pattern: ft's terse answers score a little higher on token F1, rag's long ones contain the fact
    n = 80
    by = {
        "ft": [row("ft", i, {"token_f1": 0.5, "exact_match": 0.0}, tokens=3) for i in range(n)],
        "rag": [
            row("rag", i, {"token_f1": 0.3 + 0.001 * i, "exact_match": float(i < 40)}, tokens=30) for i in range(n)
        ],
    }
    d = run(suite("token_f1", ("exact_match",)), by, winner="ft")
    assert any("much shorter answers (3 output tokens against 30)" in c and "includes" in c for c in d.cautions)
    assert any(
        "exact_match ranks rag above ft" in c and "the verdict follows the primary metric" in c for c in d.cautions
    )
    # a label read out of the answer does not reward brevity: the same terse winner gets no length caution
    labels = {
        n: [
            row(n, i, {"label_accuracy": float(i < (60 if n == "ft" else 20))}, tokens=3 if n == "ft" else 30)
            for i in range(n_cases)
        ]
        for n, n_cases in (("ft", 80), ("rag", 80))
    }
    assert run(suite("label_accuracy"), labels, winner="ft").cautions == []


def test_a_terse_fine_tune_that_fixes_cut_answers_on_a_brevity_metric_is_not_called_a_format_win():
    # the QA case: zero-shot rambles to the token limit, the fine-tune learned short answers; token F1 rewards them
    n = 60
    by = {
        "zero": [row("zero", i, {"token_f1": 0.0 if i >= 10 else 0.6}, tokens=32) for i in range(n)],
        "few": [row("few", i, {"token_f1": 0.0 if i >= 15 else 0.6}, tokens=20) for i in range(n)],
        "ft": [row("ft", i, {"token_f1": 0.5}, tokens=3) for i in range(n)],
    }
    d = run(suite("token_f1"), by, winner="ft")
    assert d.pattern == "unclear" and "answer style rather than the content" in d.sentence
    assert "includes" in d.sentence
    # one caution names every rival the terse lead is over, not one sentence per rival
    (caution,) = d.cautions
    assert "ft's leads over zero (" in caution and " and few (" in caution
    assert "(3 output tokens against 32 and 20)" in caution and "longer answers of zero and few" in caution
    # the same shapes with a label metric (no brevity reward) read as a format task
    labels = {
        "zero": [
            row("zero", i, {"label_accuracy": float(i < 10)}, tokens=32, output="x", invalid=i >= 10) for i in range(n)
        ],
        "ft": [row("ft", i, {"label_accuracy": float(i < 50)}, tokens=3) for i in range(n)],
    }
    assert run(suite("label_accuracy"), labels, winner="ft").pattern == "format"
