"""Where the harness keeps things between runs: models, the response cache, file hashes (HARNESS_HOME)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


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
