"""The report's charts as Altair specs, shared by the Streamlit app and the static export (rendered there to
inline SVG). Costs come from the run's records and harness.verdict.decide's what-if: nothing is recomputed here."""

from __future__ import annotations

import math
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from harness.records.curve import LearningCurve
from harness.records.decision import Decision, TippingPoint
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


def monthly_cost(options: list[Option], decision: Decision, *, horizon: int, dedicated: bool) -> alt.LayerChart:
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
    return alt.LayerChart(
        layer=layers,
        width=WIDTH,
        height=320,
        title="Monthly cost against volume (black: your volume; dashed: break-even)",
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


def learning_curve(curve: LearningCurve, others: dict[str, float]) -> alt.LayerChart:
    """A fine-tune's learning curve: the measured points with their 95% CIs over training examples (log scale); where
    the fit extrapolates, the fitted q(n) = a - b * n^(-c) from the smallest point to twice the largest with its
    bootstrap band; the other strategies' scores as labelled horizontal rules."""
    metric = curve.metric
    x_title = "training examples (log scale)"
    points = pd.DataFrame(
        [
            {
                "examples": p.n_examples,
                metric: p.mean,
                "low": p.ci_low if p.ci_low is not None else p.mean,
                "high": p.ci_high if p.ci_high is not None else p.mean,
                "train fraction": p.fraction,
            }
            for p in curve.points
            if p.mean is not None and p.n_examples > 0
        ],
        columns=["examples", metric, "low", "high", "train fraction"],
    )
    sizes = [p.n_examples for p in curve.points if p.n_examples > 0]
    fit = curve.fit
    fitted = fit.status == "extrapolated" and fit.params is not None and bool(sizes)
    right = 2 * max(sizes) if fitted else max(sizes, default=1)
    left = min(sizes, default=1)
    domain = [left / 1.25, right * 1.25]  # the points and the curve, with a margin: no empty decades
    x = alt.X("examples:Q", scale=alt.Scale(type="log", domain=domain, nice=False), title=x_title)
    y = alt.Y(f"{metric}:Q", scale=alt.Scale(zero=False), title=metric)
    layers: list[alt.Chart] = []
    if fitted:
        assert fit.params is not None
        a, b, c = fit.params["a"], fit.params["b"], fit.params["c"]
        grid = np.geomspace(min(sizes), right, 60)
        line = pd.DataFrame({"examples": grid, metric: a - b * grid ** (-c)})
        band = pd.DataFrame(
            sorted(
                ({"examples": p.n_examples, "band low": p.low, "band high": p.high} for p in fit.predictions),
                key=lambda r: r["examples"],
            ),
            columns=["examples", "band low", "band high"],
        )
        if not band.empty:
            layers.append(
                alt.Chart(band)
                .mark_area(opacity=0.2, color="#1f77b4")
                .encode(x=x, y=alt.Y("band low:Q", title=metric), y2="band high:Q")
            )
        layers.append(alt.Chart(line).mark_line(color="#1f77b4").encode(x=x, y=y))
    layers.append(alt.Chart(points).mark_rule(color="#1f77b4").encode(x=x, y=alt.Y("low:Q", title=metric), y2="high:Q"))
    layers.append(
        alt.Chart(points)
        .mark_point(filled=True, size=70, color="#1f77b4")
        .encode(x=x, y=y, tooltip=["train fraction", "examples", metric, "low", "high"])
    )
    same: dict[float, list[str]] = {}  # strategies with the same score share one rule and one label
    for name, score in others.items():
        same.setdefault(score, []).append(name)
    rules = pd.DataFrame(
        [{"strategy": ", ".join(names), metric: score, "examples": domain[1]} for score, names in same.items()],
        columns=["strategy", metric, "examples"],
    )
    if not rules.empty:
        layers.append(
            alt.Chart(rules)
            .mark_rule(strokeDash=[4, 4], color="gray")
            .encode(y=alt.Y(f"{metric}:Q"), tooltip=["strategy", metric])
        )
        layers.append(
            alt.Chart(rules)
            .mark_text(align="right", baseline="bottom", dx=-2, dy=-2, color="gray")
            .encode(x=x, y=y, text="strategy:N")
        )
    title = (
        f"{curve.strategy}: {metric} against training examples (fitted curve, 95% band, to 2x the data)"
        if fitted
        else f"{curve.strategy}: {metric} against training examples (measured points only: no curve fitted)"
    )
    return alt.LayerChart(layer=layers, width=WIDTH, height=320, title=title)


NOTE_PX = 115  # the widest note beside a bar ("no flip within range" at 10px)
TIPPING_TITLE = "Where the decision tips: how far each input must move to change the winner"


def tipping(points: list[TippingPoint]) -> alt.LayerChart | None:
    """A tornado chart: one row per input, a bar from its current value (1x) to the factor below and above at which
    another strategy wins (log scale); a faint bar out to the searched edge where it does not flip that way. Inputs
    whose current value is 0 have no factor and are left to the table; None when no input is left to draw."""
    drawn = [t for t in points if t.current > 0]
    if not drawn:
        return None
    volumes = {t.volume for t in points}
    rows = []
    for t in drawn:
        name = t.label + (f" (at {t.volume:,}/month)" if len(volumes) > 1 else "")
        for side, found, edge, who in (
            ("below", t.low, t.searched[0], t.low_winner),
            ("above", t.high, t.searched[1], t.high_winner),
        ):
            value = found if found is not None else edge
            rows.append(
                {
                    "input": name,
                    "side": side,
                    "factor": value / t.current,
                    "value": value,
                    "flips": found is not None,
                    "note": f"{who or 'no strategy'} wins" if found is not None else "no flip within range",
                }
            )
    df = pd.DataFrame(rows)
    positive = df.loc[df["factor"] > 0, "factor"]
    floor = min(float(positive.min()) if len(positive) else 1.0, 0.01)
    df["factor"] = df["factor"].clip(lower=floor)  # an edge at 0 (a cost searched down to nothing) at the left end
    df["from"] = 1.0
    df["opacity"] = np.where(df["flips"], 0.9, 0.2)
    # room beyond the bars' ends for their notes: NOTE_PX of the width at each end, in decades of the log scale
    lo, hi = min(math.log10(df["factor"].min()), 0.0), max(math.log10(df["factor"].max()), 0.0)
    pad = NOTE_PX * max(hi - lo, 1.0) / (WIDTH - 2 * NOTE_PX)
    x = alt.X(
        "from:Q",
        scale=alt.Scale(type="log", domain=[10 ** (lo - pad), 10 ** (hi + pad)], nice=False),
        title="factor of the current value (log scale; 1 = this run)",
    )
    y = alt.Y("input:N", title=None, sort=None)
    bars = (
        alt.Chart(df)
        .mark_bar(height=16)
        .encode(
            x=x,
            x2="factor:Q",
            y=y,
            color=alt.Color(
                "side:N", scale=alt.Scale(domain=["below", "above"], range=["#1f77b4", "#d62728"]), title="flips"
            ),
            opacity=alt.Opacity("opacity:Q", scale=None, legend=None),
            tooltip=["input", "side", "value", alt.Tooltip("factor:Q", format=".3g"), "note"],
        )
    )
    labels = [
        alt.Chart(df)
        .transform_filter(alt.datum.side == side)
        .mark_text(align="right" if side == "below" else "left", dx=-4 if side == "below" else 4, fontSize=10)
        .encode(x=alt.X("factor:Q"), y=y, text="note:N")
        for side in ("below", "above")
    ]
    now = alt.Chart(pd.DataFrame([{"from": 1.0}])).mark_rule(color="black").encode(x="from:Q")
    # height as a step per input: a whole row for each, whatever the app's autosizing does with a fixed height
    return alt.LayerChart(layer=[bars, *labels, now], width=WIDTH, height=alt.Step(34), title=TIPPING_TITLE)
