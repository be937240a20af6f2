"""A run folder as the report sees it: run.json (typed, versioned), cases.jsonl as a table, the training logs.

Everything is parsed as JSON by harness.run.folder's readers, the same the run uses (nothing from a run folder is
unpickled or executed): a damaged result line is refused with its line number, never skipped; a version-1 run.json
is upgraded; one of an unknown version is refused with a message saying which harness version reads it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.records.cases import CaseResult
from harness.records.run import RunRecord
from harness.records.setup import EpochScore
from harness.run.folder import read_cases, read_run

ROW_FIELDS = (
    "strategy",
    "case_id",
    "repeat",
    "target",
    "output",
    "error",
    "latency_s",
    "cache_hit",
    "input_tokens",
    "output_tokens",
    "cost_usd",
)


@dataclass
class TrainingLogs:
    """A fine-tune's logs in the run folder: the trainer's logged steps (loss, learning rate...) and each
    checkpoint's dev score."""

    curve: list[dict[str, Any]]
    epochs: list[EpochScore]


@dataclass
class RunView:
    run_dir: Path
    record: RunRecord
    cases: pd.DataFrame  # one row per strategy x case x repeat; score columns named after the metrics
    metrics: list[str]
    training: dict[str, TrainingLogs] = field(default_factory=dict)
    _lines: dict[tuple[str, str, int], int] = field(default_factory=dict)  # key -> byte offset in cases.jsonl

    @property
    def primary(self) -> str:
        return self.record.primary_metric

    def case_detail(self, case_id: str) -> list[CaseResult]:
        """The full result lines of one case (every strategy and repeat), read from cases.jsonl on demand."""
        out = []
        with (self.run_dir / "cases.jsonl").open("rb") as fh:
            for key, offset in self._lines.items():
                if key[1] == case_id:
                    fh.seek(offset)
                    out.append(CaseResult.model_validate_json(fh.readline()))
        return out


def input_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # chat messages
        return "\n".join(f"[{m.get('role', '?')}] {m.get('content', '')}" for m in value if isinstance(m, dict))
    return json.dumps(value, ensure_ascii=False)


def load_run(run_dir: str | Path) -> RunView:
    run_dir = Path(run_dir)
    record = read_run(run_dir)  # RunFolderError with the fix when missing, unreadable or of another schema
    metrics = sorted(
        {m for s in record.strategies.values() for m in s.metrics}, key=lambda m: (m != record.primary_metric, m)
    )
    rows: dict[tuple[str, str, int], dict[str, Any]] = {}
    offsets: dict[tuple[str, str, int], int] = {}
    for offset, line in read_cases(run_dir / "cases.jsonl"):
        row = {k: getattr(line, k) for k in ROW_FIELDS}
        row["input"] = input_text(line.input)
        for m in metrics:
            score = line.scores.get(m)
            row[m] = score.value if score else None
        row["retrieved"] = len(line.meta.retrieval.chunk_ids) if line.meta.retrieval else 0
        rows[line.key] = row  # the last line per key wins (a retried case supersedes its error)
        offsets[line.key] = offset
    cases = pd.DataFrame(list(rows.values()), columns=[*ROW_FIELDS, "input", *metrics, "retrieved"])
    training = {}
    for name in record.strategies:
        folder = run_dir / "training" / name
        if folder.is_dir():
            training[name] = TrainingLogs(
                curve=_jsonl(folder / "curve.jsonl"),
                epochs=[EpochScore.model_validate(e) for e in _jsonl(folder / "epochs.jsonl")],
            )
    return RunView(run_dir=run_dir, record=record, cases=cases, metrics=metrics, training=training, _lines=offsets)


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").split("\n"):
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def disagreements(view: RunView, *, only: str = "disagree") -> pd.DataFrame:
    """Cases (first repeat) with each strategy's primary score side by side: where strategies disagree, where any
    failed (an error or a score of 0), or all."""
    df = view.cases[view.cases["repeat"] == 0]
    if df.empty:
        return pd.DataFrame(columns=["case_id", "input", "target"])
    wide = df.pivot_table(index="case_id", columns="strategy", values=view.primary, aggfunc="first")
    errors = df[df["error"].notna()].groupby("case_id").size()
    first = df.drop_duplicates("case_id").set_index("case_id")[["input", "target"]]
    table = first.join(wide, how="left")
    table["errors"] = errors.reindex(table.index).fillna(0).astype(int)
    strategies = list(wide.columns)
    if only == "disagree":
        scores = table[strategies]
        table = table[(scores.max(axis=1) != scores.min(axis=1)) | (table["errors"] > 0)]
    elif only == "failed":
        table = table[(table[strategies].fillna(0) == 0).any(axis=1) | (table["errors"] > 0)]
    return table.reset_index()
