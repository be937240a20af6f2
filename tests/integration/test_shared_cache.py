"""Two runs sharing the response cache (a CI matrix: different run folders, one HARNESS_HOME) never make the same
paid call at the same time: a call in flight in one process is claimed, and the other waits for its answer. The
local server counts the calls. When the wait runs out, the waiting process makes the calls itself and says so."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import api_suite, report_check, start_compare
from tests.fake_openai import FakeOpenAI, Script

pytestmark = pytest.mark.slow

KEY = "sk-test-shared-0123456789abcdef"
N_TEST, N_DEV, N_TRAIN = 60, 4, 6


def reply(body):
    if "response_format" in body:  # the judge: a grade
        return json.dumps({"reason": "matches", "score": 5})
    return "answer " + body["messages"][-1]["content"].split()[-1]


def suite(folder: Path, url: str, concurrency: int = 4, n_test: int = N_TEST, judged: bool = True) -> Path:
    judge = [{"kind": "model_graded", "config": {"judge": "api", "rubric": "Is it right?", "scale": [1, 5]}}]
    return api_suite(
        folder,
        url,
        key_env="SHARED_KEY",
        n_test=n_test,
        n_dev=N_DEV,
        n_train=N_TRAIN,
        concurrency=concurrency,
        strategies=[
            {"name": "zero", "kind": "zero_shot"},
            {"name": "few", "kind": "few_shot", "config": {"k": 2, "selection": "random"}},
        ],
        scorers=[{"kind": "exact_match"}] + (judge if judged else []),  # the judge's calls: outside the test plan
    )


def start(path: Path, out: Path, home: Path, **env_extra: str) -> subprocess.Popen:
    return start_compare(path, out, home, SHARED_KEY=KEY, **env_extra)


def chat_calls(script: Script) -> int:
    return sum(1 for r in script.requests if r["path"].endswith("/chat/completions"))


def outputs(out: Path) -> dict[tuple[str, str], str]:
    lines = [json.loads(x) for x in (out / "cases.jsonl").read_text().splitlines()]
    return {(x["strategy"], x["case_id"]): x["output"] for x in lines}


def one_run_calls(tmp_path: Path) -> tuple[int, dict]:
    script = Script(chat=reply)
    with FakeOpenAI(script) as url:
        proc = start(suite(tmp_path / "alone", url), tmp_path / "alone-run", tmp_path / "alone-home")
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    return chat_calls(script), outputs(tmp_path / "alone-run")


def test_two_runs_sharing_a_cache_pay_each_call_once(tmp_path):
    alone, expected = one_run_calls(tmp_path)
    script = Script(chat=reply, latency_s=0.05)
    with FakeOpenAI(script) as url:
        path, home = suite(tmp_path / "s", url), tmp_path / "home"
        first = start(path, tmp_path / "run-a", home)
        second = start(path, tmp_path / "run-b", home)
        results = [p.communicate(timeout=300) for p in (first, second)]
    for proc, (_, err) in zip((first, second), results, strict=True):
        assert proc.returncode == 0, err
        assert "Traceback" not in err
    calls = chat_calls(script)
    report_check("shared cache, two concurrent runs", one_run_calls=alone, both_runs_calls=calls)
    assert calls <= alone  # the second process waited for the first's answers (or answered them itself)
    assert outputs(tmp_path / "run-a") == outputs(tmp_path / "run-b") == expected


def test_a_wait_that_runs_out_makes_the_calls_and_says_so(tmp_path):
    script = Script(chat=reply, latency_s=3.0)  # the first answers one call every 3 s; the second waits 1 s
    with FakeOpenAI(script) as url:
        path, home = suite(tmp_path / "s", url, concurrency=1, n_test=4, judged=False), tmp_path / "home"
        first = start(path, tmp_path / "run-a", home)
        deadline = time.monotonic() + 120
        while not script.requests and time.monotonic() < deadline:  # the first has claimed and is calling
            time.sleep(0.05)
        second = start(path, tmp_path / "run-b", home, HARNESS_CLAIM_WAIT_S="1")
        _, err_b = second.communicate(timeout=300)
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=120)
    assert second.returncode == 0, err_b
    waited = re.findall(r"(\d+) calls another harness process \(pid (\d+)\) has in flight brought no answer", err_b)
    assert waited, err_b
    assert all(int(pid) == first.pid for _, pid in waited)
    assert "Traceback" not in err_b
    assert len(outputs(tmp_path / "run-b")) == 2 * 4
    taken = sum(int(n) for n, _ in waited)
    assert chat_calls(script) <= 2 * 4 + taken  # one run's calls, plus those it stopped waiting for
