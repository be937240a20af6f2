"""The `openai` backend through the real SDK against a local OpenAI-compatible server: answers, retries of server
errors, a failing request recorded as that case's error, a model judge speaking JSON schema, and keys kept out."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import yaml

from harness.home import harness_home
from harness.run.compare import CompareOptions, compare
from tests.conftest import harness_cli, write_jsonl
from tests.fake_openai import FakeOpenAI, Script

KEY = "sk-test-chat-9f8e7d6c5b4a39281706"
CAPITALS = {"France": "Paris", "Italy": "Rome", "Japan": "Tokyo", "Kenya": "Nairobi", "Peru": "Lima"}
JUDGE = {  # ragas step (its schema's title) -> a valid reply
    "StatementGeneratorOutput": {"statements": ["The capital is named."]},
    "NLIStatementOutput": {"statements": [{"statement": "The capital is named.", "reason": "stated", "verdict": 1}]},
    "ContextRecallOutput": {"classifications": [{"statement": "s", "reason": "r", "attributed": 1}]},
}


def reply(body: dict) -> str:
    fmt = body.get("response_format")
    if fmt:  # a judge call: answer for the schema it names
        return json.dumps(JUDGE[fmt["json_schema"]["name"]])
    question = body["messages"][-1]["content"]
    if "Atlantis" in question:
        raise LookupError("no such country")
    return next((city for country, city in CAPITALS.items() if country in question), "unknown")


@pytest.fixture()
def api(monkeypatch):
    monkeypatch.setenv("TEST_CHAT_KEY", KEY)
    script = Script(chat=reply, fail_first=1)
    with FakeOpenAI(script) as url:
        yield SimpleNamespace(url=url, script=script)


def write_suite(folder, url, *, extra_cases=(), scorers=None):
    rows = [
        {"id": c.lower(), "question": f"What is the capital of {c}?", "answer": city} for c, city in CAPITALS.items()
    ]
    write_jsonl(folder / "test.jsonl", rows + list(extra_cases))
    write_jsonl(
        folder / "corpus.jsonl",
        [{"id": c, "title": c, "text": f"The capital of {c} is {city}."} for c, city in CAPITALS.items()],
    )
    api = {"base_url": url, "api_key_env": "TEST_CHAT_KEY", "concurrency": 4, "max_retries": 2}
    suite = {
        "name": "openai-backend",
        "task": {"instructions": "Name the city only.", "input_field": "question", "target_field": "answer"},
        "data": {"test": "test.jsonl"},
        "backends": [
            {"name": "api", "kind": "openai", "model": "gpt-test", "config": api},
            {"name": "judge", "kind": "openai", "model": "judge-test", "config": api},
        ],
        "strategies": [
            {"name": "zero", "kind": "zero_shot", "backend": "api"},
            {
                "name": "rag",
                "kind": "rag",
                "backend": "api",
                "config": {"corpus": "corpus.jsonl", "retriever": "bm25", "top_k": 1},
            },
        ],
        "scorers": scorers or [{"kind": "exact_match"}],
        # gpt-test: $1 / $2 per 1M tokens; the judge is priced like gpt-4o-mini from the shipped price sheet.
        "economics": {
            "prices": {
                "gpt-test": {"input_per_1m_usd": 1.0, "output_per_1m_usd": 2.0},
                "judge-test": {"same_as": "gpt-4o-mini"},
            }
        },
    }
    (folder / "suite.yaml").write_text(yaml.safe_dump(suite))
    return folder / "suite.yaml"


def test_answers_come_through_the_sdk_and_a_server_error_is_retried(tmp_path, api):
    record, _run = compare(write_suite(tmp_path, api.url), CompareOptions(out=tmp_path / "run"))
    assert record.strategies["zero"].metrics["exact_match"].mean == 1.0
    assert record.strategies["zero"].n_errors == 0  # the injected 500 was retried by the SDK
    chats = [r for r in api.script.requests if r["path"].endswith("/chat/completions")]
    assert len(chats) == 1 + 2 * len(CAPITALS)  # one failed try + one answer per case and strategy
    assert all(r["auth"] == f"Bearer {KEY}" for r in api.script.requests)
    assert all(r["body"]["temperature"] == 0.0 and r["body"]["model"] == "gpt-test" for r in chats)
    zero = record.strategies["zero"]
    assert zero.input_tokens_mean > 0 and zero.latency.p50_s is not None
    # Priced by the server's reported usage at the suite's prices: $1 per 1M input tokens, $2 per 1M output.
    assert zero.cost.pricing.kind == "tokens"
    expected = zero.input_tokens_mean * 1.0 / 1e6 + zero.output_tokens_mean * 2.0 / 1e6
    assert zero.cost.per_request_usd == pytest.approx(expected)
    assert record.budget.paid_usd == pytest.approx(expected * 2 * len(CAPITALS), rel=0.5)


def test_a_request_that_keeps_failing_is_that_case_error_and_the_run_completes(tmp_path, api):
    bad = {"id": "atlantis", "question": "What is the capital of Atlantis?", "answer": "none"}
    record, _run = compare(write_suite(tmp_path, api.url, extra_cases=[bad]), CompareOptions(out=tmp_path / "run"))
    assert record.status == "complete"
    assert record.strategies["zero"].n_errors == 1 and record.strategies["zero"].n_done == len(CAPITALS) + 1
    lines = [json.loads(x) for x in (tmp_path / "run" / "cases.jsonl").read_text().splitlines()]
    failed = [x for x in lines if x["case_id"] == "atlantis" and x["strategy"] == "zero"]
    assert failed and "no such country" in failed[0]["error"]


def test_an_openai_compatible_judge_scores_ragas_metrics_with_json_schema(tmp_path, api):
    scorers = [
        {"kind": "exact_match"},
        {"kind": "faithfulness", "config": {"judge": "judge"}},
        {"kind": "context_recall", "config": {"judge": "judge"}},
    ]
    record, run = compare(write_suite(tmp_path, api.url, scorers=scorers), CompareOptions(out=tmp_path / "run"))
    rag = record.strategies["rag"]
    assert rag.metrics["faithfulness"].mean == 1.0 and rag.metrics["context_recall"].mean == 1.0
    assert "faithfulness" not in record.strategies["zero"].metrics
    judged = [r["body"] for r in api.script.requests if r["body"].get("model") == "judge-test"]
    assert len(judged) == run.counts.judge_calls == 3 * len(CAPITALS)  # 2 faithfulness + 1 recall per case
    assert {b["response_format"]["json_schema"]["name"] for b in judged} == set(JUDGE)
    evaluation = rag.setup.evaluation["faithfulness"].judge
    assert evaluation.parse_failures == 0 and evaluation.input_tokens > 0
    # Judging is evaluation cost at gpt-4o-mini's sheet prices ($0.15 / $0.60 per 1M), apart from production cost.
    judged_usd = evaluation.input_tokens * 0.15 / 1e6 + evaluation.output_tokens * 0.60 / 1e6
    assert rag.setup.evaluation["faithfulness"].cost_usd == pytest.approx(judged_usd)
    assert rag.cost.evaluation_usd >= judged_usd
    assert [item.what for item in rag.cost.setup_items] == ["indexing"]  # judging is not a setup cost
    # The key went to the server and nowhere else.
    for folder in (tmp_path / "run", harness_home()):
        for path in folder.rglob("*"):
            if path.is_file():
                assert KEY.encode() not in path.read_bytes(), path


def test_missing_key_is_a_configuration_error(tmp_path, api, monkeypatch):
    monkeypatch.delenv("TEST_CHAT_KEY")
    suite = write_suite(tmp_path, api.url)
    proc = harness_cli("compare", str(suite), "--out", str(tmp_path / "run"))
    assert proc.returncode == 2, proc.stderr
    assert "TEST_CHAT_KEY" in proc.stderr and "Traceback" not in proc.stderr
    assert not [r for r in api.script.requests if r["path"].endswith("/chat/completions")]
