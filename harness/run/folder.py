"""The run folder on disk: `run.json` (a `RunRecord`, versioned), `cases.jsonl` (one `CaseResult` line per strategy
x case x repeat, appended as each finishes), `suite.sha256` (which suite and data the results belong to), and
`spend.jsonl` (provider charges that are not answers). One reader for each file, used by the run and the report.

Load the cases with pandas in one line: `pd.read_json("runs/quickstart/cases.jsonl", lines=True)`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from harness.errors import RunFolderError, redact
from harness.records.cases import CaseResult
from harness.records.run import SCHEMA_VERSION, RunRecord, upgrade_v1

RESULT_FILES = ("cases.jsonl", "run.json", "spend.jsonl", "decision.md")


def write_json_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(redact(text, shapes=False), encoding="utf-8")  # a known key is never written, whatever quoted it
    os.replace(tmp, path)  # readers see the old file or the new one, never half of one


def read_run(run_dir: Path) -> RunRecord:
    path = run_dir / "run.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunFolderError(f"{path}: not found; is {run_dir} a run folder written by `harness compare`?") from None
    except ValueError as exc:
        raise RunFolderError(f"{path}: not valid JSON ({exc}).") from None
    version = data.get("schema_version") if isinstance(data, dict) else None
    if version == 1:
        data = upgrade_v1(data)
    elif version != SCHEMA_VERSION:
        raise RunFolderError(
            f"{path}: written with run schema version {version}; this harness reads run schema version {SCHEMA_VERSION} (and upgrades version 1). "
            "Fix: rerun `harness compare` with this version, or use the harness version that wrote it."
        )
    try:
        return RunRecord.model_validate(data)
    except ValueError as exc:
        raise RunFolderError(
            f"{path}: not a run record this harness can read ({_first_error(exc)}). Fix: rerun "
            "`harness compare` into a new --out folder."
        ) from None


def _first_error(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        return f"{'.'.join(str(x) for x in first['loc'])}: {first['msg']}"
    return str(exc)


class CasesFile:
    """Append-only cases.jsonl. A line torn by a kill is dropped on the next open, never half-read."""

    def __init__(self, path: Path):
        self.path = path
        self._fh: IO[str] | None = None
        self.rows: dict[tuple[str, str, int], CaseResult] = {}  # the latest line per key, kept in memory
        self.superseded = 0  # lines replaced by a later line for the same key (retried errors)

    def load(self) -> dict[tuple[str, str, int], CaseResult]:
        self.rows, self.superseded = {}, 0
        for row in self.read():
            self.superseded += row.key in self.rows
            self.rows[row.key] = row
        return self.rows

    def compact(self) -> None:
        """Rewrite the file with one line per key when retries left superseded lines behind."""
        if self.superseded:
            self.rewrite(list(self.rows.values()))
            self.superseded = 0

    def read(self) -> list[CaseResult]:
        """Every line, in file order (the writer's view): a line torn by a kill at the end is cut off, and an
        unreadable line elsewhere is moved to cases.rejected.jsonl (kept, with its line number), so only its case
        runs again."""
        rejected: list[tuple[int, bytes]] = []
        rows = [row for _, row in read_cases(self.path, repair=True, rejected=rejected)]
        if rejected:
            reject_lines(self.path, rejected)
            self.rewrite(rows)
        return rows

    def rewrite(self, results: list[CaseResult]) -> None:
        """Replace the file atomically (a reader sees the old or the new file, never a mix)."""
        self.close()
        write_json_atomic(self.path, "".join(r.model_dump_json() + "\n" for r in results))

    def append(self, result: CaseResult) -> None:
        if self._fh is None:
            self._fh = self.path.open("a", encoding="utf-8")
        self._fh.write(result.model_dump_json() + "\n")
        self._fh.flush()  # on disk for any reader, and survives a kill of this process
        self.superseded += result.key in self.rows
        self.rows[result.key] = result

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def reject_lines(path: Path, rejected: list[tuple[int, bytes]]) -> Path:
    """Unreadable lines of a JSONL file appended to `<stem>.rejected.jsonl` with their line numbers, and a warning
    saying how many and where they went."""
    import logging

    aside = path.with_name(path.stem + ".rejected.jsonl")
    with aside.open("a", encoding="utf-8") as fh:
        for number, line in rejected:
            fh.write(json.dumps({"file": path.name, "line": number, "text": line.decode("utf-8", "replace")}) + "\n")
    numbers = ", ".join(str(n) for n, _ in rejected[:10]) + (" ..." if len(rejected) > 10 else "")
    logging.getLogger(__name__).warning(
        "%s: %d unreadable line(s) (%s) moved to %s; their cases run again",
        path,
        len(rejected),
        numbers,
        aside.name,
    )
    return aside


def read_cases(
    path: Path, *, repair: bool = False, rejected: list[tuple[int, bytes]] | None = None
) -> Iterator[tuple[int, CaseResult]]:
    """(byte offset, result) for each line of a cases.jsonl. A last line torn by an interrupted write is skipped
    (cut off the file when `repair`); any other unreadable line goes to `rejected` (line number, bytes) when it is
    given, and is refused with its line number otherwise."""
    # Split on "\n" only: JSON strings may hold U+2028 and friends, which str.splitlines() would break on.
    if not path.exists():
        return
    raw = path.read_bytes()
    good_end = raw.rfind(b"\n") + 1
    if good_end < len(raw) and repair:  # a torn last line from an interrupted write
        with path.open("r+b") as fh:
            fh.truncate(good_end)
    offset = 0
    for number, line in enumerate(raw[:good_end].split(b"\n"), start=1):
        start, offset = offset, offset + len(line) + 1
        if not line.strip():
            continue
        try:
            yield start, CaseResult.model_validate_json(line)
        except ValueError as exc:
            if rejected is not None:
                rejected.append((number, line))
                continue
            raise RunFolderError(
                f"{path}:{number}: unreadable result line ({exc.__class__.__name__}). "
                "Fix: delete the run folder or use --out."
            ) from None


LOCK_FILE = ".harness.lock"
_held: dict[Path, IO[str]] = {}  # run folder -> its open lock file: held for the life of the process


def lock_run_folder(run_dir: Path) -> None:
    """Make this process the run folder's one writer: an advisory lock (flock) on `.harness.lock`, held until the
    process ends, released by the OS when it dies (a kill -9 leaves no stale lock). A second writer is refused at
    once, naming the holder; a file system without locks is said, not pretended."""
    import fcntl
    import logging
    from datetime import datetime

    key = run_dir.resolve()
    if key in _held:
        return
    path = run_dir / LOCK_FILE
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 (held open on purpose)
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise RunFolderError(
            f"{run_dir} is being written by another harness process ({holder}).\n"
            "Fix: wait for it to finish, or write this run elsewhere with --out."
        ) from None
    except OSError as exc:  # e.g. some network file systems
        logging.getLogger(__name__).warning(
            "%s: this file system does not support locks (%s): another harness process writing to the same folder "
            "would not be stopped",
            run_dir,
            exc,
        )
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}, started {datetime.now().astimezone().isoformat(timespec='seconds')}\n")
    handle.flush()
    _held[key] = handle


def unlock_run_folder(run_dir: Path) -> None:
    """Release this process's lock on the folder (the end of a compare called from Python; a process that ends
    releases it anyway)."""
    handle = _held.pop(run_dir.resolve(), None)
    if handle is not None:
        handle.close()


def open_run_folder(run_dir: Path, fingerprint: str, *, overwrite: bool) -> CasesFile:
    """The run folder for a suite with this fingerprint, created if new, and locked for this process (one writer
    per folder). Results of another suite (or of this one before its data changed) are refused rather than mixed;
    `overwrite` discards them."""
    run_dir.mkdir(parents=True, exist_ok=True)
    lock_run_folder(run_dir)
    marker = run_dir / "suite.sha256"
    if marker.exists() and marker.read_text().strip() != fingerprint and not overwrite:
        raise RunFolderError(
            f"{run_dir} holds results of a different suite (or of this suite before it or its data changed); "
            "resuming would mix them.\nFix: pass --out NEW_DIR, or --overwrite to discard those results."
        )
    if overwrite:
        for name in RESULT_FILES:
            (run_dir / name).unlink(missing_ok=True)
    marker.write_text(fingerprint + "\n")
    return CasesFile(run_dir / "cases.jsonl")
