"""The decision report: `harness report RUN_DIR` runs `streamlit run reports/app.py -- RUN_DIR`.

Reads only the run folder (run.json, cases.jsonl, training logs). Model outputs and data are shown as text, never
as Markdown or HTML. The what-if controls recompute the decision with harness.verdict.what_if, the functions the
run itself used.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pandas as pd
import streamlit as st

from harness.errors import HarnessError
from harness.records.setup import FineTuneGiven
from harness.suite.schema import DecisionSpec
from harness.verdict.explain import diagnosis_lines, ranking_cells
from harness.verdict.what_if import WhatIf, what_if

PAGES = ["Verdict", "Leaderboard", "Cost", "Quality, latency, tokens", "Training", "Cases", "Manifest"]
PAGE_SIZE = 50


def run_dir_arg() -> Path | None:
    """The run folder: HARNESS_REPORT_RUN (set by `harness report`), else the argument after `streamlit run app.py --`."""
    value = os.environ.get("HARNESS_REPORT_RUN")
    if not value:
        args = [a for a in sys.argv[1:] if not a.startswith("-")]
        value = args[0] if args else None
    return Path(value) if value else None


def _stamp(run_dir: Path) -> tuple[float, float]:
    run, cases = (f.stat().st_mtime if f.exists() else 0.0 for f in (run_dir / "run.json", run_dir / "cases.jsonl"))
    return run, cases


@st.cache_resource(show_spinner="Reading the run folder ...", max_entries=4)
def _load(run_dir: str, stamp: tuple[float, float]):
    from reports.data import load_run

    return load_run(run_dir)


def text(value: object) -> None:
    """Data and model output as plain text (never interpreted as Markdown or HTML)."""
    st.text("" if value is None else str(value))


def md_escape(value: object) -> str:
    out = str(value)
    for ch in "\\`*_{}[]()#+-.!|<>~$":
        out = out.replace(ch, "\\" + ch)
    return out


def page_verdict(view) -> None:
    d = view.record.decision
    st.header("Verdict")
    if not d:
        st.info("This run has no decision (no strategy finished).")
        return
    status = {"decided": st.success, "inconclusive": st.warning, "undecided": st.error}[d.status]
    status(md_escape(d.verdict))  # escaped: "$" would start math, "[...]" a link
    for v in d.finetune:
        if v.under_trained:
            st.warning(md_escape(f"{v.strategy} against {v.against}: {v.reason}"))
    prices = f" · prices: sheet {d.prices.version} of {d.prices.date}" if d.prices else ""
    st.caption(f"status: {d.status} · primary metric: {d.metric}{prices}")
    diagnosis = view.record.diagnosis
    if diagnosis is not None and (lines := diagnosis_lines(diagnosis)):
        st.subheader("Why: knowledge or format")
        for line in lines:
            st.markdown("- " + md_escape(line[2:]))
    st.subheader("Reasons")
    for reason in d.reasons:
        st.markdown("- " + md_escape(reason))
    if d.uncertainty:
        st.subheader("Uncertainty")
        for line in d.uncertainty:
            st.markdown("- " + md_escape(line))
    if d.finetune:
        st.subheader("Fine-tuning against each alternative")
        st.dataframe(_finetune_table(d.finetune, more=True), hide_index=True)
    more_data(view)
    tipping(d)


def more_data(view) -> None:
    """Each fine-tune's learning curve: the chart, what twice the data is expected to bring, the measured points."""
    from reports import charts
    from reports.data import curve_point_rows, other_scores

    d = view.record.decision
    for curve in d.learning_curves if d else []:
        st.subheader(f"More data: {curve.strategy}")
        st.altair_chart(charts.learning_curve(curve, other_scores(view.record, curve)))
        if curve.fit.status != "extrapolated":
            st.caption(md_escape(f"No curve drawn ({curve.fit.status.replace('_', ' ')}): {curve.fit.reason}"))
        if curve.more_data:
            st.markdown(md_escape(curve.more_data.sentence))
        st.dataframe(pd.DataFrame(curve_point_rows(curve)), hide_index=True)


