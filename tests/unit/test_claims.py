"""Claims on the response cache: a key one process is calling is not called by another; the claim goes with the
answer, with an error (so the other calls it), and with a dead owner."""

from __future__ import annotations

import subprocess
import sys

from harness.backends.base import GenResult
from harness.run.cache import ResponseCache


def answer(text: str = "yes") -> GenResult:
    return GenResult(text=text, input_tokens=3, output_tokens=1)


def two(tmp_path):
    path = tmp_path / "responses.sqlite"
    return ResponseCache(path), ResponseCache(path)


def test_a_key_claimed_by_one_process_is_waited_for_by_the_other(tmp_path):
    a, b = two(tmp_path)
    assert a.claim(["k1", "k2"]).mine == ["k1", "k2"]
    seen = b.claim(["k1", "k2", "k3"])
    assert seen.mine == ["k3"] and set(seen.theirs) == {"k1", "k2"}
    a.put("k1", answer("one"))
    a.put("k2", answer("two"))
    a.flush()
    got: dict[str, str] = {}
    waited = b.wait_for(seen.theirs, lambda key, result: got.__setitem__(key, result.text))
    assert got == {"k1": "one", "k2": "two"} and waited.mine == [] and waited.timed_out == 0


def test_an_answer_made_after_the_lookup_is_not_made_again(tmp_path):
    a, b = two(tmp_path)
    a.claim(["k"])
    a.put("k", answer())
    a.flush()
    late = b.claim(["k"])  # b looked the key up before a's answer landed
    assert late.mine == [] and late.answered["k"].text == "yes"


def test_a_failed_call_is_left_to_the_waiting_process(tmp_path):
    a, b = two(tmp_path)
    a.claim(["k"])
    theirs = b.claim(["k"]).theirs
    a.put("k", GenResult(text=None, error="HTTP 500"))  # never cached; the claim goes
    waited = b.wait_for(theirs)
    assert waited.mine == ["k"] and waited.orphaned == 1


def test_a_dead_owners_claims_are_taken_over_at_once(tmp_path):
    a, b = two(tmp_path)
    a.claim(["k"])
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    a._db.execute("UPDATE claims SET pid = ?", (int(gone.stdout),))
    a._db.commit()
    assert b.claim(["k"]).mine == ["k"]


def test_a_wait_with_no_news_runs_out_and_says_so(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("HARNESS_CLAIM_WAIT_S", "0.3")
    a, b = two(tmp_path)
    a.claim(["k1", "k2"])
    waited = b.wait_for(b.claim(["k1", "k2"]).theirs)
    assert sorted(waited.mine) == ["k1", "k2"] and waited.timed_out == 2
    assert "2 calls another harness process" in caplog.text and "making them here" in caplog.text
    assert b.claim(["k1"]).mine == ["k1"]  # b holds them now: a third process would wait for b


def test_closing_releases_what_a_process_still_claims(tmp_path):
    a, b = two(tmp_path)
    a.claim(["k"])
    a.close()
    assert b.claim(["k"]).mine == ["k"]
