"""The `openai` backend under faults, against the local OpenAI-compatible server: 429s with Retry-After, 500s, slow
answers past the timeout, dropped connections and malformed bodies at a set rate. Every case ends answered or as
an error, concurrency backs off and recovers, streaming measures time to first token."""

from __future__ import annotations

import json
import time

import pytest
import yaml

from harness.backends.openai_api import AIMD, retry_after_s
from harness.run.compare import CompareOptions, compare
from tests.conftest import write_jsonl
from tests.fake_openai import FakeOpenAI, Script

KEY = "sk-test-faults-0123456789"


def echo(body):
    question = body["messages"][-1]["content"]
    return "answer " + question.split()[-1]


def suite_file(folder, url, n, **config):
    write_jsonl(folder / "test.jsonl", [{"id": f"c{i}", "q": f"question {i}", "a": f"answer {i}"} for i in range(n)])
    api = {
        "base_url": url,
        "api_key_env": "FAULT_KEY",
        "concurrency": 32,
        "timeout_s": 0.5,
        "max_retries": 8,
        "backoff_s": 0.02,
        "max_backoff_s": 0.2,
        **config,
    }
    suite = {
        "name": "faults",
        "task": {"instructions": "Answer.", "input_field": "q", "target_field": "a"},
        "data": {"test": "test.jsonl"},
        "backends": [{"name": "api", "kind": "openai", "model": "gpt-4o-mini", "config": api}],
        "strategies": [{"name": "zero", "kind": "zero_shot"}],
        "scorers": [{"kind": "exact_match"}],
    }
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def test_with_20_percent_faults_every_case_ends_answered_or_as_an_error(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("FAULT_KEY", KEY)
    faults = {"429": 0.08, "500": 0.04, "slow": 0.03, "drop": 0.03, "malformed": 0.02}  # 20% of requests
    script = Script(chat=echo, faults=faults, retry_after_s=0.05, slow_s=1.5, seed=3)
    caplog.set_level("INFO", logger="harness.backends.openai_api")
    with FakeOpenAI(script) as url:
        record, run = compare(suite_file(tmp_path, url, 500), CompareOptions(out=tmp_path / "run"))
    zero = record.strategies["zero"]
    lines = [json.loads(x) for x in (tmp_path / "run" / "cases.jsonl").read_text().splitlines()]
    assert record.status == "complete" and zero.n_done == 500 and len(lines) == 500
    assert all((x["output"] is not None) != (x["error"] is not None) for x in lines)  # answered xor error
    print(
        f"\nfault run: 500 cases, injected {dict(script.injected)}, {zero.n_errors} ended as errors, "
        f"{len(script.requests)} requests"
    )
    assert zero.metrics["exact_match"].mean >= 0.98  # retries got nearly every case through
    assert set(script.injected) == set(faults)  # every kind of fault happened
    backend = run.backends["api"]
    assert backend.stats["rate_limited"] >= 1 and backend.stats["retries"] >= 0.15 * 500
    changes = backend.concurrency_log
    assert any(c["to"] < c["from"] for c in changes), changes  # backed off on 429s ...
    assert any(c["to"] > c["from"] for c in changes), changes  # ... and recovered
    assert "concurrency 32 -> 16" in caplog.text  # and said so


def test_streamed_answers_have_time_to_first_token_and_usage(tmp_path, monkeypatch):
    monkeypatch.setenv("FAULT_KEY", KEY)
    script = Script(chat=lambda body: "answer " + " ".join(["word"] * 20), latency_s=0.05)
    with FakeOpenAI(script) as url:
        record, _ = compare(suite_file(tmp_path, url, 8), CompareOptions(out=tmp_path / "run"))
    lines = [json.loads(x) for x in (tmp_path / "run" / "cases.jsonl").read_text().splitlines()]
    assert all(x["ttft_s"] is not None and 0 < x["ttft_s"] <= x["latency_s"] for x in lines)
    assert all(x["output_tokens"] == 21 and x["input_tokens"] > 0 for x in lines)  # usage from the stream
    assert all(
        r["body"]["stream"] is True and r["body"]["stream_options"] == {"include_usage": True} for r in script.requests
    )
    latency = record.strategies["zero"].latency
    assert latency.ttft_p50_s is not None and latency.ttft_p50_s <= latency.p50_s


def test_retry_after_headers_are_read_as_the_server_means_them():
    assert retry_after_s({"retry-after-ms": "250"}) == pytest.approx(0.25)
    assert retry_after_s({"retry-after": "2"}) == pytest.approx(2.0)
    http_date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 28 <= retry_after_s({"retry-after": http_date}) <= 31
    exhausted = {
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "6m0s",
        "x-ratelimit-remaining-tokens": "100",
        "x-ratelimit-reset-tokens": "20ms",
    }
    assert retry_after_s(exhausted) == pytest.approx(360.0)  # only the exhausted limit counts
    assert retry_after_s(
        {"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "1h2m3.5s"}
    ) == pytest.approx(3723.5)
    assert retry_after_s({}) is None


def test_aimd_halves_once_per_wave_and_grows_back_by_one():
    import asyncio

    async def scenario():
        aimd = AIMD(limit=16, low=2, high=16)
        aimd.bind()
        aimd.rate_limited(0.5)
        aimd.rate_limited(0.5)  # the same wave of 429s: one halving
        assert aimd.limit == 8
        for _ in range(8):
            aimd.success()
        assert aimd.limit == 9  # additive increase after a limit's worth of successes
        for _ in range(20):
            aimd.decreased_at = 0  # a later wave
            aimd.rate_limited(0.0)
        assert aimd.limit == 2  # never below the floor
        return aimd.log

    log = asyncio.run(scenario())
    assert [(c["from"], c["to"]) for c in log][:2] == [(16, 8), (8, 9)]


def test_a_client_error_is_not_retried(tmp_path, monkeypatch):
    monkeypatch.setenv("FAULT_KEY", KEY)

    def refuse(body):
        raise LookupError("model refuses this input")

    script = Script(chat=refuse)
    with FakeOpenAI(script) as url:
        record, _ = compare(suite_file(tmp_path, url, 3), CompareOptions(out=tmp_path / "run"))
    assert record.strategies["zero"].n_errors == 3
    assert len(script.requests) == 3  # a 400 is the answer: no retry
