"""The report's charts as Altair specs, shared by the Streamlit app and the static export (rendered there to
inline SVG). Costs come from the run's records and harness.verdict.decide's what-if: nothing is recomputed here."""

from __future__ import annotations

import math
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from harness.records.decision import Decision
from harness.records.run import RunRecord
from harness.records.setup import EpochScore
from harness.verdict.decide import Option

WIDTH = 560


def leaderboard(record: RunRecord, metric: str) -> alt.Chart:
    rows = []
    for name, s in record.strategies.items():
        m = s.metrics.get(metric)
        if m and m.mean is not None:
            rows.append(
                {
                    "strategy": name,
                    "mean": m.mean,
                    "low": m.ci_low if m.ci_low is not None else m.mean,
                    "high": m.ci_high if m.ci_high is not None else m.mean,
                }
            )
    df = pd.DataFrame(rows, columns=["strategy", "mean", "low", "high"])
    base = alt.Chart(df).encode(y=alt.Y("strategy:N", sort="-x", title=None))
    bars = base.mark_rule(strokeWidth=2).encode(x=alt.X("low:Q", title=f"{metric} (95% CI)"), x2="high:Q")
    points = base.mark_point(filled=True, size=80).encode(x="mean:Q", tooltip=["strategy", "mean", "low", "high"])
    return (bars + points).properties(width=WIDTH, height=40 * max(len(df), 1), title=f"{metric} with 95% CIs")


def monthly_cost(options: list[Option], decision: Decision, *, horizon: int, dedicated: bool) -> alt.Chart:
    """Monthly cost against volume (setup spread over the horizon, hosting included), break-even points marked."""
    vols = decision.policy.volumes
    marks = [v.break_even_monthly_volume for v in decision.finetune if v.break_even_monthly_volume]
    low = max(1.0, min([*vols, *marks]) / 100)
    high = max([*vols, *marks]) * 100
    grid = np.logspace(math.log10(low), math.log10(high), 60)
    rows = []
    for o in options:
        for v in grid:
            m = o.cost.monthly_usd(float(v), horizon, dedicated=dedicated)
            if m is not None and m > 0:
                rows.append({"strategy": o.name, "requests a month": float(v), "$ a month": m})
    df = pd.DataFrame(rows, columns=["strategy", "requests a month", "$ a month"])
    lines = (
        alt.Chart(df)
        .mark_line()
        .encode(
            x=alt.X("requests a month:Q", scale=alt.Scale(type="log")),
            y=alt.Y("$ a month:Q", scale=alt.Scale(type="log")),
            color="strategy:N",
            tooltip=["strategy", "requests a month", "$ a month"],
        )
    )
    layers = [lines]
    rules = pd.DataFrame(
        [
            {"requests a month": float(v.break_even_monthly_volume), "what": f"{v.strategy} = {v.against}"}
            for v in decision.finetune
            if v.break_even_monthly_volume
        ],
        columns=["requests a month", "what"],
    )
    if not rules.empty:
        layers.append(
            alt.Chart(rules)
            .mark_rule(strokeDash=[4, 4], color="gray")
            .encode(x="requests a month:Q", tooltip=["what", "requests a month"])
        )
    you = pd.DataFrame([{"requests a month": float(v)} for v in vols])
    layers.append(alt.Chart(you).mark_rule(color="black").encode(x="requests a month:Q"))
    return alt.layer(*layers).properties(
        width=WIDTH, height=320, title="Monthly cost against volume (black: your volume; dashed: break-even)"
    )


