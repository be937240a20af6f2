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
.warn{background:#fff4e5;border:1px solid #f0b46c;padding:.5em .8em;border-radius:6px}
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
        *(f"<p class='warn'>{_e(w)}</p>" for w in view.warnings),
    ]
    out += _verdict_html(r) + _more_data_html(r) + _tipping_html(r)
    out += _leaderboard_html(view) + _cost_html(view) + _training_html(view)
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


def _rows_table(rows: list[dict[str, Any]]) -> str:
    """Table rows of reports.data (one dict per row, the same keys) as an HTML table, every cell escaped."""
    return _table(list(rows[0]), [[_e(v) for v in row.values()] for row in rows]) if rows else ""


def _more_data_html(r: RunRecord) -> list[str]:
    """Each fine-tune's learning curve: the chart, what twice the data is expected to bring, the measured points."""
    from reports import charts
    from reports.data import curve_point_rows, other_scores

    out = []
    for curve in r.decision.learning_curves if r.decision else []:
        out.append(f"<h2>More data: {_e(curve.strategy)}</h2>")
        out.append(_svg(charts.learning_curve(curve, other_scores(r, curve))))
        if curve.fit.status != "extrapolated":
            out.append(
                f"<p class='muted'>No curve drawn ({_e(curve.fit.status.replace('_', ' '))}): {_e(curve.fit.reason)}</p>"
            )
        if curve.more_data:
            out.append(f"<p>{_e(curve.more_data.sentence)}</p>")
        out.append(_rows_table(curve_point_rows(curve)))
    return out


def _tipping_html(r: RunRecord) -> list[str]:
    """Where the decision tips: the tornado chart, the table and each sentence (nothing when there are none)."""
    from reports import charts
    from reports.data import tipping_rows

    points = r.decision.tipping if r.decision else []
    if not points:
        return []
    chart = charts.tipping(points)
    out = ["<h2>Where the decision tips</h2>"]
    if chart is not None:
        out.append(_svg(chart))
    zero = [t.label for t in points if not t.current > 0]
    if zero:
        out.append(f"<p class='muted'>Not drawn (0 in this run, so no factor): {_e(', '.join(zero))}.</p>")
    out.append(_rows_table(tipping_rows(points)))
    out.append("<ul>" + "".join(f"<li>{_e(t.sentence)}</li>" for t in points) + "</ul>")
    return out


def _leaderboard_html(view: RunView) -> list[str]:
    from reports import charts
    from reports.data import field_rows, judge_rows

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
    fields, judges = field_rows(r), judge_rows(r)
    if fields:
        out += ["<h3>Structured fields: (key, value) pairs over the test set</h3>", _rows_table(fields)]
    if judges:
        out += ["<h3>How far the judge can be trusted</h3>", _rows_table(judges)]
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
    from reports.data import recurring_rows, setup_item_rows

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
    policy = decision.policy
    if policy.retrain_every_months is not None or policy.reindex_every_months is not None:
        recurring = recurring_rows(options, policy.horizon_months)
        out.append(
            f"<h3>Recurring costs</h3><p class='muted'>What each repeat adds to a month over {policy.horizon_months} "
            "months (in the monthly cost above; the first time is setup, spread over the horizon).</p>"
            + (_rows_table(recurring) or "<p>No strategy has training or indexing to repeat.</p>")
        )
    if items := setup_item_rows(r):
        out.append("<h3>Setup costs, item by item</h3>" + _rows_table(items))
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
    from reports.data import field_rows, judge_rows, load_run

    view = load_run(run_dir)
    r = view.record
    parts = [
        _with_more_data_and_tipping(render_markdown(r.decision, suite_name=r.suite_name, diagnosis=r.diagnosis), r)
        if r.decision
        else f"# {r.suite_name}\n\nNo decision."
    ]
    parts += [f"> **Warning:** {_md_cell(w)}" for w in view.warnings]
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
    for title, rows in (
        ("## Structured fields: (key, value) pairs over the test set", field_rows(r)),
        ("## How far the judge can be trusted", judge_rows(r)),
    ):
        if rows:
            parts.append("\n".join([title, "", *_md_rows(rows)]))
    parts += _setup_md(view)
    prices = f", prices: sheet {r.prices.version} of {r.prices.date}" if r.prices else ""
    parts.append(f"_Run {r.status}, harness {r.harness_version}{prices}._")
    return "\n\n".join(parts) + "\n"


TIPPING_MD = "## Where the decision tips"


def _md_cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _md_rows(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    header = list(rows[0])
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(_md_cell(v) for v in row.values()) + " |" for row in rows
    ]


def _with_more_data_and_tipping(text: str, r: RunRecord) -> str:
    """decision.md (harness.verdict.explain) with the tipping points' table under its tipping sentences, and each
    learning curve's table and sentence, and the tipping section, added where it has none of them."""
    from reports.data import curve_point_rows, tipping_rows

    d = r.decision
    assert d is not None
    more = []
    for curve in d.learning_curves:
        if f"## More data: {_md_cell(curve.strategy)}" not in text:
            more += [f"## More data: {_md_cell(curve.strategy)}", "", *_md_rows(curve_point_rows(curve)), ""]
            more += [f"- {_md_cell(curve.more_data.sentence if curve.more_data else curve.fit.reason)}", ""]
    if d.tipping:
        table = "\n".join(_md_rows(tipping_rows(d.tipping))) + "\n\n"
        if TIPPING_MD + "\n\n" in text:
            text = text.replace(TIPPING_MD + "\n\n", TIPPING_MD + "\n\n" + table, 1)
        else:
            more += [TIPPING_MD, "", table.rstrip("\n"), ""] + [f"- {_md_cell(t.sentence)}" for t in d.tipping] + [""]
    return text.rstrip("\n") + ("\n\n" + "\n".join(more).rstrip("\n") if more else "")


def _setup_md(view: RunView) -> list[str]:
    """Setup costs item by item and, where the suite repeats training or indexing, what that adds to a month."""
    from reports.data import recurring_rows, setup_item_rows

    out = []
    if items := setup_item_rows(view.record):
        out.append("\n".join(["## Setup costs, item by item", "", *_md_rows(items)]))
    policy = view.record.suite.decision  # what the what-if decides with
    if policy and (policy.retrain_every_months is not None or policy.reindex_every_months is not None):
        _, options = what_if(view.record)
        rows = recurring_rows(options, policy.horizon_months)
        out.append(
            "\n".join(
                ["## Recurring costs", "", *(_md_rows(rows) or ["No strategy has training or indexing to repeat."])]
            )
        )
    return out


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