def tipping(d) -> None:
    """Where the decision tips: how far each input must move for another strategy to win (hidden when the run has
    no tipping points)."""
    from reports import charts
    from reports.data import tipping_rows

    if not d.tipping:
        return
    st.subheader("Where the decision tips")
    chart = charts.tipping(d.tipping)
    if chart is not None:
        st.caption(
            "Each bar runs from the input's value in this run (1x) to the factor at which another strategy wins; "
            "a faint bar reaches the end of the range searched without a flip."
        )
        st.altair_chart(chart)
    zero = [t.label for t in d.tipping if not t.current > 0]
    if zero:
        st.caption(md_escape(f"Not drawn (0 in this run, so no factor): {', '.join(zero)}; the table gives values."))
    st.dataframe(pd.DataFrame(tipping_rows(d.tipping)), hide_index=True)
    for t in d.tipping:
        st.markdown("- " + md_escape(t.sentence))


def _finetune_table(rows, *, more: bool = False) -> pd.DataFrame:
    """Fine-tuning against each alternative; payback and break-even as the decision rounded them (once, for every
    view), so this table and the reasons read the same numbers."""
    table = pd.DataFrame(
        [
            {
                "fine-tune": v.strategy,
                "against": v.against,
                "outcome": v.outcome.replace("_", " "),
                "saving per request $": v.saving_per_request_usd,
                "extra setup $": v.extra_setup_usd,
                "payback (requests)": v.payback_requests,
                "break-even (requests/month)": v.break_even_monthly_volume,
            }
            for v in rows
        ]
    )
    if more:
        table["more cases needed"] = [v.more_cases_needed for v in rows]
    return table


def page_leaderboard(view) -> None:
    from reports import charts

    st.header("Leaderboard")
    record = view.record
    rows = []
    for name, s in record.strategies.items():
        row = {"strategy": name, "answers": s.n_done, "errors": s.n_errors}
        for metric in view.metrics:
            m = s.metrics.get(metric)
            row[metric] = (
                None
                if not m or m.mean is None
                else (f"{m.mean:.3f} [{m.ci_low:.3f}, {m.ci_high:.3f}]" if m.ci_low is not None else f"{m.mean:.3f}")
            )
        rows.append(row)
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    st.altair_chart(charts.leaderboard(record, view.primary))
    scorer_details(record)
    if record.comparisons:
        st.subheader(f"Paired on the same cases: the best against each other strategy ({view.primary})")
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "best": c.a,
                        "other": c.b,
                        "difference": c.diff,
                        "CI low": c.ci_low,
                        "CI high": c.ci_high,
                        "better on": c.wins,
                        "worse on": c.losses,
                        "test": c.test,
                        "p": c.p_value,
                        "p (Holm)": c.p_holm,
                        "settled": c.settled,
                        "cases to settle": c.cases_needed,
                    }
                    for c in record.comparisons
                ]
            ),
            hide_index=True,
        )


def scorer_details(record) -> None:
    """Structured fields' micro precision / recall / F1 with F1 per key, and each model judge's trust."""
    from reports.data import field_rows, judge_rows

    fields, judges = field_rows(record), judge_rows(record)
    if fields:
        st.subheader("Structured fields: (key, value) pairs over the test set")
        st.dataframe(pd.DataFrame(fields), hide_index=True)
    if judges:
        st.subheader("How far the judge can be trusted")
        st.caption(
            "Agreement with the human grades the cases carry (Cohen's kappa or Spearman's rho); for a pairwise "
            "judge, how often it preferred the answer it read first (50% is unbiased)."
        )
        st.dataframe(pd.DataFrame(judges), hide_index=True)


