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
        """Every line, in file order; a line torn by a kill at the end is cut off (the writer's view)."""
        return [row for _, row in read_cases(self.path, repair=True)]

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


def read_cases(path: Path, *, repair: bool = False) -> Iterator[tuple[int, CaseResult]]:
    """(byte offset, result) for each line of a cases.jsonl. A last line torn by an interrupted write is skipped
    (cut off the file when `repair`); any other unreadable line is refused with its line number."""
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
            raise RunFolderError(
                f"{path}:{number}: unreadable result line ({exc.__class__.__name__}). "
                "Fix: delete the run folder or use --out."
            ) from None


def open_run_folder(run_dir: Path, fingerprint: str, *, overwrite: bool) -> CasesFile:
    """The run folder for a suite with this fingerprint, created if new. Results of another suite (or of this one
    before its data changed) are refused rather than mixed; `overwrite` discards them."""
    run_dir.mkdir(parents=True, exist_ok=True)
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
