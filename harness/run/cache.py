"""SQLite response cache: a call already answered is never paid for twice, across runs and restarts.

The key covers the backend identity (kind, model and adapter hashes), the messages and the generation
parameters; with sampling, the sample index too, so repeats stay independent draws.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

from harness.backends.base import GenRequest, GenResult
from harness.home import open_cache_db

COMMIT_EVERY_S = 1.0
log = logging.getLogger(__name__)


def cache_key(identity: dict[str, Any], request: GenRequest, sample: int) -> str:
    params = request.params.model_dump()
    payload = {
        "backend": identity,
        "messages": request.messages,
        "params": params,
        "sample": sample if request.params.temperature > 0 else 0,
    }
    if request.json_schema is not None:  # absent otherwise, so keys of earlier runs stay valid
        payload["json_schema"] = request.json_schema
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class ResponseCache:
    def __init__(self, path: Path):
        self.path = path
        self._db, self.damaged = open_cache_db(
            path,
            "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)",
            "the response cache",
        )
        self._last_commit = time.time()
        self._pending = False

    def get_many(self, keys: list[str]) -> dict[str, GenResult]:
        found: dict[str, GenResult] = {}
        try:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for key, value in self._db.execute(f"SELECT key, value FROM responses WHERE key IN ({marks})", chunk):
                    found[key] = GenResult(**json.loads(value))
        except (sqlite3.DatabaseError, ValueError, TypeError) as exc:  # damaged after opening: a miss, not a crash
            log.warning("the response cache %s could not be read (%s): answering without it", self.path, exc)
        return found

    def put(self, key: str, result: GenResult) -> None:
        if result.error is not None:
            return  # failures are retried, never cached
        value = json.dumps(result.__dict__, ensure_ascii=False)
        now = time.time()
        self._db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?)", (key, value, now))
        # Commit at most every COMMIT_EVERY_S while answers stream in, and at the end of every batch (flush): a
        # kill loses at most the answers of the batch in flight (test answers among them are in cases.jsonl).
        self._pending = True
        if now - self._last_commit >= COMMIT_EVERY_S:
            self.flush()

    def flush(self) -> None:
        """Commit what put() kept since the last commit, so a batch that ended is safe from a kill."""
        if self._pending:
            self._db.commit()
            self._last_commit = time.time()
            self._pending = False

    def close(self) -> None:
        self._db.commit()
        self._db.close()


class NoCache:
    """Stands in when caching is switched off (`--no-cache`)."""

    def get_many(self, keys):
        return {}

    def put(self, key, result):
        pass

    def flush(self):
        pass

    def close(self):
        pass
