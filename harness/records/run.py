"""run.json: the whole run as one typed record (schema version 2), and the upgrade of version 1 folders.

Version 1 (harness before the typed records) kept each strategy's setup as free-form dicts; `upgrade_v1` turns
such a run.json into version 2 so older run folders still open in `harness report`.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any, Final, Literal

from pydantic import Field, computed_field

from harness.records.base import Record
from harness.records.decision import Decision, Diagnosis, PairedComparison, PriceSheetInfo
from harness.records.summary import StrategySummary
from harness.suite.schema import Suite

SCHEMA_VERSION: Final = 2
RunStatus = Literal["running", "complete", "interrupted", "incomplete", "failed"]


class Counts(Record):
    """What this invocation of `harness compare` did."""

    model_calls: int = 0
    cache_hits: int = 0
    skipped_finished: int = 0
    errors: int = 0
    dev_calls: int = 0  # model calls made while preparing strategies (e.g. scoring checkpoints on dev)
    judge_calls: int = 0  # judge model calls for model-judged scorers (evaluation cost, not production cost)
    budget_skipped: int = 0  # paid calls not made because budget_usd was reached


class TimeCheck(Record):
    """One phase of a strategy's local work: the time `harness estimate` predicted from this machine's calibration
    before the run, and what the run measured (busy time, model loading left out)."""

    predicted_s: float
    measured_s: float | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def error(self) -> float | None:
        """measured / predicted - 1 (+0.25: the phase took 25% longer than predicted)."""
        if self.measured_s is None or not self.predicted_s:
            return None
        return round(self.measured_s / self.predicted_s - 1, 3)


class RunOptions(Record):
    limit: int | None = None
    strategies: list[str] = Field(default_factory=list)
    repeats: int = 1
    counts: Counts = Field(default_factory=Counts)


class BudgetRecord(Record):
    budget_usd: float | None = None
    paid_usd: float = 0.0
    local_usd: float = 0.0  # local answers' busy time at the device's $/hour: counts against budget_usd too
    skipped: dict[str, int] = Field(default_factory=dict)  # strategy (or "<strategy>: <scorer>") -> calls not made


class Hardware(Record):
    platform: str
    python: str
    cpu: str
    cpu_count: int | None
    memory_gib: float
    gpus: list[str] = Field(default_factory=list)


class Manifest(Record):
    """What the run ran on: package versions, hardware, seed, data and model hashes."""

    packages: dict[str, str]
    hardware: Hardware
    seed: int
    data_sha256: dict[str, str]
    backends: dict[str, dict[str, Any]]  # each backend's identity (what keys the response cache)
    # hf backends whose `dtype: auto` was settled by a bf16 parity check (harness.costs.calibrate.PrecisionChoice)
    precision: dict[str, dict[str, Any]] = Field(default_factory=dict)
    env: dict[str, str] = Field(default_factory=dict)


class RunRecord(Record):
    schema_version: Literal[2] = SCHEMA_VERSION
    harness_version: str
    status: RunStatus
    suite_name: str
    suite_path: str
    suite_sha256: str
    suite: Suite  # the suite as run: every component's config with its defaults filled in
    started_at: datetime
    finished_at: datetime | None = None
    primary_metric: str
    strategies: dict[str, StrategySummary] = Field(default_factory=dict)
    # The best strategy on the primary metric against each other one, paired on the same cases.
    comparisons: list[PairedComparison] = Field(default_factory=list)
    prices: PriceSheetInfo | None = None
    decision: Decision | None = None
    diagnosis: Diagnosis | None = None  # why: gains over zero-shot, how answers fail, the pattern, cautions
    budget: BudgetRecord = Field(default_factory=BudgetRecord)
    manifest: Manifest | None = None
    options: RunOptions = Field(default_factory=RunOptions)
    # strategy -> phase (test, dev, training, indexing) -> predicted against measured, where a calibration existed
    time_checks: dict[str, dict[str, TimeCheck]] = Field(default_factory=dict)


# ---- version 1 -> 2 ----------------------------------------------------------------------------------------------


def upgrade_v1(data: dict[str, Any]) -> dict[str, Any]:
    """A version-1 run.json as version 2: setups typed by strategy kind, costs as lists, paired comparisons with
    their `settled` flag, the payback rounded once."""
    out = copy.deepcopy(data)
    out["schema_version"] = SCHEMA_VERSION
    kinds = {s["name"]: s["kind"] for s in out.get("suite", {}).get("strategies", [])}
    for name, summary in out.get("strategies", {}).items():
        setup = summary.get("setup") or {}
        if setup.get("given") is not None:
            setup["given"] = _given_v1(kinds.get(name, "other"), setup["given"])
        summary["setup"] = {"backend": summary.get("backend", ""), **setup}
    out["comparisons"] = [_pair_v1(p) for p in out.get("comparisons", [])]
    decision = out.get("decision")
    if decision:
        decision["pairs"] = [_pair_v1(p) for p in decision.get("pairs", [])]
        for row in decision.get("finetune", []):
            row["pair"] = _pair_v1(row["pair"]) if row.get("pair") else None
            for key in ("payback_requests", "break_even_monthly_volume"):
                if row.get(key) is not None:
                    row[key] = max(1, int(-(-row[key] // 1)))  # rounded up to a whole request, as v2 does
        decision["prices"] = decision.get("prices") or None
    out["prices"] = out.get("prices") or None
    for key in ("budget", "options"):
        out[key] = out.get(key) or {}
    if not out.get("manifest"):
        out["manifest"] = None
    return out


def _pair_v1(pair: dict[str, Any]) -> dict[str, Any]:
    pair = dict(pair)
    for key in ("mean_a", "mean_b"):
        if isinstance(pair.get(key), float) and pair[key] != pair[key]:  # NaN
            pair[key] = None
    return pair


def _given_v1(kind: str, given: dict[str, Any]) -> dict[str, Any]:
    given = dict(given)
    costs = []
    paid = given.pop("paid_usd", 0.0) or 0.0
    for what in ("training", "indexing"):
        usd, basis = given.pop(f"{what}_cost_usd", None), given.pop(f"{what}_cost_basis", None)
        if usd is not None or basis is not None:
            costs.append({"what": what, "usd": usd, "basis": basis or "", "paid_usd": paid})
            paid = 0.0
    given["setup_costs"] = costs
    given["kind"] = kind
    if kind == "finetune" and "preflight" in given:
        p = given["preflight"]
        given["preflight"] = {
            "n_examples": p["examples"],
            "n_duplicates": p["duplicates"],
            "token_lengths": p["token_lengths"],
            "max_length": p["max_length"],
            "n_truncated": p["truncated"],
            "total_tokens": p.get("total_tokens", 0),
            "warnings": p.get("warnings", []),
        }
    return given


def run_json_schema() -> dict[str, Any]:
    """JSON Schema of run.json (version 2), for tools that read run folders."""
    schema = RunRecord.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
