"""One writer per run folder: a second `harness compare` on a folder another process is writing is refused at
once (exit 2, naming the holder), the first completes with no duplicate line, and a killed writer leaves no lock."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from tests.conftest import assert_refused, base_suite, harness_cli, start_compare, write_suite


def slow_suite(tmp_path: Path) -> Path:
    suite = base_suite(sleep=True, latency_s=0.6)  # 18 answers, each really waited for: about 11 s
    return write_suite(tmp_path / "s", suite)


def wait_for_lines(path: Path, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists() and path.read_text().strip():
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} never got a line")


def test_a_second_writer_is_refused_at_once_and_the_first_completes(tmp_path):
    path, out, home = slow_suite(tmp_path), tmp_path / "run", tmp_path / "home"
    first = start_compare(path, out, home)
    try:
        wait_for_lines(out / "cases.jsonl")  # the first holds the folder and is answering
        began = time.time()
        second = harness_cli("compare", str(path), "--out", str(out), home=home, timeout=60)
        assert time.time() - began < 10  # refused at once, not after waiting (process start-up included)
        assert_refused(second, "is being written by another harness process", f"pid {first.pid}", "--out")
    finally:
        _, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stderr
    lines = [json.loads(x) for x in (out / "cases.jsonl").read_text().splitlines()]
    keys = [(r["strategy"], r["case_id"], r["repeat"]) for r in lines]
    assert len(keys) == len(set(keys)) == 18  # every answer once
    counts = json.loads((out / "run.json").read_text())["options"]["counts"]
    assert counts["model_calls"] + counts["cache_hits"] == 18  # the refused process asked the model nothing


def test_a_killed_writer_leaves_no_lock(tmp_path):
    path, out, home = slow_suite(tmp_path), tmp_path / "run", tmp_path / "home"
    first = start_compare(path, out, home)
    wait_for_lines(out / "cases.jsonl")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    again = harness_cli("compare", str(path), "--out", str(out), home=home, timeout=120)
    assert again.returncode == 0, again.stderr  # the OS released the lock with the process: it resumes
    lines = [json.loads(x) for x in (out / "cases.jsonl").read_text().splitlines()]
    assert len({(r["strategy"], r["case_id"]) for r in lines}) == 18
