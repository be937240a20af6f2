"""RAG with `embedder: {kind: openai}` against a local server speaking the embeddings API (no network).

The server embeds text as a hashed bag of words, so lexical overlap decides retrieval and a right answer proves
the vectors went through the API, the SDK and the FAISS index."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.home import harness_home
from harness.run.compare import CompareOptions, compare
from tests.conftest import harness_cli
from tests.fake_openai import FakeOpenAI, Script

KEY = "sk-test-embeddings-0123456789abcdef"


@pytest.fixture()
def server():
    script = Script()
    with FakeOpenAI(script) as url:
        yield SimpleNamespace(url=url, script=script)


CORPUS = [
    {"id": "volcano", "title": "Volcanoes", "text": "Magma rises through the crust and erupts as lava from a volcano."},
    {"id": "violin", "title": "Violins", "text": "A violin has four strings tuned in fifths and is played with a bow."},
    {
        "id": "glacier",
        "title": "Glaciers",
        "text": "Glaciers are rivers of ice that carve valleys as they slowly move.",
    },
]
QUESTIONS = [
    {"id": "q1", "question": "What erupts as lava from a volcano?", "answer": "magma", "doc_id": "volcano"},
    {"id": "q2", "question": "How many strings does a violin have?", "answer": "four", "doc_id": "violin"},
    {"id": "q3", "question": "What do glaciers carve as they move?", "answer": "valleys", "doc_id": "glacier"},
]


def n_inputs(request: dict) -> int:
    body = request["body"]["input"]
    return len(body) if isinstance(body, list) else 1


def write_suite(folder: Path, base_url: str, price: float | None = 0.02) -> Path:
    (folder / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in CORPUS))
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in QUESTIONS))
    embedder = {
        "kind": "openai",
        "model": "text-embedding-3-small",
        "base_url": base_url,
        "batch_size": 2,
        "api_key_env": "TEST_EMBED_KEY",
    }
    if price is not None:
        embedder["usd_per_1m_tokens"] = price
    suite = {
        "name": "oai-embed",
        "task": {"instructions": "Answer in one word.", "input_field": "question", "target_field": "answer"},
        "data": {"test": "test.jsonl"},
        "backends": [
            {
                "name": "fake",
                "kind": "fake",
                "config": {
                    "rules": [
                        {"pattern": "Magma rises", "answer": "magma"},
                        {"pattern": "four strings", "answer": "four"},
                        {"pattern": "carve valleys", "answer": "valleys"},
                    ]
                },
            }
        ],
        "strategies": [
            {"name": "rag", "kind": "rag", "config": {"corpus": "corpus.jsonl", "embedder": embedder, "top_k": 1}}
        ],
        "scorers": [{"kind": "exact_match"}, {"kind": "hit_rate"}],
    }
    path = folder / "suite.yaml"
    path.write_text(json.dumps(suite))
    return path


def test_openai_embedder_indexes_and_retrieves_through_the_api(tmp_path, server, monkeypatch):
    monkeypatch.setenv("TEST_EMBED_KEY", KEY)
    record, _ = compare(write_suite(tmp_path, server.url), CompareOptions(out=tmp_path / "run"))
    rag = record.strategies["rag"]
    assert rag.metrics["hit_rate"].mean == 1.0
    assert rag.metrics["exact_match"].mean == 1.0
    index = rag.setup.given.index
    assert index.embedder["kind"] == "openai"
    # 3 chunks at batch_size 2 -> 2 requests for the index, then one per query (no warm-up query: it would be paid)
    assert [n_inputs(r) for r in server.script.requests] == [2, 1] + [1] * len(QUESTIONS)
    assert all(r["path"].endswith("/embeddings") and r["auth"] == f"Bearer {KEY}" for r in server.script.requests)
    assert rag.setup.given.setup_costs[0].usd > 0
    assert "usd_per_1m_tokens" in rag.setup.given.setup_costs[0].basis
    # The key reaches the server but no file of the run folder or the index cache.
    index_folder = harness_home() / "indexes" / index.key
    assert (index_folder / "vectors.npy").exists()
    for folder in (tmp_path / "run", index_folder):
        for path in folder.rglob("*"):
            if path.is_file():
                assert KEY not in path.read_text(errors="ignore"), path


def test_a_cached_openai_index_and_cached_queries_make_no_embedding_request(tmp_path, server, monkeypatch):
    monkeypatch.setenv("TEST_EMBED_KEY", KEY)
    suite = write_suite(tmp_path, server.url)
    compare(suite, CompareOptions(out=tmp_path / "run1"))
    index_calls = sum(n_inputs(r) for r in server.script.requests)
    server.script.requests.clear()
    record, _ = compare(suite, CompareOptions(out=tmp_path / "run2"))
    assert record.strategies["rag"].setup.given.index.reused_from_cache is True
    # No corpus text re-embedded, and the 3 questions' embeddings come from the query cache: no request at all.
    assert index_calls > 3 and sum(n_inputs(r) for r in server.script.requests) == 0


def test_no_cache_embeds_every_query_again_and_keeps_none(tmp_path, server, monkeypatch):
    monkeypatch.setenv("TEST_EMBED_KEY", KEY)
    suite = write_suite(tmp_path, server.url)
    compare(suite, CompareOptions(out=tmp_path / "run1"))  # the index and the 3 queries are kept

    def kept() -> int:
        with sqlite3.connect(harness_home() / "cache" / "query_embeddings.sqlite") as db:
            return db.execute("SELECT COUNT(*) FROM queries").fetchone()[0]

    assert kept() == len(QUESTIONS)
    server.script.requests.clear()
    compare(suite, CompareOptions(out=tmp_path / "run2", use_cache=False))
    # --no-cache: the index is reused (it is not an answer), but each question is embedded again, none read back
    assert sum(n_inputs(r) for r in server.script.requests) == len(QUESTIONS)
    with sqlite3.connect(harness_home() / "cache" / "query_embeddings.sqlite") as db:
        db.execute("DELETE FROM queries")
    server.script.requests.clear()
    compare(suite, CompareOptions(out=tmp_path / "run3", use_cache=False))
    assert sum(n_inputs(r) for r in server.script.requests) == len(QUESTIONS)
    assert kept() == 0  # nothing written to the query cache either


def test_missing_api_key_is_a_clear_error(tmp_path, server, monkeypatch):
    monkeypatch.delenv("TEST_EMBED_KEY", raising=False)
    suite = write_suite(tmp_path, server.url)
    proc = harness_cli("compare", str(suite), "--out", str(tmp_path / "run"))
    assert proc.returncode == 2, proc.stderr
    assert "TEST_EMBED_KEY" in proc.stderr and "Traceback" not in proc.stderr


def test_an_api_embedder_is_priced_from_the_sheet_and_its_queries_count_in_the_request_cost(
    tmp_path, server, monkeypatch
):
    monkeypatch.setenv("TEST_EMBED_KEY", KEY)
    record, _ = compare(write_suite(tmp_path, server.url, price=None), CompareOptions(out=tmp_path / "run"))
    rag = record.strategies["rag"]
    given = rag.setup.given
    # text-embedding-3-small at the price sheet's $0.02 per 1M tokens
    assert "text-embedding-3-small input price" in given.setup_costs[0].basis
    lines = [json.loads(x) for x in (tmp_path / "run" / "cases.jsonl").read_text().splitlines()]
    queries = [(len(x["input"]) + 3) // 4 * 0.02 / 1e6 for x in lines]  # ~4 characters a token
    assert [x["meta"]["retrieval"]["query_embedding_usd"] for x in lines] == pytest.approx(queries)
    assert rag.cost.per_request_by_part_usd["query_embedding"] == pytest.approx(sum(queries) / len(queries))
    # the index and each query were billed by the provider: paid spend; the index is also the strategy's setup
    assert record.budget.paid_usd == pytest.approx(given.setup_costs[0].usd + sum(queries))
    assert (tmp_path / "run" / "spend.jsonl").exists()  # the index charge is on the ledger at once
    assert rag.cost.setup_usd == pytest.approx(given.setup_costs[0].usd)
