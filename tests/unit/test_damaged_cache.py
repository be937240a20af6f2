"""A damaged response cache never stops a run: it is moved aside with a warning and the run's results equal a
clean run's (finished answers live in each run folder's cases.jsonl, not in the cache)."""

from __future__ import annotations

import json
import logging

import pytest

from harness.home import harness_home
from harness.run.compare import CompareOptions, compare
from tests.conftest import harness_cli, write_suite


def results(run_dir) -> dict:
    rows = [json.loads(x) for x in (run_dir / "cases.jsonl").read_text().splitlines()]
    return {(r["strategy"], r["case_id"]): (r["output"], r["scores"]) for r in rows}


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_response_cache_is_moved_aside_and_the_run_completes(tmp_path, damage, caplog):
    path = write_suite(tmp_path / "s")
    compare(path, CompareOptions(out=tmp_path / "clean"))
    cache = harness_home() / "cache" / "responses.sqlite"
    data = cache.read_bytes()
    assert len(data) > 4096
    cache.write_bytes(data[: len(data) // 3] if damage == "truncated" else b"\x00garbage" * 4096)
    for extra in ("-wal", "-shm"):
        cache.with_name(cache.name + extra).unlink(missing_ok=True)
    with caplog.at_level(logging.WARNING):
        compare(path, CompareOptions(out=tmp_path / "after"))
    assert "the response cache" in caplog.text and "moved aside" in caplog.text
    aside = list(cache.parent.glob("responses.sqlite.damaged-*"))
    assert len(aside) == 1 and aside[0].read_bytes()[:8] == (data[:8] if damage == "truncated" else b"\x00garbage")
    assert results(tmp_path / "after") == results(tmp_path / "clean")


def test_the_cli_warns_without_a_traceback(tmp_path):
    path, home = write_suite(tmp_path / "s"), tmp_path / "home"
    (home / "cache").mkdir(parents=True)
    (home / "cache" / "responses.sqlite").write_bytes(b"SQLite format 3\x00" + b"\xff" * 5000)
    done = harness_cli("compare", str(path), "--out", str(tmp_path / "run"), home=home, timeout=120)
    assert done.returncode == 0 and "Traceback" not in done.stdout + done.stderr, done.stderr
    assert "moved aside to responses.sqlite.damaged-" in done.stderr


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_query_embedding_cache_is_moved_aside_and_works_afresh(caplog, damage):
    from harness.backends.embeddings import QueryCache

    path = harness_home() / "cache" / "query_embeddings.sqlite"
    if damage == "garbage":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"SQLite format 3\x00" + b"\xee" * 3000)
    else:  # a sound cache with many entries, cut short
        sound = QueryCache({"model": "m"})
        for i in range(300):
            sound.put(f"query {i}", [float(i)] * 64)
        sound._db.close()
        for extra in ("-wal", "-shm"):
            path.with_name(path.name + extra).unlink(missing_ok=True)
        data = path.read_bytes()
        assert len(data) > 8192
        path.write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING):
        cache = QueryCache({"model": "m"})
    assert "the query-embedding cache" in caplog.text and "moved aside" in caplog.text
    assert cache.get("q") is None
    cache.put("q", [0.5, 0.25])
    assert cache.get("q") == [0.5, 0.25]
    assert len(list(path.parent.glob("query_embeddings.sqlite.damaged-*"))) == 1
