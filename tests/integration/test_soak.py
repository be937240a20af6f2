"""Fault soak: 2,000 cases through `harness compare` and the `openai` backend against the local server, with 20% of
requests faulted (a seeded mix of 429 with Retry-After, 500, slow answers past the timeout, dropped connections,
malformed bodies) and a budget_usd that runs out partway. The run finishes; what it records paid never passes the
cap; every case ends answered, recorded as an error with its cause, or held back by the budget; cases.jsonl has one
whole line per case; no answer is paid twice except those the server finished after the client gave up waiting
(counted and reported). A rerun with a larger budget asks only for the held-back and errored cases and finishes.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from tests.conftest import harness_cli, report_check, write_jsonl
from tests.fake_openai import FakeOpenAI, Script, body_key

pytestmark = pytest.mark.slow

N = 2000
KEY = "sk-test-soak-0123456789abcdef"
FAULTS = {"429": 0.05, "500": 0.05, "slow": 0.03, "drop": 0.04, "malformed": 0.03}  # 20% of requests
IN_PRICE, OUT_PRICE = 1.0, 10.0  # $ per 1M tokens of the model "soak-model"
PAD = 10  # answers are 12 words: longer than the targets the estimate goes by, so the estimate fits the budget
TIMEOUT_S = 1.0  # the client's per-attempt timeout; a "slow" answer takes 1.5 s


def reply(body) -> str:
    return "answer " + body["messages"][-1]["content"].split()[-1] + " ok" * PAD


def usd_per_answer() -> float:
    """What the server bills for one answer: its usage is words (prompt: 'Answer.' + 'question i')."""
    return (3 * IN_PRICE + (2 + PAD) * OUT_PRICE) / 1e6


def suite_file(folder: Path, url: str, budget_usd: float) -> Path:
    write_jsonl(folder / "test.jsonl", [{"id": f"c{i}", "q": f"question {i}", "a": f"answer {i}"} for i in range(N)])
    api = {
        "base_url": url,
        "api_key_env": "SOAK_KEY",
        "concurrency": 16,
        "timeout_s": TIMEOUT_S,
        "max_retries": 2,
        "backoff_s": 0.01,
        "max_backoff_s": 0.05,
    }
    suite = {
        "name": "soak",
        "budget_usd": budget_usd,
        "task": {"instructions": "Answer.", "input_field": "q", "target_field": "a"},
        "data": {"test": "test.jsonl"},
        "backends": [
            {
                "name": "api",
                "kind": "openai",
                "model": "soak-model",
                "config": api,
                "generation": {"max_new_tokens": 16},
            }
        ],
        "strategies": [{"name": "zero", "kind": "zero_shot"}],
        "scorers": [{"kind": "exact_match"}],
        "economics": {"prices": {"soak-model": {"input_per_1m_usd": IN_PRICE, "output_per_1m_usd": OUT_PRICE}}},
    }
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


def read_lines(out: Path) -> list[dict]:
    raw = (out / "cases.jsonl").read_bytes()
    assert raw.endswith(b"\n"), "a torn last line"
    return [json.loads(line) for line in raw.decode().split("\n") if line.strip()]  # every line whole JSON


def ledger_rows(out: Path) -> list[dict]:
    ledger = out / "spend.jsonl"
    return [json.loads(x) for x in ledger.read_text().splitlines() if x.strip()] if ledger.exists() else []


def paid_usd(out: Path, lines: list[dict]) -> float:
    """Confirmed spend: answers recorded, and ledger items other than attempts never answered."""
    setup = sum(x["usd"] for x in ledger_rows(out) if "never answered" not in x["what"])
    return sum(x["paid_usd"] for x in lines) + setup


def unconfirmed_usd(out: Path) -> float:
    """Attempts sent but never answered (timed out, dropped, garbled), which a provider may have billed: counted
    by the runner at their most, against the budget too."""
    return sum(x["usd"] for x in ledger_rows(out) if "never answered" in x["what"])


def case_of(request: dict) -> str:
    return "c" + request["body"]["messages"][-1]["content"].split()[-1]


def late(request: dict) -> bool:
    """Delivered after the client gave up waiting: a slow answer, or one slowed past the timeout by the load on
    this machine (the server's clock starts when the request arrives, a little after the client's)."""
    return request["served_s"] is not None and (request["fault"] == "slow" or request["served_s"] >= 0.8 * TIMEOUT_S)


def by_case(requests: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in requests:
        out.setdefault(case_of(r), []).append(r)
    return out


def test_2000_cases_with_20_percent_faults_and_a_budget_that_runs_out(tmp_path):
    budget = round(0.7 * N * usd_per_answer(), 6)  # enough for about 70% of the cases
    out, home = tmp_path / "run", tmp_path / "home"
    script = Script(chat=reply, faults=FAULTS, retry_after_s=0.05, slow_s=1.5, seed=20)
    started = time.monotonic()
    with FakeOpenAI(script) as url:
        path = suite_file(tmp_path / "suite", url, budget)
        first = harness_cli("compare", str(path), "--out", str(out), home=home, env={"SOAK_KEY": KEY})
        first_s = time.monotonic() - started
        # Stopped by the budget is not a failure: exit 0, status "incomplete", and the output says what to do.
        assert first.returncode == 0, first.stderr[-3000:]
        assert "paid calls not made at the cap" in " ".join(first.stdout.split()), first.stdout[-2000:]
        run = json.loads((out / "run.json").read_text())
        assert run["status"] == "incomplete"
        first_requests = list(script.requests)
        completed = Counter(script.completed)
        injected = dict(script.injected)

        lines = read_lines(out)
        keys = [(x["strategy"], x["case_id"], x["repeat"]) for x in lines]
        duplicates = len(keys) - len(set(keys))
        assert duplicates == 0
        answered = [x for x in lines if x["error"] is None]
        errors = [x for x in lines if x["error"] is not None]
        held_back = run["budget"]["skipped"].get("zero", 0)
        # every case: answered, an error with its cause, or held back by the budget; none twice, none lost
        assert len(answered) + len(errors) + held_back == N
        assert all(x["output"] == f"answer {x['case_id'][1:]}" + " ok" * PAD for x in answered)  # its own answer
        assert all("attempts" in x["error"] and x["output"] is None and x["paid_usd"] == 0 for x in errors)
        assert run["strategies"]["zero"]["n_errors"] == len(errors)
        # the cap: what was paid never passes it, and the budget did run out partway (about 70% answered)
        paid, unconfirmed = paid_usd(out, lines), unconfirmed_usd(out)
        assert paid <= budget and run["budget"]["paid_usd"] == pytest.approx(paid + unconfirmed)
        assert paid + unconfirmed <= budget  # the cap holds even if the provider billed every unanswered attempt
        assert paid == pytest.approx(len(answered) * usd_per_answer())  # each answer paid once, errors not at all
        assert 0.6 * N < len(answered) < 0.72 * N and held_back > 0.25 * N
        assert set(FAULTS) <= set(injected) and 0.15 < sum(injected[f] for f in FAULTS) / len(first_requests) < 0.25

        # Never paid twice: per case, the server delivered one answer for each recorded one; an extra delivery
        # only where an answer came after the client had timed out and retried (a provider may bill those).
        sent = by_case(first_requests)
        recorded = {x["case_id"] for x in answered}
        extra = {}
        for case_id, requests in sent.items():
            delivered = completed[body_key(requests[0]["body"])]
            assert delivered >= (case_id in recorded), case_id  # an answer recorded was delivered by the server
            if delivered > (case_id in recorded):
                extra[case_id] = delivered - (case_id in recorded)
                assert extra[case_id] <= sum(map(late, requests)), (case_id, requests)
        held_ids = {f"c{i}" for i in range(N)} - {x["case_id"] for x in lines}
        assert len(held_ids) == held_back and not held_ids & set(sent)  # held back: never sent

        # A larger budget: only the held-back and errored cases are asked for again, and the run finishes.
        script.faults = {}
        before = len(script.requests)
        path = suite_file(tmp_path / "suite", url, budget * 10)
        rerun_started = time.monotonic()
        second = harness_cli(
            "compare", str(path), "--out", str(out), "--retry-errors", home=home, env={"SOAK_KEY": KEY}
        )
        rerun_s = time.monotonic() - rerun_started
        assert second.returncode == 0, second.stderr[-3000:]
    again = by_case(script.requests[before:])
    assert set(again) == held_ids | {x["case_id"] for x in errors}  # these, and no other case
    for requests in again.values():  # each once, unless an attempt ran past the client's timeout
        assert len(requests) - 1 <= sum(r["served_s"] is None or late(r) for r in requests[:-1]), requests
    rerun_calls = sum(map(len, again.values()))
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "complete" and not run["budget"]["skipped"]
    lines = read_lines(out)
    assert len(lines) == N and len({x["case_id"] for x in lines}) == N and all(x["error"] is None for x in lines)
    assert paid_usd(out, lines) == pytest.approx(N * usd_per_answer())

    lost = sum(extra.values())
    # what a provider may bill for answers it finished after the client gave up is covered by the runner's count
    assert unconfirmed >= lost * usd_per_answer() > 0
    slow_lost = sum(min(n, sum(r["fault"] == "slow" for r in sent[c])) for c, n in extra.items())
    print(
        f"\nsoak: {N} cases, {len(first_requests)} requests, faults {injected}; answered {len(answered)}, "
        f"errors {len(errors)}, held back {held_back}; paid ${paid:.4f} of ${budget:.4f}; {lost} answers finished "
        f"by the server after the client gave up ({slow_lost} of them slow faults; up to "
        f"${lost * usd_per_answer():.4f} a provider may bill); rerun: {rerun_calls} calls for {len(again)} cases; "
        f"{first_s:.1f}s + {rerun_s:.1f}s"
    )
    report_check(
        "fault soak",
        cases=N,
        faults_injected=sum(injected.values()),
        answered=len(answered),
        errors=len(errors),
        held_back_by_budget=held_back,
        paid_usd=round(paid, 6),
        budget_usd=budget,
        unconfirmed_attempts_usd=round(unconfirmed, 6),
        duplicates=duplicates,
        delivered_after_timeout=lost,
        rerun_cases=len(again),
        rerun_calls=rerun_calls,
    )
