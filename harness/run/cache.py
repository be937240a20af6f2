"""SQLite response cache: a call already answered is never paid for twice, across runs and restarts.

The key covers the backend identity (kind, model and adapter hashes), the messages and the generation
parameters; with sampling, the sample index too, so repeats stay independent draws.

Calls in flight are not paid twice across processes either: a process claims a key before it makes the call (a row
in `claims`, committed at once) and drops the claim with the answer. Another process that needs the same key waits
for that answer; it makes the call itself when the claim's owner has died (same machine, pid gone), gave the call up
(an error: the claim is dropped with no answer), or nothing it waits for has come for HARNESS_CLAIM_WAIT_S seconds.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.backends.base import GenRequest, GenResult
from harness.home import open_cache_db

CLAIM_WAIT_S = 300.0  # default of HARNESS_CLAIM_WAIT_S: how long to wait with no answer arriving from another process
POLL_S = 0.2
log = logging.getLogger(__name__)
HOST = socket.gethostname()


def claim_wait_s() -> float:
    try:
        return max(float(os.environ.get("HARNESS_CLAIM_WAIT_S", CLAIM_WAIT_S)), 0.0)
    except ValueError:
        return CLAIM_WAIT_S


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


@dataclass
class Claimed:
    """What claiming keys found: the keys this process now holds (to call), those already answered meanwhile, and
    those another live process is calling (key -> its pid)."""

    mine: list[str] = field(default_factory=list)
    answered: dict[str, GenResult] = field(default_factory=dict)
    theirs: dict[str, int] = field(default_factory=dict)


@dataclass
class Awaited:
    """What waiting on other processes' claims gave: their answers, and the keys this process must call itself
    (now claimed by it), with why."""

    answered: dict[str, GenResult] = field(default_factory=dict)
    mine: list[str] = field(default_factory=list)
    timed_out: int = 0
    orphaned: int = 0


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
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, owner TEXT NOT NULL, pid INTEGER NOT NULL, "
            "host TEXT NOT NULL, claimed REAL NOT NULL)"
        )
        self._db.commit()
        self.owner = f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
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

    # ---- claims: one process makes a call in flight ----------------------------------------------------------------

    def claim(self, keys: list[str]) -> Claimed:
        """Claim the keys not answered and not claimed by another live process, in one transaction (so two
        processes never both get a key); an answer committed since the caller's lookup comes back as answered."""
        out = Claimed()
        if not keys:
            return out
        self.flush()
        try:
            self._db.execute("BEGIN IMMEDIATE")
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for key, value in self._db.execute(f"SELECT key, value FROM responses WHERE key IN ({marks})", chunk):
                    out.answered[key] = GenResult(**json.loads(value))
                held = {
                    row[0]: row[1:]
                    for row in self._db.execute(
                        f"SELECT key, owner, pid, host FROM claims WHERE key IN ({marks})", chunk
                    )
                }
                for key in chunk:
                    if key in out.answered:
                        continue
                    owner = held.get(key)
                    if owner is not None and owner[0] != self.owner and self._live(owner[1], owner[2]):
                        out.theirs[key] = owner[1]
                        continue
                    out.mine.append(key)
            self._write_claims(out.mine)
            self._db.commit()
        except sqlite3.DatabaseError as exc:  # a cache that cannot hold claims still answers: call them all
            log.warning("the response cache %s could not record calls in flight (%s)", self.path, exc)
            self._db.rollback()
            return Claimed(mine=[k for k in keys if k not in out.answered], answered=out.answered)
        return out

    @staticmethod
    def _live(pid: int, host: str) -> bool:
        return host != HOST or _alive(pid)  # on another machine only the wait's timeout can tell

    def release(self, keys: list[str]) -> None:
        """Drop this process's claims on keys it will not answer (an error, held back by the budget)."""
        try:
            self._db.executemany("DELETE FROM claims WHERE key = ? AND owner = ?", [(k, self.owner) for k in keys])
            self._pending = True
            self.flush()
        except sqlite3.DatabaseError as exc:
            log.warning("the response cache %s could not release claims (%s)", self.path, exc)

    def wait_for(self, theirs: dict[str, int], on_answer: Callable[[str, GenResult], None] | None = None) -> Awaited:
        """Wait for the answers other processes are making. A key whose claim disappears with no answer (the call
        failed there) or whose owner died is claimed here; when no awaited answer has arrived for
        HARNESS_CLAIM_WAIT_S seconds, the rest are claimed here too, with a warning."""
        out = Awaited()
        left = dict(theirs)
        patience = claim_wait_s()
        last_news = time.monotonic()
        while left:
            claimed = self.claim(list(left))  # answered meanwhile, or free to take (no claim or a dead owner)
            for key, result in claimed.answered.items():
                out.answered[key] = result
                if on_answer is not None:
                    on_answer(key, result)
            out.orphaned += len(claimed.mine)
            out.mine.extend(claimed.mine)
            if claimed.answered or claimed.mine:
                last_news = time.monotonic()
            left = claimed.theirs
            if left and time.monotonic() - last_news >= patience:
                pids = sorted(set(left.values()))
                log.warning(
                    "%d calls another harness process (pid %s) has in flight brought no answer for %.0f s: "
                    "making them here (HARNESS_CLAIM_WAIT_S sets the wait)",
                    len(left),
                    ", ".join(map(str, pids)),
                    patience,
                )
                self._take(list(left))
                out.timed_out += len(left)
                out.mine.extend(left)
                break
            if left:
                time.sleep(POLL_S)
        return out

    def _write_claims(self, keys: list[str]) -> None:
        now = time.time()
        self._db.executemany(
            "INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?, ?)",
            [(k, self.owner, os.getpid(), HOST, now) for k in keys],
        )

    def _take(self, keys: list[str]) -> None:
        try:
            self._write_claims(keys)
            self._pending = True
            self.flush()
        except sqlite3.DatabaseError as exc:
            log.warning("the response cache %s could not record calls in flight (%s)", self.path, exc)

    # ---- answers ------------------------------------------------------------------------------------------------

    def put(self, key: str, result: GenResult) -> None:
        if result.error is not None:
            self.release([key])  # failures are retried, never cached; a process waiting on it calls it itself
            return
        value = json.dumps(result.__dict__, ensure_ascii=False)
        self._db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?)", (key, value, time.time()))
        self._db.execute("DELETE FROM claims WHERE key = ? AND owner = ?", (key, self.owner))
        # Committed with each answer (WAL: tens of microseconds): a process waiting on the claim gets it at once,
        # and a kill loses no answer already made, wherever it was asked from.
        self._pending = True
        self.flush()

    def flush(self) -> None:
        """Commit what is not yet committed."""
        if self._pending:
            self._db.commit()
            self._pending = False

    def close(self) -> None:
        try:
            self._db.execute("DELETE FROM claims WHERE owner = ?", (self.owner,))
            self._db.commit()
        except sqlite3.DatabaseError as exc:
            log.warning("the response cache %s could not release claims (%s)", self.path, exc)
        self._db.close()


class NoCache:
    """Stands in when caching is switched off (`--no-cache`): no reuse and no claims."""

    def get_many(self, keys):
        return {}

    def claim(self, keys):
        return Claimed(mine=list(keys))

    def release(self, keys):
        pass

    def wait_for(self, theirs, on_answer=None):
        return Awaited(mine=list(theirs))

    def put(self, key, result):
        pass

    def flush(self):
        pass

    def close(self):
        pass
