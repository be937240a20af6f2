"""Model-judged scorers (ragas faithfulness, answer relevancy, context precision, context recall) end to end.

The judge is a second `fake` backend whose rules answer each ragas step by the schema title its prompt names
(StatementGeneratorOutput, NLIStatementOutput, ...); its default reply is "not json". The strategies answer
from tests/fixtures/rag on a fake model. Answer relevancy embeds with the real all-MiniLM-L6-v2; the runs that
do not need it leave answer relevancy out and retrieve with bm25, so they load no embedder at all.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from harness.run.compare import CompareOptions, compare
from tests.conftest import RAG_FIXTURES, assert_refused, harness_cli, run_json, write_qa_suite

FIXTURES = RAG_FIXTURES
RAGAS = ("faithfulness", "answer_relevancy", "context_precision", "context_recall")
CONTEXT_METRICS = ("faithfulness", "context_precision", "context_recall")

# The strategies' model: a distinct one-line answer per question (so answer relevancy prompts differ per case).
ANSWERS = {
    "active volcano": "Etna",
    "worker bees": "honey",
    "chess board": "sixty-four",
    "sourdough": "wild yeast",
    "largest planet": "Jupiter",
    "Stradivari": "Cremona",
    "antibiotic": "Fleming",
    "marathon": "42.195 km",
}
MODEL = {
    "name": "fake",
    "kind": "fake",
    "config": {"rules": [{"pattern": p, "answer": a} for p, a in ANSWERS.items()], "default": "unknown"},
}

# A judge that answers every ragas step with valid JSON for its schema.
STATEMENTS = '{"statements": ["The answer is given."]}'
VERDICTS = '{"statements": [{"statement": "The answer is given.", "reason": "ok", "verdict": 1}]}'
QUESTION = '{"question": "What is asked here?", "noncommittal": 0}'
PRECISION = '{"reason": "useful", "verdict": 1}'
RECALL = '{"classifications": [{"statement": "x", "reason": "y", "attributed": 1}]}'
VALID_RULES = [
    {"pattern": "StatementGeneratorOutput", "answer": STATEMENTS},
    {"pattern": "NLIStatementOutput", "answer": VERDICTS},
    {"pattern": "AnswerRelevanceOutput|ResponseRelevanceOutput", "answer": QUESTION},
    {"pattern": "ContextPrecisionOutput|Verification", "answer": PRECISION},
    {"pattern": "ContextRecallOutput|ContextRecallClassifications", "answer": RECALL},
]
RETRY_TEXT = "not valid JSON for the schema"  # what Judge.ask says when it asks again


# ---- helpers -------------------------------------------------------------------------------------


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def n_questions() -> int:
    return len(read_jsonl(FIXTURES / "questions.jsonl"))


def judge_backend(rules: list[dict] | None = None, default: str = "not json") -> dict[str, Any]:
    return {"name": "judge", "kind": "fake", "config": {"rules": rules or [], "default": default}}


def rag(name: str = "rag", top_k: int = 2, retriever: str = "bm25") -> dict[str, Any]:
    return {
        "name": name,
        "kind": "rag",
        "backend": "fake",
        "config": {"corpus": "corpus.jsonl", "retriever": retriever, "top_k": top_k},
    }


ZERO = {"name": "zero", "kind": "zero_shot", "backend": "fake"}


def suite(
    strategies: list[dict], *, judge: dict, metrics=RAGAS, model: dict = MODEL, **scorer_config
) -> dict[str, Any]:
    return {
        "name": "judge-toy",
        "task": {"instructions": "Answer in one word.", "input_field": "question", "target_field": "answer"},
        "data": {"test": "questions.jsonl"},
        "backends": [model, judge],
        "strategies": strategies,
        "scorers": [
            {"kind": "exact_match"},
            *({"kind": m, "config": {"judge": "judge", **scorer_config}} for m in metrics),
        ],
    }


def evaluation(run: dict[str, Any], strategy: str) -> dict[str, dict[str, Any]]:
    return run["strategies"][strategy]["setup"]["evaluation"]


def judge_counts(run: dict[str, Any], strategy: str, metric: str) -> dict[str, Any]:
    return evaluation(run, strategy)[metric]["judge"]


def scores(run_dir: Path) -> dict[tuple[str, str], dict[str, Any]]:
    return {(c["strategy"], c["case_id"]): c["scores"] for c in read_jsonl(run_dir / "cases.jsonl")}


def line_in(path: Path, needle: str, after: int = 0) -> int:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if number > after and needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """MiniLM embeds a few words at a time here; on a busy small machine torch's thread pool makes each embedding
    30x slower than one thread does. Speed only: the scores are the same."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---- the shared run: a valid judge over zero_shot and rag at three top_k --------------------------

