"""Where the harness keeps things between runs: models, the response cache, file hashes (HARNESS_HOME)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import time
from pathlib import Path

log = logging.getLogger(__name__)
LOST = "lost: only what no run folder holds; finished answers are kept in each run's cases.jsonl"


def move_aside(path: Path, what: str, why: str = "", then: str = f"started afresh ({LOST})") -> Path:
    """A damaged cache file (and its SQLite companions) or folder renamed to `<name>.damaged-<time>`, with a
    warning saying what it was, why it is taken for damaged and what happens instead."""
    aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
    n = 1
    while aside.exists():  # two damaged copies within a second
        aside, n = aside.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}-{n}"), n + 1
    os.replace(path, aside)
    for suffix in ("-wal", "-shm"):
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            os.replace(companion, aside.with_name(aside.name + suffix))
    log.warning(
        "%s %s was damaged%s; moved aside to %s and %s", what, path, f" ({why})" if why else "", aside.name, then
    )
    return aside


def open_cache_db(path: Path, table_sql: str, what: str, **connect) -> tuple[sqlite3.Connection, Path | None]:
    """A SQLite cache in WAL mode with its table, checked when opened (quick_check); a damaged file (cut short,
    overwritten, not a database) is moved aside and a fresh one opened, never a reason to stop a run. Returns the
    connection and where a damaged file went (None when it was sound)."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def attempt() -> sqlite3.Connection:
        db = sqlite3.connect(path, timeout=30, **connect)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(table_sql)
            check = db.execute("PRAGMA quick_check").fetchone()
            if not check or check[0] != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {check[0] if check else 'no answer'}")
            db.commit()
        except sqlite3.DatabaseError:
            with contextlib.suppress(Exception):
                db.close()
            raise
        return db

    try:
        return attempt(), None
    except sqlite3.DatabaseError:
        aside = move_aside(path, what)
        return attempt(), aside


def harness_home() -> Path:
    """$HARNESS_HOME, or the user cache directory (e.g. ~/.cache/harness)."""
    env = os.environ.get("HARNESS_HOME")
    if env:
        home = Path(env).expanduser()
    else:
        from platformdirs import user_cache_dir

        home = Path(user_cache_dir("harness"))
    home.mkdir(parents=True, exist_ok=True)
    return home


def tree_fingerprint(path: Path) -> str:
    """sha256 over the files of a model or adapter folder (or one file), remembered by size and mtime."""
    path = path.resolve()
    files = sorted(p for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file())
    stamp = [
        (str(p.relative_to(path.parent if path.is_file() else path)), p.stat().st_size, p.stat().st_mtime_ns)
        for p in files
    ]
    memo_file = harness_home() / "fingerprints.json"
    try:
        memo = json.loads(memo_file.read_text())
    except (OSError, ValueError):
        memo = {}
    key = hashlib.sha256(json.dumps([str(path), stamp]).encode()).hexdigest()
    if key in memo:
        return memo[key]
    digest = hashlib.sha256()
    for p, (rel, _, _) in zip(files, stamp, strict=True):
        digest.update(rel.encode())
        with p.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    memo[key] = digest.hexdigest()
    tmp = memo_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(memo))
    tmp.replace(memo_file)
    return memo[key]
