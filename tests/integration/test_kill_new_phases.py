"""SIGKILL in the phases the reliability work added, 10 points in all, each followed by the same command (or by the
process that was waiting): while the run folder's lock is held (the next writer is not refused: the lock died
with the process), while calls are claimed in the shared cache and another run waits for them (it takes them over
at once, and no call is paid twice but those in flight at the kill), and while a damaged cache is moved aside (the
next run starts sound). Every run ends with the results of a clean run."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from tests.conftest import report_check
from tests.fake_openai import FakeOpenAI, Script
from tests.integration.test_shared_cache import chat_calls, outputs, reply, start, suite

pytestmark = pytest.mark.slow

SEED = 20261203
N = 24  # test cases of the zero and few strategies: 48 calls a run


def wait_until(check, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.005)
    return False


def claims_of(home: Path, pid: int) -> int:
    try:
        with sqlite3.connect(home / "cache" / "responses.sqlite", timeout=1) as db:
            return db.execute("SELECT COUNT(*) FROM claims WHERE pid = ?", (pid,)).fetchone()[0]
    except sqlite3.Error:
        return 0


def finish(proc, timeout: float = 180) -> str:
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    return err


def kill(proc) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)


def test_sigkill_in_the_new_phases_then_rerun_loses_nothing(tmp_path):
    rng = random.Random(SEED)
    figures = {"lock_held": 0, "claim_in_flight": 0, "moving_damaged_cache": 0}
    beyond_one_run: list[int] = []  # calls the owner and the waiter made together, beyond one run's, per claim kill
    clean_script = Script(chat=reply)
    with FakeOpenAI(clean_script) as url:
        path = suite(tmp_path / "clean-suite", url, n_test=N, judged=False)
        finish(start(path, tmp_path / "clean", tmp_path / "clean-home"))
    clean = outputs(tmp_path / "clean")
    one_run = chat_calls(clean_script)

    script = Script(chat=reply, latency_s=0.05)
    with FakeOpenAI(script) as url:
        path = suite(tmp_path / "s", url, n_test=N, judged=False)

        # 1-3. The lock is held: killed once run.json says running; the same command at once is not refused.
        for i in range(3):
            out, home = tmp_path / f"lock{i}", tmp_path / f"lock-home{i}"
            first = start(path, out, home)
            assert wait_until(lambda out=out: (out / ".harness.lock").exists() and (out / "run.json").exists())
            time.sleep(rng.uniform(0.0, 0.5))
            kill(first)
            finish(start(path, out, home))
            assert outputs(out) == clean
            figures["lock_held"] += 1

        # 4-7. Calls claimed and in flight, another run waiting for them: the waiting run takes them over at once.
        for i in range(4):
            home, before = tmp_path / f"claim-home{i}", chat_calls(script)
            owner = start(path, tmp_path / f"owner{i}", home)
            assert wait_until(lambda home=home, owner=owner: claims_of(home, owner.pid) > 0)
            waiter = start(path, tmp_path / f"waiter{i}", home)
            time.sleep(rng.uniform(0.0, 0.6))
            kill(owner)
            began = time.monotonic()
            err = finish(waiter, timeout=120)
            assert time.monotonic() - began < 60  # not the 300 s wait: the owner's pid is gone
            assert "brought no answer" not in err
            assert outputs(tmp_path / f"waiter{i}") == clean
            in_flight = 4  # the owner's concurrency: what it may have sent and not recorded
            assert chat_calls(script) - before <= one_run + in_flight
            beyond_one_run.append(chat_calls(script) - before - one_run)
            figures["claim_in_flight"] += 1

        # 8-10. A damaged response cache, killed while it is moved aside and a fresh one made: the next run is sound.
        for i in range(3):
            home = tmp_path / f"damaged-home{i}"
            (home / "cache").mkdir(parents=True)
            cache = home / "cache" / "responses.sqlite"
            cache.write_bytes(b"SQLite format 3\x00" + b"\xff" * 8000)
            first = start(path, tmp_path / f"damaged{i}", home)
            assert wait_until(lambda cache=cache: any(cache.parent.glob("responses.sqlite.damaged-*")))
            time.sleep(rng.uniform(0.0, 0.05))
            kill(first)
            err = finish(start(path, tmp_path / f"damaged{i}", home))
            with sqlite3.connect(cache) as db:
                assert db.execute("PRAGMA quick_check").fetchone()[0] == "ok"
            assert outputs(tmp_path / f"damaged{i}") == clean
            assert len(list(cache.parent.glob("responses.sqlite.damaged-*"))) >= 1
            assert "Traceback" not in err
            figures["moving_damaged_cache"] += 1

    lines = [json.loads(x) for x in (tmp_path / "waiter0" / "cases.jsonl").read_text().splitlines()]
    assert len(lines) == len({(r["strategy"], r["case_id"]) for r in lines})  # no duplicate line
    report_check(
        "kill in new phases",
        kills=sum(figures.values()),
        **figures,
        calls_beyond_one_run_at_claim_kills=beyond_one_run,
        equal_to_clean=True,
    )