TOP_KS = {"rag": 2, "rag_k1": 1, "rag_k4": 4}


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("judge-valid")
    home = root / "home"
    path = write_qa_suite(
        root / "suite", suite([ZERO, *(rag(n, k) for n, k in TOP_KS.items())], judge=judge_backend(VALID_RULES))
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARNESS_HOME", str(home))
        mp.setenv("HF_HUB_OFFLINE", "1")
        record, run = compare(path, CompareOptions(out=root / "run"))
    return SimpleNamespace(
        root=root,
        home=home,
        suite=path,
        run=root / "run",
        record=record,
        counts=run.counts,
        json=run_json(root / "run"),
        scores=scores(root / "run"),
    )


@pytest.fixture
def valid_home(valid, monkeypatch) -> Path:
    """Point this test at the home whose response cache holds the shared run's judge answers."""
    monkeypatch.setenv("HARNESS_HOME", str(valid.home))
    return valid.home


# ---- 1. scores, conditional metrics, the evaluation record, counts ------------------------------


def test_rag_gets_all_four_judge_metrics_and_zero_shot_only_answer_relevancy(valid):
    n = n_questions()
    assert valid.record.status == "complete"
    runs = valid.json["strategies"]
    for name in TOP_KS:
        metrics = runs[name]["metrics"]
        for metric in RAGAS:
            assert metric in metrics, (name, sorted(metrics))
            summary = metrics[metric]
            unscored = {
                c: sc[metric]["detail"]
                for (s, c), sc in valid.scores.items()
                if s == name and metric in sc and sc[metric]["value"] is None
            }
            assert summary["n_scored"] == n and summary["n_unscored"] == 0, (name, metric, unscored)
            assert summary["mean"] is not None and 0.0 <= summary["mean"] <= 1.0
        # the scripted judge supports every statement and finds every context useful
        assert metrics["faithfulness"]["mean"] == pytest.approx(1.0)
        assert metrics["context_recall"]["mean"] == pytest.approx(1.0)
        assert metrics["context_precision"]["mean"] == pytest.approx(1.0, abs=1e-6)
        assert metrics["answer_relevancy"]["mean"] > 0.0
    zero = runs["zero"]["metrics"]
    assert not set(CONTEXT_METRICS) & set(zero), f"zero_shot retrieves nothing, yet has {sorted(zero)}"
    assert zero["answer_relevancy"]["n_scored"] == n and zero["answer_relevancy"]["mean"] > 0.0
    for (strategy, case_id), case_scores in valid.scores.items():
        if strategy == "zero":
            assert set(case_scores) == {"exact_match", "answer_relevancy"}, (case_id, case_scores)
        else:
            assert set(RAGAS) <= set(case_scores) and all(case_scores[m]["value"] is not None for m in RAGAS)


def test_the_evaluation_record_counts_judge_work_per_scorer(valid):
    for name in TOP_KS:
        record = evaluation(valid.json, name)
        assert set(RAGAS) <= set(record), sorted(record)
        for metric in RAGAS:
            entry = record[metric]
            assert entry["judge_backend"] == "judge"
            counts = entry["judge"]
            assert counts["requests"] > 0, (name, metric, counts)
            assert counts["calls"] + counts["cache_hits"] == counts["requests"], (name, metric, counts)
            assert counts["parse_failures"] == 0 and counts["failed_verdicts"] == 0
            assert (counts["input_tokens"] > 0 and counts["output_tokens"] > 0) is (counts["calls"] > 0), counts
        # context recall's prompt holds all the contexts: a new top_k makes new prompts, every one a judge call
        assert record["context_recall"]["judge"]["calls"] == record["context_recall"]["judge"]["requests"], name
    # context precision judges one context per prompt: the ranks a smaller top_k already judged come from the cache
    precision = {name: judge_counts(valid.json, name, "context_precision")["calls"] for name in TOP_KS}
    assert precision == {"rag": 2 * n_questions(), "rag_k1": 0, "rag_k4": 2 * n_questions()}, precision
    # answer relevancy's prompt holds only the answer, so strategies that answer alike share its judge calls
    relevancy = [judge_counts(valid.json, name, "answer_relevancy") for name in ("zero", *TOP_KS)]
    assert relevancy[0]["requests"] == 3 * n_questions() and relevancy[0]["calls"] == n_questions()
    assert sum(c["calls"] for c in relevancy) == relevancy[0]["calls"], relevancy


def test_judge_calls_are_counted_apart_from_model_calls(valid):
    counts = valid.json["options"]["counts"]
    strategies = valid.json["strategies"]
    # one generation per (strategy, case): the judge's calls are not model calls
    assert counts["model_calls"] == len(strategies) * n_questions(), counts
    assert counts["dev_calls"] == 0
    total = sum(e["judge"]["calls"] for name in strategies for e in evaluation(valid.json, name).values())
    assert total > 0 and counts["judge_calls"] == total, counts
    assert valid.counts.judge_calls == counts["judge_calls"] and valid.counts.model_calls == counts["model_calls"]
    for name, summary in strategies.items():
        assert summary["n_cache_hits"] == 0, name  # judge cache hits do not leak into the strategies' numbers


# ---- 2. judge work per case ----------------------------------------------------------------------


@pytest.mark.parametrize("strategy", list(TOP_KS))
def test_judge_requests_per_case_are_six_plus_top_k_and_calls_at_most_that(valid, strategy):
    k, n = TOP_KS[strategy], n_questions()
    per_metric = {"faithfulness": 2, "answer_relevancy": 3, "context_precision": k, "context_recall": 1}
    for metric, expected in per_metric.items():
        counts = judge_counts(valid.json, strategy, metric)
        assert counts["requests"] == expected * n, (metric, counts)
        assert counts["calls"] + counts["cache_hits"] == counts["requests"], (metric, counts)
    requests = sum(judge_counts(valid.json, strategy, m)["requests"] for m in RAGAS)
    calls = sum(judge_counts(valid.json, strategy, m)["calls"] for m in RAGAS)
    assert requests == (6 + k) * n
    assert calls <= requests
    # answer relevancy asks the same prompt `strictness` times per case: sent once, the rest from the cache
    relevancy = judge_counts(valid.json, strategy, "answer_relevancy")
    assert relevancy["calls"] <= n and relevancy["cache_hits"] >= 2 * n, relevancy


# ---- 3. reruns -----------------------------------------------------------------------------------


def test_rerun_in_the_same_folder_makes_no_judge_calls_and_keeps_scores_and_record(valid, valid_home, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(valid.run, out)
    record, _ = compare(valid.suite, CompareOptions(out=out))
    again = run_json(out)
    assert record.status == "complete"
    assert again["options"]["counts"]["judge_calls"] == 0
    assert again["options"]["counts"]["model_calls"] == 0
    assert scores(out) == valid.scores
    for name in TOP_KS:
        for metric in RAGAS:
            assert again["strategies"][name]["metrics"][metric] == valid.json["strategies"][name]["metrics"][metric]
    # the judge work already paid for stays on record after a resume
    for name in TOP_KS:
        assert "evaluation" in again["strategies"][name]["setup"], f"{name}: the evaluation record was dropped"
        for metric in RAGAS:
            assert judge_counts(again, name, metric)["calls"] == judge_counts(valid.json, name, metric)["calls"]


def test_rerun_in_a_new_folder_answers_the_judge_from_the_cache(valid, valid_home, tmp_path):
    record, run = compare(valid.suite, CompareOptions(out=tmp_path / "again"))
    again = run_json(tmp_path / "again")
    assert record.status == "complete"
    assert run.counts.judge_calls == 0 and again["options"]["counts"]["judge_calls"] == 0
    for name in TOP_KS:
        for metric in RAGAS:
            counts = judge_counts(again, name, metric)
            assert counts["calls"] == 0 and counts["cache_hits"] == counts["requests"] > 0, (name, metric, counts)
    assert scores(tmp_path / "again") == valid.scores


def test_a_resumed_run_adds_the_new_cases_judge_work_to_the_record(tmp_path):
    n, half, k = n_questions(), n_questions() // 2, 2
    per_case = {"faithfulness": 2, "context_precision": k, "context_recall": 1}
    path = write_qa_suite(
        tmp_path / "s", suite([rag(top_k=k)], judge=judge_backend(VALID_RULES), metrics=tuple(per_case))
    )
    out = tmp_path / "run"
    _, first = compare(path, CompareOptions(out=out, limit=half))
    assert first.counts.judge_calls == sum(per_case.values()) * half
    record, second = compare(path, CompareOptions(out=out))
    assert record.status == "complete"
    assert second.counts.judge_calls == sum(per_case.values()) * (n - half)  # only the new cases are judged
    run = run_json(out)
    for metric, each in per_case.items():
        assert run["strategies"]["rag"]["metrics"][metric]["n_scored"] == n
        counts = judge_counts(run, "rag", metric)
        assert counts["requests"] == counts["calls"] == each * n, (metric, counts)  # both runs' work, once each


# ---- 4. a judge that never answers JSON ----------------------------------------------------------


# each variant runs the whole CLI with ragas loaded: the one without retries waits for the full run (make test)
@pytest.mark.parametrize("retries", [1, pytest.param(0, marks=pytest.mark.slow)])
def test_garbage_judge_leaves_every_case_unscored_and_the_run_completes(tmp_path, retries):
    n = n_questions()
    path = write_qa_suite(tmp_path / "s", suite([ZERO, rag()], judge=judge_backend(), retries=retries))
    result = harness_cli(
        "compare",
        str(path),
        "--out",
        str(tmp_path / "run"),
        home=tmp_path / "home",
        env={"OMP_NUM_THREADS": "1"},
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "Traceback" not in output, output
    run = run_json(tmp_path / "run")
    assert run["status"] == "complete"
    cases = read_jsonl(tmp_path / "run" / "cases.jsonl")
    rag_cases = [c for c in cases if c["strategy"] == "rag"]
    assert sorted(c["case_id"] for c in rag_cases) == sorted(r["id"] for r in read_jsonl(FIXTURES / "questions.jsonl"))
    for case in rag_cases:
        assert case["error"] is None and case["output"]
        for metric in RAGAS:
            score = case["scores"].get(metric)
            assert score is not None, (case["case_id"], metric, "missing: an unscored case must be recorded")
            assert score["value"] is None and "parse" in score["detail"]["error"], (metric, score)
    for case in (c for c in cases if c["strategy"] == "zero"):
        assert case["scores"]["answer_relevancy"]["value"] is None
    for name, metrics in (("rag", RAGAS), ("zero", ("answer_relevancy",))):
        for metric in metrics:
            summary = run["strategies"][name]["metrics"][metric]
            assert summary["n_unscored"] == n and summary["n_scored"] == 0 and summary["mean"] is None, summary
            counts = judge_counts(run, name, metric)
            assert counts["requests"] == n, (name, metric, counts)  # each metric stops at its first verdict
            assert counts["parse_failures"] == counts["requests"] * (retries + 1), (name, metric, counts)
            assert counts["failed_verdicts"] == counts["requests"]
    # the exact-match ranking is not affected by the judge
    assert run["strategies"]["rag"]["metrics"]["exact_match"]["n_scored"] == n


def test_judge_that_answers_only_when_retried_is_scored_and_the_failures_counted(tmp_path):
    n = n_questions()
    rules = [{"pattern": RETRY_TEXT, "answer": RECALL}]
    path = write_qa_suite(tmp_path / "s", suite([rag()], judge=judge_backend(rules), metrics=("context_recall",)))
    record, run = compare(path, CompareOptions(out=tmp_path / "run"))
    assert record.status == "complete"
    metric = record.strategies["rag"].metrics["context_recall"]
    assert metric.n_scored == n and metric.n_unscored == 0 and metric.mean == pytest.approx(1.0)
    counts = judge_counts(run_json(tmp_path / "run"), "rag", "context_recall")
    assert counts["requests"] == n and counts["parse_failures"] == n and counts["failed_verdicts"] == 0, counts
    assert counts["calls"] == 2 * n  # the first try and the retry, each a judge call
    assert run.counts.judge_calls == 2 * n and run.counts.model_calls == n


def test_without_retries_a_judge_that_needs_one_leaves_cases_unscored(tmp_path):
    n = n_questions()
    rules = [{"pattern": RETRY_TEXT, "answer": RECALL}]
    path = write_qa_suite(
        tmp_path / "s", suite([rag()], judge=judge_backend(rules), metrics=("context_recall",), retries=0)
    )
    record, _ = compare(path, CompareOptions(out=tmp_path / "run"))
    assert record.status == "complete"
    metric = record.strategies["rag"].metrics["context_recall"]
    assert metric.n_unscored == n and metric.n_scored == 0
    counts = judge_counts(run_json(tmp_path / "run"), "rag", "context_recall")
    assert counts["calls"] == n and counts["parse_failures"] == n and counts["failed_verdicts"] == n, counts


def test_a_judge_backend_that_fails_leaves_cases_unscored_not_a_crash(tmp_path):
    n = n_questions()
    judge = judge_backend(VALID_RULES)
    judge["config"]["fail_on"] = "ContextRecall"
    path = write_qa_suite(tmp_path / "s", suite([rag()], judge=judge, metrics=("context_recall", "context_precision")))
    record, _ = compare(path, CompareOptions(out=tmp_path / "run"))
    assert record.status == "complete"
    recall = record.strategies["rag"].metrics["context_recall"]
    assert recall.n_unscored == n and recall.n_scored == 0
    assert record.strategies["rag"].metrics["context_precision"].n_scored == n
    for case in read_jsonl(tmp_path / "run" / "cases.jsonl"):
        assert "judge call failed" in case["scores"]["context_recall"]["detail"]["error"]


# ---- 6. bad judge config through the CLI ---------------------------------------------------------


@pytest.mark.parametrize(
    "config, field, line_of, needles",
    [
        ({"judge": "judgee"}, "judge", "judge: judgee", ["no backend named 'judgee'", "Did you mean 'judge'?"]),
        ({"retries": 1}, "judge", "config:", ["'judge'", "missing"]),
        ({"judge": "judge", "retries": -1}, "retries", "retries: -1", ["-1"]),
    ],
    ids=["unknown_backend", "missing_judge", "negative_retries"],
)
@pytest.mark.parametrize("command", ["validate", "compare"])
def test_bad_judge_config_is_refused_naming_file_and_field(tmp_path, config, field, line_of, needles, command):
    data = suite([ZERO, rag()], judge=judge_backend(VALID_RULES), metrics=("faithfulness", "answer_relevancy"))
    data["scorers"][2]["config"] = config  # answer_relevancy: scorers[2]
    path = write_qa_suite(tmp_path / "s", data)
    args = [command, str(path)] + (["--out", str(tmp_path / "run")] if command == "compare" else [])
    result = harness_cli(*args, home=tmp_path / "home", env={"OMP_NUM_THREADS": "1"}, timeout=120)
    line = line_in(path, line_of, after=line_in(path, "kind: answer_relevancy"))
    assert_refused(result, "suite.yaml", f"scorers[2].config.{field}", f"suite.yaml:{line}", *needles)
    if command == "compare":
        assert not (tmp_path / "run" / "cases.jsonl").exists(), "a refused suite must not start a run"


# ---- 7. empty answers ----------------------------------------------------------------------------


EMPTY_MODEL = {"name": "fake", "kind": "fake", "config": {"default": ""}}


def test_empty_answers_are_unscored_for_answer_relevancy_not_a_crash(tmp_path):
    n = n_questions()
    path = write_qa_suite(
        tmp_path / "s",
        suite([ZERO, rag()], judge=judge_backend(VALID_RULES), metrics=("answer_relevancy",), model=EMPTY_MODEL),
    )
    record, run = compare(path, CompareOptions(out=tmp_path / "run"))
    assert record.status == "complete"
    for name in ("zero", "rag"):
        summary = record.strategies[name]
        assert summary.n_errors == 0 and summary.n_done == n
        metric = summary.metrics["answer_relevancy"]
        assert metric.n_unscored == n and metric.n_scored == 0 and metric.mean is None
    for case in read_jsonl(tmp_path / "run" / "cases.jsonl"):
        score = case["scores"]["answer_relevancy"]
        assert score["value"] is None and "empty" in score["detail"]["error"], score
    assert run.counts.judge_calls == 0  # nothing to judge: no judge call paid


def test_empty_answers_do_not_hide_the_retrieval_judged_by_context_metrics(tmp_path):
    """Context precision and context recall judge the retrieved contexts against the reference; the answer
    plays no part in them, so an empty answer must not drop a case from their means."""
    n = n_questions()
    path = write_qa_suite(
        tmp_path / "s",
        suite(
            [rag()],
            judge=judge_backend(VALID_RULES),
            metrics=("faithfulness", "context_precision", "context_recall"),
            model=EMPTY_MODEL,
        ),
    )
    record, _ = compare(path, CompareOptions(out=tmp_path / "run"))
    assert record.status == "complete"
    metrics = record.strategies["rag"].metrics
    assert metrics["faithfulness"].n_unscored == n  # no statements in an empty answer
    for metric in ("context_precision", "context_recall"):
        assert metrics[metric].n_scored == n, (metric, metrics[metric])


def test_judging_works_when_called_from_inside_a_running_event_loop():
    """compare() from a notebook runs inside an event loop; the judge must not try to start a second one there."""
    import asyncio

    from harness.scoring.judge import run_concurrently

    async def job(i):
        await asyncio.sleep(0)
        return i * 2

    async def notebook_cell():
        done = {}
        run_concurrently([lambda i=i: job(i) for i in range(3)], done.__setitem__)
        return done

    assert asyncio.run(notebook_cell()) == {0: 0, 1: 2, 2: 4}
