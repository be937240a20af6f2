"""Static reports of a run folder: one self-contained HTML file (charts as inline SVG, no script, no network) and
a Markdown file for a review or a pull request. Every text from the run is escaped."""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.records.run import Manifest, RunRecord
from harness.records.setup import FineTuneGiven
from harness.records.summary import StrategySummary
from harness.verdict.explain import (
    FINETUNE_HEADER,
    RANKING_HEADER,
    diagnosis_lines,
    finetune_cells,
    ranking_cells,
    render_markdown,
    training_summary,
)
from harness.verdict.what_if import what_if

if TYPE_CHECKING:
    from reports.data import RunView

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em} h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
.verdict{font-size:1.15em;padding:.8em 1em;border-radius:6px;margin:1em 0}
.decided{background:#e8f5e9;border:1px solid #66bb6a}.inconclusive{background:#fff8e1;border:1px solid #ffb300}
.undecided{background:#ffebee;border:1px solid #e53935}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em} td,th{border:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f5f5f5} pre{white-space:pre-wrap;background:#fafafa;border:1px solid #eee;padding:.4em;margin:0;max-width:340px}
.muted{color:#666;font-size:.9em} figure{margin:1em 0}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _num(value: Any, spec: str = ".3f") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return format(value, spec)
    return _e(value)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _svg(chart) -> str:
    """An Altair chart as inline SVG (rendered here by vl-convert: no JavaScript in the page)."""
    import vl_convert as vlc

    svg = vlc.vegalite_to_svg(chart.to_dict())
    return f"<figure>{svg}</figure>"


def render_html(run_dir: str | Path, *, cases_shown: int = 25) -> str:
    """The report as one self-contained HTML page: verdict, leaderboard, cost, quality against cost and latency,
    training, the cases where strategies disagree, the manifest."""
    from reports.data import load_run

    view = load_run(run_dir)
    r = view.record
    out = [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{_e(r.suite_name)}: decision report</title>"
        f"<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">"
        f"<style>{CSS}</style></head><body>",
        f"<h1>{_e(r.suite_name)}: decision report</h1>",
        f"<p class='muted'>run {_e(r.status)}, {_e(r.finished_at)}; harness {_e(r.harness_version)}"
        + (f"; prices: sheet {_e(r.prices.version)} of {_e(r.prices.date)}" if r.prices else "")
        + "</p>",
    ]
    out += _verdict_html(r) + _leaderboard_html(view) + _cost_html(view) + _training_html(view)
    out += _cases_html(view, cases_shown)
    out.append("<h2>Manifest</h2><pre style='max-width:none'>" + _e(_manifest_text(r.manifest)) + "</pre>")
    out.append("</body></html>")
    return "\n".join(out)


def _verdict_html(r: RunRecord) -> list[str]:
    d = r.decision
    if not d:
        return []
    why = diagnosis_lines(r.diagnosis) if r.diagnosis else []
    out = [
        f"<div class='verdict {_e(d.status)}'>{_e(d.verdict)}</div>",
        *(
            ["<h2>Why: knowledge or format</h2><ul>" + "".join(f"<li>{_e(x[2:])}</li>" for x in why) + "</ul>"]
            if why
            else []
        ),
        "<h2>Why</h2><ul>" + "".join(f"<li>{_e(x)}</li>" for x in d.reasons) + "</ul>",
    ]
    if d.uncertainty:
        out.append("<h2>Uncertainty</h2><ul>" + "".join(f"<li>{_e(x)}</li>" for x in d.uncertainty) + "</ul>")
    return out


def _leaderboard_html(view: RunView) -> list[str]:
    from reports import charts

    r = view.record
    rows = [
        [_e(name), _e(s.n_done), _e(s.n_errors), *(_e(c) for c in metric_cells(s, view.metrics))]
        for name, s in r.strategies.items()
    ]
    out = [
        "<h2>Leaderboard</h2>",
        _table(["strategy", "answers", "errors", *view.metrics], rows),
        _svg(charts.leaderboard(r, view.primary)),
    ]
    if r.comparisons:
        out.append(
            _table(
                ["best", "other", "difference [95% CI]", "better on", "worse on", "test", "p", "p (Holm)", "settled"],
                [
                    [
                        _e(c.a),
                        _e(c.b),
                        f"{c.diff:+.3f} [{_num(c.ci_low, '+.3f')}, {_num(c.ci_high, '+.3f')}]",
                        _e(c.wins),
                        _e(c.losses),
                        _e(c.test),
                        _num(c.p_value, ".2g"),
                        _num(c.p_holm, ".2g"),
                        _e(c.settled),
                    ]
                    for c in r.comparisons
                ],
            )
        )
    return out


def _cost_html(view: RunView) -> list[str]:
    from reports import charts

    r = view.record
    decision, options = what_if(r)
    out = ["<h2>Cost</h2>"]
    for b in decision.by_volume:
        out.append(f"<p>At {b.volume:,} requests a month: <b>{_e(b.winner or 'no winner')}</b> ({_e(b.status)})</p>")
        out.append(_table(RANKING_HEADER, [[_e(c) for c in ranking_cells(x)] for x in b.ranking]))
    if decision.finetune:
        out.append(
            _table(
                [*FINETUNE_HEADER, "reason"],
                [[_e(c) for c in [*finetune_cells(x), x.reason]] for x in decision.finetune],
            )
        )
    return out + [
        _svg(
            charts.monthly_cost(
                options, decision, horizon=decision.policy.horizon_months, dedicated=decision.policy.dedicated_hosting
            )
        ),
        "<h2>Quality against cost, latency, tokens</h2>",
        _svg(charts.pareto(options, view.primary)),
        _table(
            ["strategy", "p50 s", "p95 s", "p99 s", "output tok/s", "measured"],
            [
                [
                    _e(n),
                    _num(s.latency.p50_s, ".2f"),
                    _num(s.latency.p95_s, ".2f"),
                    _num(s.latency.p99_s, ".2f"),
                    _num(s.throughput_output_tok_s, ".1f"),
                    _e(s.latency.how),
                ]
                for n, s in r.strategies.items()
            ],
        ),
        _svg(charts.latency_cdf(view.cases)),
        _svg(charts.tokens(r)),
    ]


def _training_html(view: RunView) -> list[str]:
    from reports import charts

    out = []
    for name, logs in view.training.items():
        given = view.record.strategies[name].setup.given
        if not isinstance(given, FineTuneGiven):
            continue
        out.append(f"<h2>Training: {_e(name)}</h2><p>{_e(training_summary(given))}</p>")
        if logs.curve:
            out.append(_svg(charts.loss_curve(logs.curve)))
        if logs.epochs:
            out.append(_svg(charts.dev_scores(logs.epochs, given.chosen.step)))
    return out


def _cases_html(view: RunView, shown: int) -> list[str]:
    """The cases where strategies disagree, each answer (or its error) with its primary score."""
    from reports.data import disagreements

    table = disagreements(view, only="disagree").head(shown)
    strategies = [c for c in table.columns if c in view.record.strategies]
    first = view.cases[view.cases["repeat"] == 0].set_index(["case_id", "strategy"])

    def answer(case_id: str, strategy: str, score: Any) -> str:
        try:
            row = first.loc[(case_id, strategy)]
        except KeyError:
            return "-"
        said = row["output"] if row["error"] is None or row["error"] != row["error"] else f"error: {row['error']}"
        return f"<pre>{_e(said)}</pre>{_num(score)}"

    return [
        f"<h2>Cases where strategies disagree (first {len(table)}): each answer with its {_e(view.primary)}</h2>",
        _table(
            ["case", "input", "target", *strategies],
            [
                [
                    _e(row["case_id"]),
                    f"<pre>{_e(row['input'])}</pre>",
                    f"<pre>{_e(row['target'])}</pre>",
                    *[answer(row["case_id"], s, row[s]) for s in strategies],
                ]
                for _, row in table.iterrows()
            ],
        ),
    ]


def _manifest_text(manifest: Manifest | None) -> str:
    return "" if manifest is None else manifest.model_dump_json(indent=1)


def render_md(run_dir: str | Path) -> str:
    from reports.data import load_run

    view = load_run(run_dir)
    r = view.record
    parts = [
        render_markdown(r.decision, suite_name=r.suite_name, diagnosis=r.diagnosis)
        if r.decision
        else f"# {r.suite_name}\n\nNo decision."
    ]
    header = ["strategy", "answers", "errors", *view.metrics, "p95 s", "$ per 1,000 requests"]
    lines = ["## Leaderboard", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, s in r.strategies.items():
        cells = strategy_cells(s, view.metrics)
        row = [
            name,
            str(s.n_done),
            str(s.n_errors),
            *(cells[m] for m in view.metrics),
            cells["p95 s"],
            cells["$ per 1,000 requests"],
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
    parts.append("\n".join(lines))
    prices = f", prices: sheet {r.prices.version} of {r.prices.date}" if r.prices else ""
    parts.append(f"_Run {r.status}, harness {r.harness_version}{prices}._")
    return "\n\n".join(parts) + "\n"


def metric_cells(summary: StrategySummary, metrics: list[str]) -> list[str]:
    """Each metric as `mean [low, high]` (the leaderboard's cells), "-" where the strategy has no score."""
    out = []
    for m in metrics:
        ms = summary.metrics.get(m)
        out.append(
            "-"
            if not ms or ms.mean is None
            else f"{ms.mean:.3f}" + (f" [{ms.ci_low:.3f}, {ms.ci_high:.3f}]" if ms.ci_low is not None else "")
        )
    return out


def strategy_cells(summary: StrategySummary, metrics: list[str]) -> dict[str, str]:
    """One strategy's numbers formatted as the Markdown leaderboard writes them, for other Markdown views of a run
    (the example suites' READMEs): each metric as `mean [low, high]`, p50 s and p95 s, $ per 1,000 requests."""
    cells = dict(zip(metrics, metric_cells(summary, metrics), strict=True))
    cells["p50 s"] = _num(summary.latency.p50_s, ".2f")
    cells["p95 s"] = _num(summary.latency.p95_s, ".2f")
    cost = summary.cost
    cells["$ per 1,000 requests"] = (
        "-" if not cost or cost.per_request_usd is None else f"{cost.per_request_usd * 1000:.4g}"
    )
    return cells