def page_cost(view) -> None:
    from reports import charts
    from reports.data import recurring_rows, setup_item_rows

    st.header("Cost")
    record = view.record
    policy = record.suite.decision or DecisionSpec()
    low = policy.volumes[0]
    st.caption("What if: change the figures; the decision is recomputed with the functions the run used.")
    c1, c2, c3 = st.columns(3)
    volume = c1.number_input("requests a month", min_value=1, value=int(low), step=1000, key="volume")
    horizon = c2.number_input(
        "horizon (months)", min_value=1, max_value=120, value=policy.horizon_months, key="horizon"
    )
    price_scale = c3.number_input("token prices x", min_value=0.0, value=1.0, step=0.1, key="price_scale")
    c4, c5 = st.columns(2)
    rate = c4.number_input(
        "local device $/hour (0: as measured)", min_value=0.0, value=0.0, step=0.1, key="usd_per_hour"
    )
    training = c5.number_input("training cost $ (blank: as measured)", min_value=0.0, value=None, key="training_usd")
    change = WhatIf(
        monthly_requests=int(volume),
        horizon_months=int(horizon),
        price_scale=price_scale if price_scale != 1.0 else None,
        usd_per_hour=rate or None,
        training_usd=training,
    )
    decision, options = what_if(record, change)
    st.markdown("**" + md_escape(decision.verdict) + "**")
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "strategy": r.strategy,
                    "quality": r.quality,
                    "$ per request": r.per_request_usd,
                    "setup $": r.setup_usd,
                    "$ a month": r.monthly_usd,
                    "p95 s": r.p95_s,
                    "meets guards": ranking_cells(r)[-1],
                }
                for r in decision.by_volume[0].ranking
            ]
        ),
        hide_index=True,
    )
    if decision.finetune:
        st.dataframe(_finetune_table(decision.finetune), hide_index=True, key="breakeven")
    st.altair_chart(charts.monthly_cost(options, decision, horizon=int(horizon), dedicated=policy.dedicated_hosting))
    if policy.retrain_every_months is not None or policy.reindex_every_months is not None:
        st.subheader("Recurring costs")
        recurring = recurring_rows(options, int(horizon))
        if recurring:
            st.caption(
                f"Retraining and re-indexing as often as the suite says: what each repeat adds to a month over "
                f"{int(horizon)} months (in $ a month above; the first time is setup, spread over the horizon)."
            )
            st.dataframe(pd.DataFrame(recurring), hide_index=True)
        else:
            st.caption("No strategy has training or indexing to repeat.")
    st.subheader("What each strategy's costs are made of")
    items = setup_item_rows(record)
    if items:
        st.caption("One-off setup, item by item, as the run measured it.")
        st.dataframe(pd.DataFrame(items), hide_index=True)
    for name, s in record.strategies.items():
        if s.cost:
            with st.expander(name):
                st.json(s.cost.model_dump(mode="json"), expanded=False)


def page_quality_latency(view) -> None:
    from reports import charts

    st.header("Quality against cost, latency, tokens")
    _, options = what_if(view.record)
    st.altair_chart(charts.pareto(options, view.primary))
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "strategy": n,
                    "p50 s": s.latency.p50_s,
                    "p95 s": s.latency.p95_s,
                    "p99 s": s.latency.p99_s,
                    "TTFT p50 s": s.latency.ttft_p50_s,
                    "output tok/s": s.throughput_output_tok_s,
                    "measured": s.latency.how,
                }
                for n, s in view.record.strategies.items()
            ]
        ),
        hide_index=True,
    )
    st.altair_chart(charts.latency_cdf(view.cases))
    st.altair_chart(charts.tokens(view.record))


