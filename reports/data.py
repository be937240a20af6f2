"""A run folder as the report sees it: run.json (typed, versioned), cases.jsonl as a table, the training logs.

Everything is parsed as JSON by harness.run.folder's readers, the same the run uses (nothing from a run folder is
unpickled or executed): a damaged result line is refused with its line number, never skipped; a version-1 run.json
is upgraded; one of an unknown version is refused with a message saying which harness version reads it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from harness.costs.money import usd
from harness.records.cases import CaseResult
from harness.records.curve import LearningCurve
from harness.records.decision import TippingPoint
from harness.records.run import RunRecord
from harness.records.setup import EpochScore
from harness.run.folder import read_cases, read_run
from harness.verdict.scorer_stats import agreement_text

if TYPE_CHECKING:
    from harness.verdict.decide import Option

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
    rejected_lines: list[int] = field(default_factory=list)  # unreadable lines of cases.jsonl, left out

    @property
    def warnings(self) -> list[str]:
        """What the reader had to leave out or what is not final, said on every page."""
        out = []
        if self.rejected_lines:
            shown = ", ".join(map(str, self.rejected_lines[:10])) + (" ..." if len(self.rejected_lines) > 10 else "")
            out.append(
                f"{len(self.rejected_lines)} unreadable line(s) of cases.jsonl left out (line {shown}); the next "
                "`harness compare` on this folder moves them to cases.rejected.jsonl and runs those cases again."
            )
        if self.record.status == "running":
            out.append("This run is still being written: the numbers are a snapshot; reload for more.")
        return out

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
    rejected: list[tuple[int, bytes]] = []
    for offset, line in read_cases(run_dir / "cases.jsonl", rejected=rejected):
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
    return RunView(
        run_dir=run_dir,
        record=record,
        cases=cases,
        metrics=metrics,
        training=training,
        _lines=offsets,
        rejected_lines=[n for n, _ in rejected],
    )


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


# ---- the decision's learning curves, tipping points and recurring costs as table rows (the app and the export) ----


def score_cell(mean: float | None, low: float | None, high: float | None) -> str:
    """A score as `mean [low, high]`; "-" when there is none."""
    if mean is None:
        return "-"
    return f"{mean:.3f}" + (f" [{low:.3f}, {high:.3f}]" if low is not None and high is not None else "")


def curve_point_rows(curve: LearningCurve) -> list[dict[str, str]]:
    """A learning curve's measured points: the share of the train split, its examples, the score, the training."""
    return [
        {
            "train fraction": f"{p.fraction:g}",
            "examples": f"{p.n_examples:,}",
            f"{curve.metric} [95% CI]": score_cell(p.mean, p.ci_low, p.ci_high),
            "training cost": usd(p.training_usd),
        }
        for p in curve.points
    ]


def other_scores(record: RunRecord, curve: LearningCurve) -> dict[str, float]:
    """The other strategies' scores on the curve's metric (the rules its chart is read against): every strategy
    but the fine-tune itself and its subset runs."""
    own = {curve.strategy, *(p.name for p in curve.points)}
    out = {}
    for name, s in record.strategies.items():
        m = s.metrics.get(curve.metric)
        if name not in own and m is not None and m.mean is not None:
            out[name] = m.mean
    return out


def plain(x: float | None) -> str:
    """A number as a reader takes it in: 50,000; 0.36; 2.5e-05."""
    if x is None:
        return "-"
    if x == 0:
        return "0"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def tipping_factor(t: TippingPoint, value: float) -> float | None:
    """`value` as a factor of the input's current value; None when the current value is 0 (no factor to give)."""
    return value / t.current if t.current > 0 else None


def _flip_cell(t: TippingPoint, found: float | None, edge: float, side: str) -> str:
    if found is None:
        return f"no flip within range ({'down' if side == 'below' else 'up'} to {plain(edge)})"
    factor = tipping_factor(t, found)
    return plain(found) if factor is None else f"{plain(found)} (x{factor:.3g})"


def tipping_rows(points: list[TippingPoint]) -> list[dict[str, str]]:
    """Each input: its current value, the value below and above which the winner changes (with the factor of the
    current value, or the plain value where the current one is 0), and who wins then."""
    volumes = {t.volume for t in points}
    rows = []
    for t in points:
        new = [
            f"{side}: {who or 'no strategy'}"
            for side, at, who in (("below", t.low, t.low_winner), ("above", t.high, t.high_winner))
            if at is not None
        ]
        rows.append(
            {
                "input": t.label + (f" (at {t.volume:,} requests a month)" if len(volumes) > 1 else ""),
                "current": plain(t.current),
                "winner now": t.winner,
                "flips below": _flip_cell(t, t.low, t.searched[0], "below"),
                "flips above": _flip_cell(t, t.high, t.searched[1], "above"),
                "new winner": "; ".join(new) or "-",
            }
        )
    return rows


def setup_item_rows(record: RunRecord) -> list[dict[str, str]]:
    """Each strategy's one-off setup costs, item by item (training, indexing, data preparation, corpus curation...),
    as the run measured them."""
    return [
        {"strategy": name, "setup item": item.what, "$": usd(item.usd), "basis": item.basis}
        for name, s in record.strategies.items()
        if s.cost
        for item in s.cost.setup_items
    ]


def recurring_rows(options: list[Option], horizon_months: int) -> list[dict[str, Any]]:
    """What recurs (retraining, re-indexing) per strategy: the cost each time, how often, and what repeating it adds
    to a month over the horizon (the setup itself is spread over the horizon already)."""
    return [
        {
            "strategy": o.name,
            "recurring": r.what,
            "$ each time": usd(r.usd),
            "every (months)": plain(r.every_months),
            "adds $ a month": usd(r.extra_monthly_usd(horizon_months)),
        }
        for o in options
        for r in o.cost.recurring
    ]


# ---- what scorers' details add up to: structured fields, a judge's trust (leaderboard page and the export) ----


def field_rows(record: RunRecord) -> list[dict[str, str]]:
    """Per strategy and structured-output metric: precision, recall and F1 of its (key, value) pairs micro-averaged
    over the test set, and the F1 of each key."""
    return [
        {
            "strategy": name,
            "metric": metric,
            "precision": f"{f.precision:.3f}",
            "recall": f"{f.recall:.3f}",
            "F1": f"{f.f1:.3f}",
            "pairs (right / made up or wrong / missed)": f"{f.tp} / {f.fp} / {f.fn}",
            "F1 per key": ", ".join(f"{k} {v:.2f}" for k, v in f.per_key_f1.items()),
        }
        for name, s in record.strategies.items()
        for metric, m in s.metrics.items()
        if (f := m.fields) is not None
    ]


def judge_rows(record: RunRecord) -> list[dict[str, str]]:
    """Per strategy and model-graded metric: the judge's agreement with the human grades and, pairwise, how often
    it preferred the answer it read first."""
    rows = []
    for name, s in record.strategies.items():
        for metric, m in s.metrics.items():
            t = m.judge
            if t is None:
                continue
            measured = agreement_text(t)
            agreement = "-" if measured is None else f"{measured} on {t.n_graded} cases"
            rows.append(
                {
                    "strategy": name,
                    "metric": metric,
                    "agreement with human grades": agreement,
                    "min_agreement": plain(t.min_agreement),
                    "first answer preferred": "-"
                    if t.position_first_share is None
                    else f"{t.position_first_share:.0%} of {t.n_position} decisive replies",
                }
            )
    return rows
