"""RAG and a model judge on the real embedded model: the squad_qa suite as a user runs it."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.conftest import REPO, harness_cli

pytestmark = pytest.mark.slow

SQUAD = REPO / "suites" / "squad_qa"
REAL_MODEL_TIMEOUT_S = 1800  # a real model on the CPU: well above harness_cli's 300 s (these calls had no limit)


def cut_dev(folder, n: int):
    """The squad_qa suite in `folder` with only the first `n` dev questions."""
    import shutil

    shutil.copytree(SQUAD, folder)
    dev = folder / "data" / "dev.jsonl"
    dev.write_text("".join(line + "\n" for line in dev.read_text().splitlines()[:n]))
    return folder / "suite.yaml"


def test_squad_rag_retrieves_the_gold_paragraph_and_puts_it_in_the_prompt(fresh_home, tmp_path):
    home = fresh_home  # cold caches: the first run really embeds and generates, the second reuses both
    out = tmp_path / "run"
    suite = cut_dev(tmp_path / "squad", 12)  # top_k chosen on 12 dev questions, not 40: the same code, a third the time
    first = harness_cli(
        "compare",
        str(suite),
        "--limit",
        "10",
        "--strategies",
        "zero_shot,rag",
        "--out",
        str(out),
        home=home,
        timeout=REAL_MODEL_TIMEOUT_S,
    )
    assert first.returncode == 0, first.stderr[-3000:]
    run = json.loads((out / "run.json").read_text())
    rag, zero = run["strategies"]["rag"], run["strategies"]["zero_shot"]
    # Hybrid retrieval over 311 paragraphs finds the paragraph holding the answer for most questions.
    assert rag["metrics"]["hit_rate"]["mean"] >= 0.7, rag["metrics"]["hit_rate"]
    assert "hit_rate" not in zero["metrics"]  # retrieval metrics only where something was retrieved
    index = rag["setup"]["given"]["index"]
    assert rag["setup"]["given"]["corpus"]["documents"] == 311 and index["embedded_texts"] >= 311
    # Retrieval is timed apart from generation: milliseconds against seconds for a 135M model on CPU.
    assert rag["retrieval"]["latency"]["p50_s"] < rag["latency"]["p50_s"] / 5
    assert rag["retrieval"]["context_tokens_mean"] > 100
    assert rag["input_tokens_mean"] > zero["input_tokens_mean"] + rag["retrieval"]["context_tokens_mean"] * 0.8
    cases = [json.loads(line) for line in (out / "cases.jsonl").read_text().splitlines()]
    selection = rag["setup"]["given"]["top_k_selection"]
    k = selection["chosen"]
    assert selection["on"] == "dev" and [c["top_k"] for c in selection["candidates"]] == [1, 2, 3]
    assert all(c["dev_score"] is not None for c in selection["candidates"])
    for case in (c for c in cases if c["strategy"] == "rag"):
        found = case["meta"]["retrieval"]
        assert len(found["chunk_ids"]) == k and found["used"] + found["dropped"] == k
        assert found["texts"][0][:80] in case["prompt"]  # the top passage reached the model
    # A rerun reuses the index and every answer: no embedding of the corpus, no model call.
    second = harness_cli(
        "compare",
        str(suite),
        "--limit",
        "10",
        "--strategies",
        "zero_shot,rag",
        "--out",
        str(tmp_path / "run2"),
        home=home,
        timeout=REAL_MODEL_TIMEOUT_S,
    )
    assert second.returncode == 0, second.stderr[-3000:]
    again = json.loads((tmp_path / "run2" / "run.json").read_text())
    assert again["strategies"]["rag"]["setup"]["given"]["index"]["reused_from_cache"] is True
    assert again["strategies"]["rag"]["setup"]["given"]["index"]["embedding_calls_this_run"] == 0
    assert again["options"]["counts"]["model_calls"] == 0


def test_the_hf_judge_replies_in_the_schema_of_ragas(embedded_model_dir, tmp_path):
    """SmolLM2 as the ragas judge: constrained decoding makes every reply parse at the first try."""
    rows = (SQUAD / "data" / "test.jsonl").read_text().splitlines()[:2]
    (tmp_path / "test.jsonl").write_text("\n".join(rows) + "\n")
    suite = {
        "name": "hf-judge",
        "task": {"instructions": "Answer with a short phrase.", "input_field": "question", "target_field": "answer"},
        "data": {"test": "test.jsonl"},
        "backends": [
            {"name": "answers", "kind": "fake", "config": {"default": "Richard I"}},
            {"name": "smollm2", "kind": "hf", "model": "smollm2-135m-instruct", "config": {"batch_size": 4}},
        ],
        "strategies": [
            {
                "name": "rag",
                "kind": "rag",
                "backend": "answers",
                "config": {"corpus": str(SQUAD / "data" / "corpus.jsonl"), "retriever": "bm25", "top_k": 2},
            }
        ],
        "scorers": [
            {"kind": "token_f1"},
            {"kind": "context_precision", "config": {"judge": "smollm2", "max_new_tokens": 160, "max_chars": 120}},
        ],
    }
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(suite))
    home = embedded_model_dir.parents[1]
    # --no-cache: the shared model home keeps its response cache between local runs; this test counts real calls.
    result = harness_cli(
        "compare",
        str(tmp_path / "suite.yaml"),
        "--out",
        str(tmp_path / "run"),
        "--no-cache",
        home=home,
        timeout=REAL_MODEL_TIMEOUT_S,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    judge = run["strategies"]["rag"]["setup"]["evaluation"]["context_precision"]["judge"]
    assert judge["requests"] == 4 and judge["calls"] == 4  # k=2 contexts x 2 cases, ragas' own count
    assert judge["parse_failures"] == 0 and judge["failed_verdicts"] == 0
    metric = run["strategies"]["rag"]["metrics"]["context_precision"]
    assert metric["n_unscored"] == 0 and 0.0 <= metric["mean"] <= 1.0
    assert run["options"]["counts"]["judge_calls"] == 4 and run["options"]["counts"]["model_calls"] == 2


def test_the_embedded_model_grades_a_rubric_with_human_grades_cached_and_counted(embedded_model_dir, tmp_path):
    """SmolLM2 as a model_graded judge on 4 cases with human-graded answers: every reply parses (constrained to
    the grade schema), each verdict is counted, the agreement is reported, and a rerun asks the judge nothing.
    It is a weak judge: this checks the plumbing, not its wisdom."""
    rows = [json.loads(x) for x in (SQUAD / "data" / "test.jsonl").read_text().splitlines()[:4]]
    for i, row in enumerate(rows):  # a human graded the right answer 5 and a wrong one 1
        row["graded"], row["human"] = (row["answer"], 5) if i % 2 == 0 else ("I do not know", 1)
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    suite = {
        "name": "hf-rubric",
        "task": {"instructions": "Answer with a short phrase.", "input_field": "question", "target_field": "answer"},
        "data": {"test": "test.jsonl"},
        "backends": [
            {"name": "answers", "kind": "fake", "config": {"default": "Richard I"}},
            {"name": "smollm2", "kind": "hf", "model": "smollm2-135m-instruct", "config": {"batch_size": 4}},
        ],
        "strategies": [{"name": "zero", "kind": "zero_shot", "backend": "answers"}],
        "scorers": [
            {"kind": "token_f1"},
            {
                "kind": "model_graded",
                "config": {
                    "judge": "smollm2",
                    "rubric": "The answer names the same thing as the reference answer.",
                    "human_field": "human",
                    "human_answer_field": "graded",
                    "max_new_tokens": 96,
                    "max_chars": 100,
                },
            },
        ],
    }
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(suite))
    home = embedded_model_dir.parents[1]

    def run(out: str, *flags: str) -> dict:
        done = harness_cli(
            "compare", str(tmp_path / "suite.yaml"), "--out", str(tmp_path / out), *flags, home=home,
            timeout=REAL_MODEL_TIMEOUT_S,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads((tmp_path / out / "run.json").read_text())

    first = run("run", "--no-cache")  # the shared model home keeps a response cache: count real calls here
    judge = first["strategies"]["zero"]["setup"]["evaluation"]["model_graded"]["judge"]
    assert judge["requests"] == 8 and judge["calls"] == 8  # each answer and each human-graded answer
    assert judge["parse_failures"] == 0 and judge["failed_verdicts"] == 0
    metric = first["strategies"]["zero"]["metrics"]["model_graded"]
    assert metric["n_unscored"] == 0 and 0.0 <= metric["mean"] <= 1.0
    assert metric["judge"]["n_graded"] == 4 and metric["judge"]["agreement_kind"] == "spearman"
    run("warm")  # fills the response cache
    again = run("again")["strategies"]["zero"]["setup"]["evaluation"]["model_graded"]["judge"]
    assert again["calls"] == 0 and again["cache_hits"] == 8
