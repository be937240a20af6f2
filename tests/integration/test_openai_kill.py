"""kill -9 of `harness compare` in the middle of an API run, then the same command again: the local server's
counts show no answer that the first run had recorded was asked for again, and the results equal an
uninterrupted run's."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import api_suite, harness_cli, start_compare
from tests.fake_openai import FakeOpenAI, Script, body_key

pytestmark = pytest.mark.slow

KEY = "sk-test-kill-abcdef0123456789"  # also the tuner test key below
N = 160


def reply(body):
    return "answer " + body["messages"][-1]["content"].split()[-1]


def suite(folder: Path, url: str) -> Path:
    return api_suite(folder, url, key_env="KILL_KEY", n_test=N)


def start(path: Path, out: Path, home: Path) -> subprocess.Popen:
    return start_compare(path, out, home, KILL_KEY=KEY)


def outputs(out: Path) -> dict[str, str]:
    lines = [json.loads(x) for x in (out / "cases.jsonl").read_text().splitlines()]
    return {x["case_id"]: x["output"] for x in lines}


def test_kill_9_mid_run_then_rerun_pays_nothing_twice_and_matches_an_uninterrupted_run(tmp_path):
    script = Script(chat=reply, latency_s=0.05)
    with FakeOpenAI(script) as url:
        path = suite(tmp_path / "s", url)
        out, home = tmp_path / "run", tmp_path / "home"
        proc = start(path, out, home)
        deadline = time.monotonic() + 60
        while sum(script.completed.values()) < N // 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        killed_at = time.time()
        recorded_before = set(outputs(out))
        assert 0 < len(recorded_before) < N, "the kill must land mid-run"
        requests_before = len(script.requests)

        again = start(path, out, home)
        stdout, stderr = again.communicate(timeout=120)
        assert again.returncode == 0, stderr[-2000:]

    # No answer the first run had recorded was asked for again.
    bodies = {r["body"]["messages"][-1]["content"].split()[-1]: body_key(r["body"]) for r in script.requests}
    for case_id in recorded_before:
        assert script.completed[bodies[case_id.removeprefix("c")]] == 1, case_id
    # Answers delivered twice were in flight at the kill (sent by the server as the client died, never recorded):
    # at most the concurrency, each delivered the first time around the kill.
    repeated = [k for k, n in script.completed.items() if n > 1]
    assert len(repeated) <= 4, repeated
    firsts = {}
    for key, at in script.completed_at:
        firsts.setdefault(key, at)
    assert all(abs(killed_at - firsts[k]) < 2.0 for k in repeated)
    print(
        f"\nkill -9 after {len(recorded_before)} of {N} answers recorded; the rerun sent "
        f"{len(script.requests) - requests_before} requests; {len(repeated)} answers in flight at the kill were "
        "delivered twice"
    )

    # The results equal an uninterrupted run's.
    reference = Script(chat=reply)
    with FakeOpenAI(reference) as url:
        path = suite(tmp_path / "ref", url)
        clean = start(path, tmp_path / "clean", tmp_path / "home2")
        _, stderr = clean.communicate(timeout=120)
        assert clean.returncode == 0, stderr[-2000:]
    assert outputs(out) == outputs(tmp_path / "clean")
    assert len((out / "cases.jsonl").read_text().splitlines()) == N  # no torn or duplicate lines
    # The key reached the server and no file, log or report.
    assert all(r["auth"] == f"Bearer {KEY}" for r in script.requests)
    assert KEY not in stdout + stderr
    exported = harness_cli(
        "report", str(out), "--html", str(tmp_path / "r.html"), "--md", str(tmp_path / "r.md"), home=home
    )
    assert exported.returncode == 0, exported.stderr[-2000:]
    for file in [*out.rglob("*"), *home.rglob("*"), tmp_path / "r.html", tmp_path / "r.md"]:
        if file.is_file():
            assert KEY.encode() not in file.read_bytes(), file


def test_kill_9_while_a_fine_tuning_job_runs_then_rerun_follows_the_same_job(tmp_path):
    from tests.unit.test_openai_tuner import answers, suite_file

    script = Script(chat=answers, job_step_polls=10_000)  # the job stays unfinished until we let it finish
    with FakeOpenAI(script) as url:
        path = suite_file(tmp_path / "s", url)
        args = ["compare", str(path), "--out", str(tmp_path / "run")]
        proc = start_compare(path, tmp_path / "run", tmp_path / "home", TUNER_KEY=KEY)
        deadline = time.monotonic() + 60
        while not any(j["_polls"] >= 2 for j in script.jobs.values()) and time.monotonic() < deadline:
            time.sleep(0.05)  # until the job exists and is being followed
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert len(script.jobs) == 1
        (job_id,) = script.jobs
        script.job_step_polls = 1  # the provider finishes the job
        again = harness_cli(*args, home=tmp_path / "home", env={"TUNER_KEY": KEY}, timeout=120)  # the same command
        assert again.returncode == 0, again.stderr[-2000:]
    assert len(script.jobs) == 1  # followed, never created again
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["strategies"]["ft"]["setup"]["given"]["training"]["job_id"] == job_id
    assert "following fine-tuning job" in again.stderr


def test_the_local_server_can_serve_a_real_tiny_model(tiny_model, tmp_path, monkeypatch):
    """The same server, answering with a local transformers model: what a self-hosted vLLM or llama.cpp endpoint
    looks like to the `openai` backend (streamed, with usage)."""
    from harness.backends.base import GenRequest
    from harness.backends.hf import HFBackend, HFConfig
    from harness.run.compare import CompareOptions, compare
    from harness.suite.schema import BackendSpec, GenerationParams
    from tests.fake_openai import model_chat

    local = HFBackend(BackendSpec(name="tiny", kind="hf", model=str(tiny_model)), HFConfig())
    monkeypatch.setenv("KILL_KEY", KEY)
    script = Script(chat=model_chat(local))
    with FakeOpenAI(script) as url:
        path = suite(tmp_path / "s", url)
        compare(path, CompareOptions(out=tmp_path / "run", limit=4))
    lines = [json.loads(x) for x in (tmp_path / "run" / "cases.jsonl").read_text().splitlines()]
    assert len(lines) == 4 and all(x["error"] is None and x["output_tokens"] > 0 for x in lines)
    # the answers are the local model's own greedy text
    question = [{"role": "system", "content": "Answer."}, {"role": "user", "content": "question 0"}]
    direct = dict(local.generate([GenRequest(question, GenerationParams(max_new_tokens=64))]))[0]
    first = next(x for x in lines if x["case_id"] == "c0")  # lines come in the order answers finished (4 at once)
    assert first["output"] == direct.text
    local.close()