def page_training(view) -> None:
    from reports import charts

    st.header("Training")
    from harness.verdict.explain import training_summary

    tuned = {n: s.setup.given for n, s in view.record.strategies.items() if isinstance(s.setup.given, FineTuneGiven)}
    if not tuned:
        st.info("No strategy in this run was fine-tuned.")
        return
    for name, given in tuned.items():
        st.subheader(name)
        st.write(md_escape(training_summary(given)))
        logs = view.training.get(name)
        if logs and logs.curve:
            st.altair_chart(charts.loss_curve(logs.curve))
        if logs and logs.epochs:
            st.altair_chart(charts.dev_scores(logs.epochs, given.chosen.step))


def page_cases(view) -> None:
    from reports.data import disagreements, input_text

    st.header("Cases")
    only = st.radio(
        "show",
        ["disagree", "failed", "all"],
        horizontal=True,
        key="case_filter",
        format_func={
            "disagree": "where strategies disagree or fail",
            "failed": "where any strategy fails",
            "all": "all",
        }.get,
    )
    table = disagreements(view, only=only)
    pages = max(1, -(-len(table) // PAGE_SIZE))
    page = st.number_input(f"page (of {pages}, {len(table)} cases)", min_value=1, max_value=pages, value=1, key="page")
    shown = table.iloc[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    st.dataframe(shown, hide_index=True)
    if shown.empty:
        return
    case_id = st.selectbox("case", list(shown["case_id"]), key="case")
    lines = view.case_detail(case_id)
    if not lines:
        return
    st.markdown("**input**")
    text(input_text(lines[0].input))
    st.markdown("**target**")
    text(lines[0].target)
    columns = st.columns(len(lines))
    for column, line in zip(columns, sorted(lines, key=lambda x: (x.strategy, x.repeat)), strict=True):
        with column:
            st.markdown(f"**{md_escape(line.strategy)}**" + (f" (repeat {line.repeat})" if line.repeat else ""))
            if line.error:
                st.error("error: " + md_escape(line.error))
            text(line.output)
            st.caption(", ".join(f"{k} {v.value}" for k, v in line.scores.items()))
            retrieval = line.meta.retrieval
            if retrieval:
                with st.expander(f"retrieved ({len(retrieval.texts)})"):
                    for chunk_id, passage in zip(retrieval.chunk_ids, retrieval.texts, strict=False):
                        st.caption(md_escape(chunk_id))
                        text(passage)
            with st.expander("prompt"):
                text(line.prompt)


def page_manifest(view) -> None:
    st.header("Manifest")
    r = view.record
    st.write(
        f"harness {r.harness_version}, run schema {r.schema_version}, status {r.status}; started {r.started_at}, "
        f"finished {r.finished_at}; suite {r.suite_path} (sha256 {r.suite_sha256[:16]}...)"
    )
    st.json(r.manifest.model_dump(mode="json") if r.manifest else {}, expanded=False)
    st.subheader("Prices")
    st.json(r.prices.model_dump(mode="json") if r.prices else {}, expanded=False)
    st.subheader("Counts and options")
    st.json(r.options.model_dump(mode="json"), expanded=False)


def main() -> None:
    st.set_page_config(page_title="harness report", layout="wide")
    run_dir = run_dir_arg()
    if run_dir is None:
        st.error("No run folder given. Run: harness report RUN_DIR")
        st.stop()
    try:
        view = _load(str(run_dir), _stamp(run_dir))
    except HarnessError as exc:
        st.error(str(exc))
        st.stop()
    st.sidebar.title(view.record.suite_name)
    st.sidebar.caption(f"{run_dir} · {view.record.status}")
    for warning in view.warnings:
        st.warning(md_escape(warning))
    page = st.sidebar.radio("page", PAGES, key="page_name")
    {
        "Verdict": page_verdict,
        "Leaderboard": page_leaderboard,
        "Cost": page_cost,
        "Quality, latency, tokens": page_quality_latency,
        "Training": page_training,
        "Cases": page_cases,
        "Manifest": page_manifest,
    }[page](view)


if __name__ == "__main__":  # streamlit runs this file as __main__; importing it (PAGES) runs nothing
    main()
