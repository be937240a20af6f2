"""Always alive: a non-terminal run prints progress with the time left, and a line at least every `every_s`
seconds while one slow item holds the rest up; answers on dev (choosing settings) show their progress too."""

from __future__ import annotations

import io
import itertools
import time

from harness.run.progress import PlainProgress
from tests.conftest import harness_cli


def test_a_slow_item_still_gets_a_line_every_interval_and_none_after_the_end():
    out = io.StringIO()
    progress = PlainProgress(out, every_s=0.3)
    progress.start("dev", 4)
    progress.advance()
    time.sleep(1.2)  # one slow item: no advance for four intervals
    assert out.getvalue().count("[dev] still working: 1/4") >= 2
    progress.advance(3)
    progress.finish()
    ended = out.getvalue()
    time.sleep(0.8)
    assert out.getvalue() == ended and "[dev] done 4/4" in ended
    assert "s left)" in ended  # the time left, once some items are done


def test_choosing_top_k_on_dev_shows_progress_for_each_candidate(tmp_path):
    from tests.conftest import RAG_FIXTURES, write_jsonl, write_qa_suite
    from tests.unit.test_rag import qa_suite, rag, read_jsonl

    questions = read_jsonl(RAG_FIXTURES / "questions.jsonl")
    write_jsonl(tmp_path / "dev.jsonl", questions[:4])
    write_jsonl(tmp_path / "test.jsonl", questions[4:])
    suite = qa_suite([{"name": "rag", "kind": "rag", "config": rag("bm25", top_k=[1, 2])}])
    suite["data"] = {"dev": "dev.jsonl", "test": "test.jsonl"}
    path = write_qa_suite(tmp_path, suite)
    done = harness_cli("compare", str(path), "--out", str(tmp_path / "run"), home=tmp_path / "h")
    assert done.returncode == 0, done.stderr
    for k in (1, 2):  # one bar per top_k candidate, named
        assert done.stderr.count(f"[rag: top_k {k} on dev] 4 to run") == 1, done.stderr
        assert done.stderr.count(f"[rag: top_k {k} on dev] done 4/4") == 1


def test_a_slow_phase_of_a_non_terminal_run_is_never_silent_longer_than_the_interval(tmp_path):
    from tests.conftest import base_suite, start_compare, write_suite

    path = write_suite(tmp_path / "s", base_suite(sleep=True, latency_s=2.0))  # each answer really takes 2 s
    proc = start_compare(
        path, tmp_path / "run", tmp_path / "h", "--strategies", "zero", "--limit", "3", HARNESS_PROGRESS_EVERY_S="0.5"
    )
    stamped = [(time.monotonic(), line) for line in proc.stderr]
    assert proc.wait(timeout=60) == 0
    phase = [t for t, line in stamped if line.startswith("[zero] ")]
    assert "still working: 0/3" in "".join(line for _, line in stamped)
    gaps = [b - a for a, b in itertools.pairwise(phase)]
    assert len(phase) >= 8 and max(gaps) < 0.5 + 0.5, gaps  # the interval, and the heartbeat's own tick
