"""End-to-end runs on the fake backend: results, resume, cache, errors as data, refusal to mix suites."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml

from harness.errors import RunFolderError
from harness.run.compare import CompareOptions, compare
from harness.run.folder import read_run
from tests.conftest import REPO, base_suite, write_suite


def run(suite, out, **kw):
    record, r = compare(suite, CompareOptions(out=out, **kw))
    return record, r.counts


def test_compare_writes_scored_cases_and_summaries(toy_suite, tmp_path):
    record, counts = run(toy_suite, tmp_path / "run")
    assert record.status == "complete"
    zero = record.strategies["zero"]
    # rules answer alpha and beta correctly; gamma cases get "no idea" (invalid): 6 of 9 right
    assert zero.n_done == 9 and zero.n_errors == 0
    assert zero.metrics["label_accuracy"].mean == pytest.approx(6 / 9)
    assert zero.metrics["label_accuracy"].n_invalid == 3
    assert zero.metrics["label_accuracy"].ci_method == "wilson"
    assert zero.metrics["label_accuracy"].ci_low < 6 / 9 < zero.metrics["label_accuracy"].ci_high
    assert counts.model_calls == 18
    df = pd.read_json(tmp_path / "run" / "cases.jsonl", lines=True)
    assert len(df) == 18 and set(df.strategy) == {"zero", "few"}
    assert {"input", "prompt", "output", "target", "scores", "input_tokens", "latency_s", "cache_hit", "error"} <= set(
        df.columns
    )
    loaded = read_run(tmp_path / "run")
    assert loaded.strategies["few"].setup.given.k == 3
    assert len(loaded.strategies["few"].setup.given.exemplar_ids) == 3
    assert loaded.manifest.seed == 7 and loaded.manifest.data_sha256


def test_rerun_resumes_without_redoing_or_repaying(toy_suite, tmp_path, monkeypatch):
    from harness.backends.fake import FakeBackend

    original = FakeBackend.generate
    calls = {"n": 0}

    def flaky(self, requests):
        for item in original(self, requests):
            calls["n"] += 1
            if calls["n"] == 5:
                raise KeyboardInterrupt  # as if the user pressed Ctrl-C mid-run
            yield item

    monkeypatch.setattr(FakeBackend, "generate", flaky)
    with pytest.raises(KeyboardInterrupt):
        run(toy_suite, tmp_path / "run")
    lines = (tmp_path / "run" / "cases.jsonl").read_text().splitlines()
    assert len(lines) == 4
    assert read_run(tmp_path / "run").status == "interrupted"

    monkeypatch.setattr(FakeBackend, "generate", original)
    record, counts = run(toy_suite, tmp_path / "run")
    assert counts.skipped_finished == 4 and counts.model_calls == 14 and counts.cache_hits == 0
    assert record.status == "complete"
    keys = [
        (json.loads(x)["strategy"], json.loads(x)["case_id"])
        for x in (tmp_path / "run" / "cases.jsonl").read_text().splitlines()
    ]
    assert len(keys) == len(set(keys)) == 18

    # A fresh folder answers everything from the response cache: no model call at all.
    record2, counts2 = run(toy_suite, tmp_path / "other")
    assert counts2.model_calls == 0 and counts2.cache_hits == 18
    assert (
        record2.strategies["zero"].metrics["label_accuracy"].mean
        == record.strategies["zero"].metrics["label_accuracy"].mean
    )
    # every answer came from the cache: latency is the one measured when each answer was made, and says so
    latency = record2.strategies["zero"].latency
    assert latency.n == 9 and latency.p95_s == pytest.approx(0.05) and "response cache" in latency.how


def test_failed_cases_are_data_and_retry_errors_reruns_only_them(tmp_path):
    suite = base_suite(fail_on="number [12]\\b")
    path = write_suite(tmp_path / "s", suite)
    record, _counts = run(path, tmp_path / "run", strategies=["zero"])
    zero = record.strategies["zero"]
    assert zero.n_errors == 2 and zero.n_done == 9
    assert zero.metrics["label_accuracy"].n == 9  # errors stay in the denominator, as wrong answers
    assert zero.metrics["label_accuracy"].mean == pytest.approx(5 / 9)
    errors = [
        json.loads(x) for x in (tmp_path / "run" / "cases.jsonl").read_text().splitlines() if json.loads(x)["error"]
    ]
    assert {e["case_id"] for e in errors} == {"test-1", "test-2"}

    _, again = run(path, tmp_path / "run", strategies=["zero"])
    assert again.model_calls == 0 and again.skipped_finished == 9
    _, retried = run(path, tmp_path / "run", strategies=["zero"], retry_errors=True)
    assert retried.model_calls == 2 and retried.skipped_finished == 7
    lines = (tmp_path / "run" / "cases.jsonl").read_text().splitlines()
    assert len(lines) == 9  # the retried cases replaced their old error lines


def test_editing_the_description_or_repeats_keeps_the_run_resumable(toy_suite, tmp_path):
    run(toy_suite, tmp_path / "run")
    data = yaml.safe_load(toy_suite.read_text())
    data["description"] = "now with a description"
    data["decision"] = {"min_gain": 0.05}
    toy_suite.write_text(yaml.safe_dump(data))
    _, counts = run(toy_suite, tmp_path / "run")
    assert counts.model_calls == 0 and counts.skipped_finished == 18


def test_changed_suite_is_not_mixed_into_an_old_run_folder(toy_suite, tmp_path):
    run(toy_suite, tmp_path / "run", limit=2)
    data = yaml.safe_load(toy_suite.read_text())
    data["strategies"][1]["config"]["k"] = 2
    toy_suite.write_text(yaml.safe_dump(data))
    with pytest.raises(RunFolderError, match="different suite"):
        run(toy_suite, tmp_path / "run")
    record, counts = run(toy_suite, tmp_path / "run", overwrite=True)
    assert record.status == "complete" and counts.skipped_finished == 0


def test_limit_then_full_run_reuses_the_limited_part(toy_suite, tmp_path):
    first, _ = run(toy_suite, tmp_path / "run", limit=3)
    assert first.strategies["zero"].n_done == 3 and first.strategies["zero"].n_planned == 9
    assert first.status == "incomplete"
    _, counts = run(toy_suite, tmp_path / "run")
    assert counts.skipped_finished == 6 and counts.model_calls == 12


def test_torn_last_line_is_dropped_and_redone(toy_suite, tmp_path):
    run(toy_suite, tmp_path / "run", strategies=["zero"], use_cache=False)
    cases = tmp_path / "run" / "cases.jsonl"
    text = cases.read_text()
    cases.write_text(text[: len(text) - 40])  # a kill in the middle of writing the last line
    _, counts = run(toy_suite, tmp_path / "run", strategies=["zero"], use_cache=False)
    assert counts.skipped_finished == 8 and counts.model_calls == 1
    assert all(json.loads(x) for x in cases.read_text().splitlines())


def test_greedy_repeats_are_answered_once(tmp_path):
    suite = base_suite()
    suite["repeats"] = 3
    path = write_suite(tmp_path / "s", suite)
    record, counts = run(path, tmp_path / "run", strategies=["zero"])
    assert counts.model_calls == 9 and counts.cache_hits == 18
    zero = record.strategies["zero"]
    assert zero.n_done == 27 and zero.latency.n == 9  # reused answers are not timed twice
    assert zero.metrics["label_accuracy"].ci_method == "wilson"


def test_lowering_repeats_ignores_the_extra_repeats_already_run(tmp_path):
    suite = base_suite()
    suite["repeats"] = 3
    path = write_suite(tmp_path / "s", suite)
    run(path, tmp_path / "run", strategies=["zero"])
    suite["repeats"] = 1
    path.write_text(yaml.safe_dump(suite))
    record, counts = run(path, tmp_path / "run", strategies=["zero"])
    assert counts.model_calls == 0
    assert record.strategies["zero"].n_done == record.strategies["zero"].n_planned == 9


def test_a_subset_rerun_keeps_every_strategy_in_run_json(toy_suite, tmp_path):
    full, _ = run(toy_suite, tmp_path / "run")
    again, counts = run(toy_suite, tmp_path / "run", strategies=["zero"], limit=3)
    assert counts.model_calls == 0
    assert set(again.strategies) == {"zero", "few"} and again.status == "complete"
    assert again.strategies["few"].n_done == 9 and again.strategies["few"].setup == full.strategies["few"].setup
    assert again.suite.strategies[1].config == {"k": 3, "selection": "balanced"}
    assert again.suite.backends[0].config["latency_s"] == 0.05  # defaults filled in: the suite as resolved


def test_unusual_line_separators_in_answers_survive_resume(tmp_path):
    suite = base_suite()
    suite["backends"][0]["config"]["default"] = "gam\u2028ma\u0085!"
    path = write_suite(tmp_path / "s", suite)
    _first, _ = run(path, tmp_path / "run", strategies=["zero"])
    again, counts = run(path, tmp_path / "run", strategies=["zero"])
    assert counts.skipped_finished == 9 and again.status == "complete"
    lines = (tmp_path / "run" / "cases.jsonl").read_text(encoding="utf-8").split("\n")
    assert sum(1 for x in lines if x) == 9


def test_repeats_with_sampling_are_independent_cache_entries(tmp_path):
    suite = base_suite()
    suite["repeats"] = 3
    suite["backends"][0]["generation"] = {"temperature": 0.7}
    path = write_suite(tmp_path / "s", suite)
    _record, counts = run(path, tmp_path / "run", strategies=["zero"])
    assert counts.model_calls == 27
    _, again = run(path, tmp_path / "other", strategies=["zero"])
    assert again.model_calls == 0 and again.cache_hits == 27  # each draw has its own cache entry


def test_ctrl_c_exits_130_and_keeps_finished_cases(tmp_path):
    path = write_suite(tmp_path / "s", base_suite(sleep=True, latency_s=0.05), n_test=200)
    env = {**os.environ, "HARNESS_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "compare", str(path), "--out", str(tmp_path / "run")],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    cases = tmp_path / "run" / "cases.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and not (cases.exists() and cases.read_text().count("\n") >= 5):
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "resume" in err
    done = cases.read_text().count("\n")
    assert 5 <= done < 400
    assert read_run(tmp_path / "run").status == "interrupted"


def test_a_killed_run_leaves_a_readable_folder_and_resumes(tmp_path):
    path = write_suite(tmp_path / "s", base_suite(sleep=True, latency_s=0.01), n_test=200)
    env = {**os.environ, "HARNESS_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1", "CI": "1"}
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "compare", str(path), "--out", str(out)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    cases = out / "cases.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and not (cases.exists() and cases.read_text().count("\n") >= 10):
        time.sleep(0.05)
    proc.kill()  # SIGKILL: no cleanup code runs
    proc.wait()
    assert read_run(out).status == "running"
    before = cases.read_text().count("\n")
    record, counts = run(path, out)
    assert record.status == "complete" and counts.skipped_finished >= before - 1
    keys = [(json.loads(x)["strategy"], json.loads(x)["case_id"]) for x in cases.read_text().splitlines()]
    assert len(keys) == len(set(keys)) == 400
