"""The run folder: `run.json` (typed, versioned) and `cases.jsonl` (one line per strategy x case x repeat).

Load the cases with pandas in one line: `pd.read_json("runs/quickstart/cases.jsonl", lines=True)`.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from harness.errors import RunFolderError, redact

SCHEMA_VERSION = 1


class CaseScore(BaseModel):
    value: float | None
    invalid: bool = False
    detail: dict[str, Any] = Field(default_factory=dict)


class CaseResult(BaseModel):
    """One line of cases.jsonl."""

    strategy: str
    case_id: str
    repeat: int
    input: Any
    target: str
    prompt: str | None = None
    output: str | None = None
    error: str | None = None
    scores: dict[str, CaseScore] = Field(default_factory=dict)
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0  # prompt tokens the provider served from its cache (billed at the cached price)
    # The prompt's tokens by part (instructions, exemplars, context, input, template) and the output's.
    tokens: dict[str, int] = Field(default_factory=dict)
    cost_usd: float | None = None  # what this answer cost (0 for a cache hit); None when the model has no price
    paid_usd: float = 0.0  # the part of cost_usd billed by providers (token-priced calls): counts against budget_usd
    latency_s: float | None = None
    latency_kind: str = "request"
    compute_s: float = 0.0
    batch_size: int = 1
    ttft_s: float | None = None
    cache_hit: bool = False
    meta: dict[str, Any] = Field(default_factory=dict)
    finished_at: datetime

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.strategy, self.case_id, self.repeat)

    @field_validator("error")
    @classmethod
    def _no_secrets(cls, error: str | None) -> str | None:
        # A provider's error body may quote the key it was sent; every recorded error passes here.
        return redact(error) if error else error


class MetricSummary(BaseModel):
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    ci_method: str
    n: int  # cases in the denominator (errors count as 0)
    n_scored: int
    n_unscored: int
    n_invalid: int


class LatencySummary(BaseModel):
    n: int
    p50_s: float | None
    p95_s: float | None
    p99_s: float | None
    mean_s: float | None
    how: str
    ttft_p50_s: float | None = None  # time to first token, where answers were streamed
    ttft_p95_s: float | None = None


class StrategySummary(BaseModel):
    strategy: str
    backend: str
    n_planned: int
    n_done: int
    n_errors: int
    n_cache_hits: int
    metrics: dict[str, MetricSummary]
    latency: LatencySummary
    input_tokens_mean: float | None
    output_tokens_mean: float | None
    throughput_output_tok_s: float | None
    compute_s_total: float
    tokens_mean: dict[str, float] = Field(default_factory=dict)  # per request, by part (see economics.TOKEN_PARTS)
    setup: dict[str, Any] = Field(default_factory=dict)
    cost: StrategyCost | None = None
    retrieval: RetrievalSummary | None = None  # strategies that retrieve (rag)


class StrategyCost(BaseModel):
    """What a strategy costs in production and what this run spent on it (see harness.costs.prices)."""

    pricing: dict[str, Any]  # how calls were priced: tokens at which prices, or busy time at which $/hour
    per_request_usd: float | None  # one production request (test-set mean)
    per_request_by_part_usd: dict[str, float] = Field(default_factory=dict)  # token-priced: what each part costs
    busy_s_per_request: float | None = None
    device_usd_per_hour: float | None = None
    hosting_usd_per_hour: float = 0.0
    setup_usd: float = 0.0  # one-off: training, indexing, dev selection
    setup_items: list[dict[str, Any]] = Field(default_factory=list)  # each {what, usd, basis}
    evaluation_usd: float = 0.0  # judges scoring this run's answers: not a production cost
    run_usd: float = 0.0  # what this run spent on the strategy: test answers + setup + evaluation
    notes: list[str] = Field(default_factory=list)


class RetrievalSummary(BaseModel):
    """Retrieval apart from generation: its own latency, the context it put in prompts, what did not fit."""

    latency: LatencySummary
    context_tokens_mean: float | None
    contexts_used_mean: float | None
    contexts_dropped_total: int
    cases_with_dropped_contexts: int


class RunRecord(BaseModel):
    schema_version: int = SCHEMA_VERSION
    harness_version: str
    status: Literal["running", "complete", "interrupted", "incomplete", "failed"]
    suite_name: str
    suite_path: str
    suite_sha256: str
    suite: dict[str, Any]
    started_at: datetime
    finished_at: datetime | None = None
    primary_metric: str
    strategies: dict[str, StrategySummary] = Field(default_factory=dict)
    # The best strategy on the primary metric against each other one, paired on the same cases (harness.verdict.stats).
    comparisons: list[dict[str, Any]] = Field(default_factory=list)
    prices: dict[str, Any] = Field(default_factory=dict)  # the price sheet's version and date, the suite's overrides
    decision: dict[str, Any] | None = None  # harness.verdict.decide.Decision
    budget: dict[str, Any] = Field(default_factory=dict)  # budget_usd, paid so far, calls skipped at the cap
    manifest: dict[str, Any] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)


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
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise RunFolderError(
            f"{path}: written with run schema version {version}; this harness reads version {SCHEMA_VERSION}. "
            "Fix: rerun `harness compare` with this version, or use the harness version that wrote it."
        )
    return RunRecord.model_validate(data)


class CasesFile:
    """Append-only cases.jsonl. A line torn by a kill is dropped on the next open, never half-read."""

    def __init__(self, path: Path):
        self.path = path
        self._fh = None
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
        # Split on "\n" only: JSON strings may hold U+2028 and friends, which str.splitlines() would break on.
        if not self.path.exists():
            return []
        raw = self.path.read_bytes()
        good_end = raw.rfind(b"\n") + 1
        if good_end < len(raw):  # a torn last line from an interrupted write
            with self.path.open("r+b") as fh:
                fh.truncate(good_end)
            raw = raw[:good_end]
        rows = []
        for number, line in enumerate(raw.decode("utf-8").split("\n"), start=1):
            if not line.strip():
                continue
            try:
                rows.append(CaseResult.model_validate_json(line))
            except ValueError as exc:
                raise RunFolderError(f"{self.path}:{number}: unreadable result line ({exc.__class__.__name__}). Fix: delete the run folder or use --out.") from None
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