def pareto(options: list[Option], metric: str) -> alt.Chart:
    rows = [
        {"strategy": o.name, metric: o.quality, "$ per 1,000 requests": o.cost.per_request_usd * 1000}
        for o in options
        if o.quality is not None and o.cost.per_request_usd is not None
    ]
    df = pd.DataFrame(rows, columns=["strategy", metric, "$ per 1,000 requests"])
    frontier = _frontier(df, metric)
    base = alt.Chart(df).encode(
        x=alt.X("$ per 1,000 requests:Q", scale=alt.Scale(zero=False)),
        y=alt.Y(f"{metric}:Q", scale=alt.Scale(zero=False)),
    )
    points = base.mark_point(filled=True, size=90).encode(color="strategy:N", tooltip=list(df.columns))
    labels = base.mark_text(align="left", dx=7).encode(text="strategy:N")
    line = (
        alt.Chart(frontier)
        .mark_line(strokeDash=[2, 2], color="gray")
        .encode(x="$ per 1,000 requests:Q", y=f"{metric}:Q")
    )
    return (line + points + labels).properties(
        width=WIDTH, height=300, title="Quality against cost (dashed: Pareto front)"
    )


def _frontier(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    best = -math.inf
    keep = []
    for _, row in df.sort_values("$ per 1,000 requests").iterrows():
        if row[metric] > best:
            keep.append(row)
            best = row[metric]
    return pd.DataFrame(keep, columns=df.columns)


def latency_cdf(cases: pd.DataFrame) -> alt.Chart:
    """Empirical CDF of per-answer latency (fresh answers; all answers when every one came from the cache)."""
    rows = []
    for name, group in cases[cases["error"].isna()].groupby("strategy"):
        fresh = group[~group["cache_hit"].astype(bool)]
        lat = (fresh if len(fresh) else group)["latency_s"].dropna().to_numpy(dtype=float)
        if not len(lat):
            continue
        qs = np.linspace(0, 1, min(len(lat), 200))
        for q, v in zip(qs, np.quantile(lat, qs), strict=True):
            rows.append({"strategy": name, "latency s": float(v), "share of answers": float(q)})
    df = pd.DataFrame(rows, columns=["strategy", "latency s", "share of answers"])
    return (
        alt.Chart(df)
        .mark_line(interpolate="step-after")
        .encode(x="latency s:Q", y="share of answers:Q", color="strategy:N")
        .properties(width=WIDTH, height=260, title="Latency per answer (CDF)")
    )


def tokens(record: RunRecord) -> alt.Chart:
    rows = [
        {"strategy": name, "part": part, "tokens": value}
        for name, s in record.strategies.items()
        for part, value in (s.tokens_mean or {}).items()
    ]
    df = pd.DataFrame(rows, columns=["strategy", "part", "tokens"])
    return (
        alt.Chart(df)
        .mark_bar()
        .encode(
            y=alt.Y("strategy:N", title=None),
            x=alt.X("sum(tokens):Q", title="tokens per request"),
            color=alt.Color("part:N", sort=["instructions", "exemplars", "context", "input", "template", "output"]),
            tooltip=["strategy", "part", alt.Tooltip("tokens:Q", format=".1f")],
        )
        .properties(width=WIDTH, height=40 * max(df["strategy"].nunique(), 1), title="Where the tokens go")
    )


def loss_curve(curve: list[dict[str, Any]]) -> alt.Chart:
    df = pd.DataFrame([r for r in curve if "loss" in r and "step" in r], columns=["step", "loss", "epoch"])
    return (
        alt.Chart(df)
        .mark_line()
        .encode(x="step:Q", y="loss:Q", tooltip=["step", "loss", "epoch"])
        .properties(width=WIDTH, height=220, title="Training loss")
    )


def dev_scores(epochs: list[EpochScore], chosen_step: int | None) -> alt.Chart:
    df = pd.DataFrame(
        [
            {"epoch": e.epoch, "dev score": e.dev_score, "chosen": "chosen" if e.step == chosen_step else "other"}
            for e in epochs
        ],
        columns=["epoch", "dev score", "chosen"],
    )
    return (
        alt.Chart(df)
        .mark_line(point=True)
        .encode(
            x="epoch:Q",
            y=alt.Y("dev score:Q", scale=alt.Scale(zero=False)),
            color=alt.Color("chosen:N", scale=alt.Scale(domain=["chosen", "other"], range=["#d62728", "#1f77b4"])),
            tooltip=["epoch", "dev score", "chosen"],
        )
        .properties(width=WIDTH, height=220, title="Dev score per epoch")
    )
