"""The decision report on a real run folder (fake-backend prompting + a tiny CPU fine-tune with a learning curve,
labelled data priced): every page of the Streamlit app through AppTest, the what-if recomputation against
harness.verdict.what_if, a run folder of another schema version, the static HTML / Markdown export, the decision's
optional sections (an extrapolated learning curve, tipping points that flip, recurring costs) from a run.json filled
by hand, and one end-to-end pass in headless Chromium (the app served by `harness report`, then the static HTML
opened offline)."""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.costs.money import usd
from harness.records.run import SCHEMA_VERSION
from harness.run.folder import read_run
from harness.verdict.what_if import WhatIf, what_if
from tests.conftest import REPO, harness_cli, run_json
from tests.integration.report_fixtures import (
    CHROMIUM,
    CHROMIUM_ARGS,
    CURVE_PARAMS,
    CURVE_SENTENCE,
    HOSTILE,
    HOSTILE_CASE,
    HOSTILE_ESCAPED,
    LEARNING_CURVE,
    MONTHLY_REQUESTS,
    RETRAIN_EVERY_MONTHS,
    TIPPING,
    USD_PER_EXAMPLE,
    build_run,
    cli_env,
    free_port,
    with_decision_extras,
    with_schema_version,
)

pytestmark = pytest.mark.slow

APP = REPO / "reports" / "app.py"
ARTIFACTS = REPO / "test-artifacts"
# The page names, read from the app's source: importing reports.app would run the app outside Streamlit.
PAGES = next(
    ast.literal_eval(node.value)
    for node in ast.parse(APP.read_text(encoding="utf-8")).body
    if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "PAGES" for t in node.targets)
)
PAYBACK, BREAK_EVEN = "payback (requests)", "break-even (requests/month)"


# ---- fixtures ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def report_run(tiny_model, tmp_path_factory) -> SimpleNamespace:
    """The run folder, built once: zero and few on the fake backend (priced), ft fine-tuned for 2 epochs on the CPU."""
    folder = tmp_path_factory.mktemp("report")
    home = folder / "home"
    run = build_run(folder, tiny_model, home)
    data = run_json(run)
    assert data["decision"]["finetune"], "the fixture run must have a fine-tune break-even"
    assert (run / "training" / "ft" / "curve.jsonl").exists()
    (curve,) = data["decision"]["learning_curves"]
    assert [p["fraction"] for p in curve["points"]] == LEARNING_CURVE and curve["more_data"]["sentence"]
    return SimpleNamespace(run=run, home=home, data=data, verdict=data["decision"]["verdict"], folder=folder)


@pytest.fixture(scope="session")
def exports(report_run) -> SimpleNamespace:
    """`harness report RUN --html F --md G`, run once."""
    out = report_run.folder / "exports"
    out.mkdir(exist_ok=True)
    html_path, md_path = out / "report.html", out / "report.md"
    result = harness_cli(
        "report",
        str(report_run.run),
        "--html",
        str(html_path),
        "--md",
        str(md_path),
        home=report_run.home,
        env={"STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"},
        timeout=180,
    )
    return SimpleNamespace(result=result, html=html_path, md=md_path)


def app_test(run_dir: Path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("HARNESS_REPORT_RUN", str(run_dir))
    # AppTest runs the script in this process: pytest's own arguments must not be taken for a run folder
    monkeypatch.setattr(sys, "argv", [str(APP)])
    return AppTest.from_file(str(APP), default_timeout=120).run()


@pytest.fixture
def app(report_run, monkeypatch):
    at = app_test(report_run.run, monkeypatch)
    assert not at.exception, [e.value for e in at.exception]
    return at


def goto(at, page: str):
    at.sidebar.radio(key="page_name").set_value(page).run()
    assert not at.exception, f"{page}: {[e.value for e in at.exception]}"
    assert not at.error, f"{page}: {[e.value for e in at.error]}"
    return at


def frames(at) -> list:
    return [d.value for d in at.dataframe]


def breakeven_table(at):
    """The Cost page's fine-tune table (st.dataframe key "breakeven"; AppTest does not expose a dataframe's key)."""
    found = [df for df in frames(at) if BREAK_EVEN in df.columns]
    assert len(found) == 1, [list(df.columns) for df in frames(at)]
    return found[0]


def ranking_table(at):
    found = [df for df in frames(at) if "$ a month" in df.columns]
    assert len(found) == 1, [list(df.columns) for df in frames(at)]
    return found[0]


def chart_specs(at) -> list[str]:
    return [el.proto.spec for el in at.get("vega_lite_chart")]


def chart_titled(at, title: str) -> SimpleNamespace:
    """The one chart whose spec holds `title`: its spec, and its datasets as rows (Streamlit sends them as Arrow)."""
    import pyarrow as pa

    found = [el for el in at.get("vega_lite_chart") if title in el.proto.spec]
    assert len(found) == 1, [json.loads(s).get("title") for s in chart_specs(at)]
    datasets = [pa.ipc.open_stream(d.data.data).read_all().to_pylist() for d in found[0].proto.datasets]
    return SimpleNamespace(spec=json.loads(found[0].proto.spec), datasets=datasets)


def table_with(at, column: str):
    found = [df for df in frames(at) if column in df.columns]
    assert len(found) == 1, [list(df.columns) for df in frames(at)]
    return found[0]


def shown_markdown(at) -> list[str]:
    return [unescape_md(str(m.value)) for m in at.markdown]


def assert_more_data_section(at, curve: dict) -> SimpleNamespace:
    """The Verdict page's More data section for one learning curve: its chart, sentence and points table."""
    assert f"More data: {curve['strategy']}" in [h.value for h in at.subheader]
    chart = chart_titled(at, f"{curve['strategy']}: {curve['metric']} against training examples")
    assert curve["more_data"]["sentence"] in shown_markdown(at)
    table = table_with(at, "train fraction")
    assert list(table["examples"]) == [f"{p['n_examples']:,}" for p in curve["points"]]
    assert list(table["training cost"]) == [usd(p["training_usd"]) for p in curve["points"]]
    if curve["fit"]["status"] != "extrapolated":
        assert "measured points only" in chart.spec["title"]
        captions = [unescape_md(c.value) for c in at.caption]
        assert any(curve["fit"]["reason"] in c for c in captions), captions
    return chart


def assert_tipping_section(at, tipping: list[dict]) -> None:
    """The Verdict page's tipping section: hidden without tipping points; else each sentence as a bullet, one table
    row per input."""
    if not tipping:
        assert "Where the decision tips" not in [h.value for h in at.subheader]
        return
    assert "Where the decision tips" in [h.value for h in at.subheader]
    bullets = shown_markdown(at)
    for t in tipping:
        assert "- " + t["sentence"] in bullets, t["sentence"]
    table = table_with(at, "flips below")
    assert list(table["winner now"]) == [t["winner"] for t in tipping]
    if any(t["current"] > 0 for t in tipping):
        chart_titled(at, "Where the decision tips")


def same(cell, want) -> bool:
    """A table cell against the decision's number: None ("never") shows as an empty cell (NaN in the frame)."""
    import pandas as pd

    return bool(pd.isna(cell)) if want is None else cell == want


def unescape_md(value: str) -> str:
    """What a reader sees of Markdown that escapes its special characters with backslashes."""
    return re.sub(r"\\(.)", r"\1", value)


def markup_values(at) -> list[str]:
    """Everything the page renders as Markdown (where markup in data would be interpreted)."""
    kinds = ("markdown", "caption", "title", "header", "subheader", "success", "info", "warning", "error")
    return [str(el.value) for kind in kinds for el in getattr(at, kind)]


# ---- 1. every page through AppTest -------------------------------------------------------------------------------


def test_pages_are_the_issues_pages():
    assert PAGES == ["Verdict", "Leaderboard", "Cost", "Quality, latency, tokens", "Training", "Cases", "Manifest"]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_its_content(app, report_run, page):
    at = goto(app, page)
    data = report_run.data
    decision = data["decision"]
    strategies = list(data["strategies"])
    if page == "Verdict":
        shown = [unescape_md(el.value) for kind in ("success", "warning", "error") for el in getattr(at, kind)]
        assert report_run.verdict in shown, shown
        captions = " ".join(c.value for c in at.caption)
        assert decision["prices"]["date"] in captions and decision["prices"]["version"] in captions
        assert any(h.value == "Reasons" for h in at.subheader)
        table = next(df for df in frames(at) if "payback (requests)" in df.columns)
        assert list(table["against"]) == [r["against"] for r in decision["finetune"]]
        for curve in decision["learning_curves"]:
            assert_more_data_section(at, curve)
        assert_tipping_section(at, decision["tipping"])  # filled by `harness compare` (harness.verdict.tipping)
    elif page == "Leaderboard":
        assert at.get("vega_lite_chart"), "no leaderboard chart"
        board = next(df for df in frames(at) if "strategy" in df.columns)
        assert list(board["strategy"]) == strategies
        metric = data["primary_metric"]
        zero = data["strategies"]["zero"]["metrics"][metric]
        assert board.set_index("strategy").loc["zero", metric] == (
            f"{zero['mean']:.3f} [{zero['ci_low']:.3f}, {zero['ci_high']:.3f}]"
        )
        paired = next(df for df in frames(at) if "CI low" in df.columns)
        assert len(paired) == len(data["comparisons"]) > 0
    elif page == "Cost":
        specs = chart_specs(at)
        assert specs and any("break-even" in s for s in specs)
        assert set(ranking_table(at)["strategy"]) == set(strategies)
        # at the run's own volume and horizon, the figures are the run's own
        table = breakeven_table(at)
        for (_, row), ft in zip(table.iterrows(), decision["finetune"], strict=True):
            # rounded once by the decision: the table, the reasons and decision.md read the same whole number
            assert same(row[PAYBACK], ft["payback_requests"])
            if "pays back its extra setup" in ft["reason"]:  # the reason reads the very number the table shows
                assert f"after {ft['payback_requests']:,} request" in ft["reason"]
            assert same(row[BREAK_EVEN], ft["break_even_monthly_volume"])
        assert at.number_input(key="volume").value == MONTHLY_REQUESTS
        # guards: every ranking row says whether it meets them, as the decision ranked it
        ranked = {r["strategy"]: r for r in decision["by_volume"][0]["ranking"]}
        for _, row in ranking_table(at).iterrows():
            r = ranked[row["strategy"]]
            assert row["meets guards"] == ("yes" if r["meets_slo"] else "no: " + "; ".join(r["guards_missed"]))
        # setup, item by item: the labelled examples' preparation is a line of its own
        items = table_with(at, "setup item")
        want = [(n, i["what"], usd(i["usd"])) for n, s in data["strategies"].items() for i in s["cost"]["setup_items"]]
        assert list(zip(items["strategy"], items["setup item"], items["$"], strict=True)) == want
        prep = [w for n, w, _ in want if n == "ft" and w.startswith("data preparation")]
        assert len(prep) == 1 and "12 train" in prep[0], want
        assert "Recurring costs" not in [h.value for h in at.subheader]  # the suite repeats nothing
    elif page == "Quality, latency, tokens":
        specs = chart_specs(at)
        assert len(specs) == 3, "Pareto, latency CDF and tokens charts"
        assert (
            any("Pareto" in s for s in specs) and any("CDF" in s for s in specs) and any("tokens" in s for s in specs)
        )
        latency = next(df for df in frames(at) if "p95 s" in df.columns)
        assert list(latency["strategy"]) == strategies
    elif page == "Training":
        specs = chart_specs(at)
        assert any("Training loss" in s for s in specs) and any("Dev score per epoch" in s for s in specs)
        given = data["strategies"]["ft"]["setup"]["given"]
        summary = unescape_md(" ".join(str(m.value) for m in at.markdown))
        assert f"epoch {given['chosen']['epoch']:g}" in summary and f"{given['epochs_trained']} epochs" in summary
        assert f"cost {usd(given['setup_costs'][0]['usd'])}" in summary
    elif page == "Cases":
        assert at.dataframe and "case_id" in frames(at)[0].columns
        assert at.text, "the selected case's input, target and answers as text"
    elif page == "Manifest":
        assert at.json
        assert json.loads(at.json[0].value) == data["manifest"]


def test_cases_page_shows_model_output_as_text_never_as_markup(app, report_run):
    at = goto(app, "Cases")
    at.radio(key="case_filter").set_value("all").run()
    assert not at.exception
    table = frames(at)[0]
    assert table["case_id"].is_unique and len(table) == 9
    at.selectbox(key="case").set_value(HOSTILE_CASE).run()
    assert not at.exception
    texts = [t.value for t in at.text]
    assert texts.count(HOSTILE) == 2, texts  # zero's and few's answers, verbatim
    assert "test request number 4 about beta" in texts and "beta" in texts  # input and target
    leaked = [v for v in markup_values(at) if "alert" in v or "script" in v]
    assert not leaked, f"model output rendered as Markdown: {leaked}"
    # the filter "failed" keeps the case (every strategy scored 0 on it)
    at.radio(key="case_filter").set_value("failed").run()
    assert HOSTILE_CASE in list(frames(at)[0]["case_id"])


# ---- 2. the what-if recomputes with harness.verdict.what_if ----------------------------------------------------


def expected(run: Path, **change):
    decision, _ = what_if(read_run(run), WhatIf(**change))
    return decision


def assert_same_breakeven(table, decision):
    assert list(table["against"]) == [r.against for r in decision.finetune]
    for (_, row), ft in zip(table.iterrows(), decision.finetune, strict=True):
        assert same(row[PAYBACK], ft.payback_requests), (row, ft)
        assert same(row[BREAK_EVEN], ft.break_even_monthly_volume), (row, ft)


def test_what_if_controls_recompute_break_even_and_costs(app, report_run):
    at = goto(app, "Cost")
    before = breakeven_table(at).copy()
    monthly_before = ranking_table(at).set_index("strategy")["$ a month"].copy()

    # a dearer training run: the fine-tune's payback and break-even move, as harness.verdict.decide computes them
    at.number_input(key="training_usd").set_value(100.0).run()
    assert not at.exception
    after = breakeven_table(at)
    # ($100 against cents of CPU time and $0.90 of labelled examples: over 100 times the extra setup to pay back)
    assert (after[PAYBACK] > before[PAYBACK] * 50).all(), (before, after)
    assert (after[BREAK_EVEN] != before[BREAK_EVEN]).all()
    want = expected(report_run.run, monthly_requests=MONTHLY_REQUESTS, horizon_months=12, training_usd=100.0)
    assert_same_breakeven(after, want)
    # the training item replaced by $100; the other setup items (dev answers, data preparation) as measured
    first = want.finetune[0]
    setup = {n: s["cost"]["setup_items"] for n, s in report_run.data["strategies"].items()}
    others = sum(i["usd"] for i in setup["ft"] if i["what"] != "training")
    assert first.extra_setup_usd == pytest.approx(100.0 + others - sum(i["usd"] for i in setup[first.against]))
    assert after[PAYBACK].iloc[0] == pytest.approx(first.extra_setup_usd / first.saving_per_request_usd, rel=1e-3)

    # a longer horizon spreads the setup thinner: the break-even volume halves
    at.number_input(key="horizon").set_value(24).run()
    longer = breakeven_table(at)
    want = expected(report_run.run, monthly_requests=MONTHLY_REQUESTS, horizon_months=24, training_usd=100.0)
    assert_same_breakeven(longer, want)
    assert (longer[BREAK_EVEN] < after[BREAK_EVEN]).all()

    # another volume: the monthly costs and the verdict are recomputed at it
    at.number_input(key="volume").set_value(2_000_000).run()
    assert not at.exception
    want = expected(report_run.run, monthly_requests=2_000_000, horizon_months=24, training_usd=100.0)
    monthly = ranking_table(at).set_index("strategy")["$ a month"]
    for row in want.by_volume[0].ranking:
        assert monthly[row.strategy] == pytest.approx(row.monthly_usd)
    assert monthly["zero"] == pytest.approx(monthly_before["zero"] * 40)  # pay-per-token: 40x the requests
    assert_same_breakeven(breakeven_table(at), want)
    assert unescape_md(at.markdown[0].value) == "**" + want.verdict + "**"


def test_what_if_device_rate_changes_the_fine_tunes_cost_per_request(app, report_run):
    at = goto(app, "Cost")
    per_request = ranking_table(at).set_index("strategy")["$ per request"]
    at.number_input(key="usd_per_hour").set_value(3.6).run()  # 10x the run's 0.36 $/h
    assert not at.exception
    dearer = ranking_table(at).set_index("strategy")["$ per request"]
    assert dearer["ft"] == pytest.approx(per_request["ft"] * 10)
    assert dearer["zero"] == pytest.approx(per_request["zero"])  # token-priced: unchanged
    want = expected(report_run.run, monthly_requests=MONTHLY_REQUESTS, horizon_months=12, usd_per_hour=3.6)
    assert_same_breakeven(breakeven_table(at), want)


# ---- 3. a run folder of another schema version ------------------------------------------------------------------


def run_group(args: list[str], *, home: Path, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """The CLI in its own process group, all of it ended if it outlives the timeout (e.g. a server it wrongly starts)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(home),
        cwd=REPO,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"`harness {' '.join(args)}` did not exit within {timeout} s:\n{out}\n{err}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_another_schema_version_is_refused_with_a_clear_message(report_run, tmp_path, monkeypatch):
    old = with_schema_version(report_run.run, tmp_path / "old-run", 99)
    at = app_test(old, monkeypatch)
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error]
    assert len(errors) == 1, errors
    assert "version 99" in errors[0] and f"version {SCHEMA_VERSION}" in errors[0], errors[0]
    assert not at.get("vega_lite_chart") and not at.dataframe  # nothing of the run shown

    port = free_port()
    for args in (
        ["report", str(old), "--headless", "--port", str(port)],
        ["report", str(old), "--html", str(tmp_path / "r.html")],
    ):
        result = run_group(args, home=report_run.home)
        output = result.stdout + result.stderr
        assert result.returncode == 2, f"exit {result.returncode}\n{output}"
        assert "Traceback" not in output, output
        assert "version 99" in result.stderr and f"version {SCHEMA_VERSION}" in result.stderr, output
    assert not (tmp_path / "r.html").exists()


# ---- 4. static export -------------------------------------------------------------------------------------------


class Page(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.urls: list[str] = []
        self.text: list[str] = []
        self._verdict = False
        self.verdict = ""

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "xlink:href", "action", "srcset", "poster", "data") and value:
                self.urls.append(value)
        self._verdict = tag == "div" and "verdict" in (dict(attrs).get("class") or "")

    def handle_endtag(self, tag):
        if tag == "div":
            self._verdict = False

    def handle_data(self, data):
        self.text.append(data)
        if self._verdict:
            self.verdict += data


def test_static_export_is_self_contained_and_escaped(exports, report_run):
    assert exports.result.returncode == 0, exports.result.stdout + exports.result.stderr
    page = exports.html.read_text(encoding="utf-8")
    parsed = Page()
    parsed.feed(page)
    assert parsed.verdict == report_run.verdict
    assert not re.search(r"<\s*script", page, re.I), "a <script> tag in the static report"
    assert "script" not in parsed.tags
    remote = [u for u in parsed.urls if re.match(r"\s*(https?:)?//", u, re.I)]
    assert not remote, f"remote resources: {remote}"
    assert not re.search(r"url\(\s*['\"]?\s*(https?:)?//|@import", page, re.I)
    assert HOSTILE_ESCAPED in page
    assert HOSTILE.split(" |")[0] in "".join(parsed.text)  # shown as text, not markup
    assert page.count("<svg") >= 6  # leaderboard, monthly cost, Pareto, latency, tokens, learning curve (+ training)
    decision = report_run.data["decision"]
    more = section(page, "More data: ft")
    assert "<svg" in more and _e(decision["learning_curves"][0]["more_data"]["sentence"]) in more
    assert "<th>train fraction</th>" in more
    assert "data preparation (18 labelled examples: 12 train + 6 dev)" in section(page, "Cost")
    if decision["tipping"]:
        tips = section(page, "Where the decision tips")
        assert "<svg" in tips and "<th>flips below</th>" in tips
        assert all(f"<li>{_e(t['sentence'])}</li>" in tips for t in decision["tipping"])
    else:
        assert "Where the decision tips" not in page

    md = exports.md.read_text(encoding="utf-8")
    assert "| train fraction | examples |" in md and decision["learning_curves"][0]["more_data"]["sentence"] in md
    assert "data preparation (18 labelled examples: 12 train + 6 dev)" in md
    if decision["tipping"]:
        assert TIPPING_MD_HEADER in md and all(t["sentence"] in md for t in decision["tipping"])
    assert report_run.verdict in md
    assert "<script" not in md
    lines = md.splitlines()
    start = lines.index("## Leaderboard")
    header = lines[start + 2]
    assert header.startswith("| strategy | answers | errors | label_accuracy")
    rows = [line for line in lines[start + 4 :] if line.startswith("| ")]
    for name, s in report_run.data["strategies"].items():
        assert any(row.startswith(f"| {name} | {s['n_done']} | {s['n_errors']} |") for row in rows), rows
    assert all(row.count(" | ") == header.count(" | ") for row in rows[: len(report_run.data["strategies"])])


def _e(value: str) -> str:
    import html

    return html.escape(value, quote=True)


def section(page: str, title: str) -> str:
    """The static page from the heading that starts with `title` to the next h2."""
    start = page.index(f"<h2>{title}")
    end = page.find("<h2>", start + 4)
    return page[start : end if end >= 0 else len(page)]


TIPPING_MD_HEADER = "| input | current | winner now | flips below | flips above | new winner |"


# ---- 5. the decision's optional sections, from a run.json filled by hand -------------------------------------------


@pytest.fixture(scope="session")
def extras_run(report_run, tmp_path_factory) -> SimpleNamespace:
    """The run with an extrapolated learning curve, tipping points that flip (and one that does not, one at 0) and
    retraining every RETRAIN_EVERY_MONTHS months: sections the real run may not have."""
    run = with_decision_extras(report_run.run, tmp_path_factory.mktemp("extras") / "run")
    return SimpleNamespace(run=run, data=run_json(run))


def test_extrapolated_learning_curve_draws_the_fit_its_band_and_the_others(extras_run, monkeypatch):
    at = app_test(extras_run.run, monkeypatch)
    assert not at.exception, [e.value for e in at.exception]
    (curve,) = extras_run.data["decision"]["learning_curves"]
    chart = assert_more_data_section(at, curve)
    assert "fitted curve" in chart.spec["title"] and CURVE_SENTENCE in shown_markdown(at)
    marks = [m["type"] if isinstance(m := layer["mark"], dict) else m for layer in chart.spec["layer"]]
    assert "area" in marks and "line" in marks and "point" in marks, marks
    datasets = chart.datasets
    # the fitted curve: q(n) = a - b n^-c, from the smallest point to twice the largest
    line = next(rows for rows in datasets if rows and set(rows[0]) == {"examples", "label_accuracy"})
    assert line[0]["examples"] == pytest.approx(3) and line[-1]["examples"] == pytest.approx(24)
    a, b, c = CURVE_PARAMS["a"], CURVE_PARAMS["b"], CURVE_PARAMS["c"]
    assert all(r["label_accuracy"] == pytest.approx(a - b * r["examples"] ** -c) for r in line)
    # the band from the fit's predictions, in order of size
    band = next(rows for rows in datasets if rows and "band low" in rows[0])
    predictions = sorted(curve["fit"]["predictions"], key=lambda p: p["n_examples"])
    assert [(r["examples"], r["band low"], r["band high"]) for r in band] == [
        (p["n_examples"], pytest.approx(p["low"]), pytest.approx(p["high"])) for p in predictions
    ]
    # the other strategies' scores as labelled rules (zero and few score the same: one rule, both names)
    rules = next(rows for rows in datasets if rows and "strategy" in rows[0])
    others = {n: s["metrics"]["label_accuracy"]["mean"] for n, s in extras_run.data["strategies"].items() if n != "ft"}
    assert {r["strategy"] for r in rules} == {"zero, few"} and rules[0]["label_accuracy"] == others["zero"]


def test_tipping_section_draws_each_input_and_lists_each_sentence(extras_run, monkeypatch):
    at = app_test(extras_run.run, monkeypatch)
    assert not at.exception, [e.value for e in at.exception]
    assert_tipping_section(at, TIPPING)
    table = table_with(at, "flips below").set_index("input")
    volume, prices, value = (table.loc[t["label"]] for t in TIPPING)
    assert volume["current"] == "50,000"
    assert volume["flips below"] == "2,500 (x0.05)" and volume["flips above"] == "400,000 (x8)"
    assert volume["new winner"] == "below: few; above: ft"
    assert prices["flips below"].startswith("no flip within range") and prices["flips above"].startswith("no flip")
    assert prices["new winner"] == "-"
    assert value["flips above"] == "0.02" and value["current"] == "0"  # 0 now: the value itself, no factor
    chart = chart_titled(at, "Where the decision tips")
    bars = next(rows for rows in chart.datasets if rows and "factor" in rows[0])
    drawn = {(r["input"], r["side"]): r for r in bars}
    assert set(drawn) == {(label, side) for label in ("monthly volume", "token prices") for side in ("below", "above")}
    assert drawn["monthly volume", "below"]["factor"] == pytest.approx(0.05)
    assert drawn["monthly volume", "above"]["factor"] == pytest.approx(8)
    assert drawn["monthly volume", "above"]["note"] == "ft wins" and drawn["monthly volume", "above"]["flips"]
    for side, edge in (("below", 0.01), ("above", 100.0)):  # no flip: a faint bar out to the searched edge
        row = drawn["token prices", side]
        assert not row["flips"] and row["note"] == "no flip within range" and row["factor"] == pytest.approx(edge)
        assert row["opacity"] < drawn["monthly volume", side]["opacity"]
    assert any("the value of a right answer" in unescape_md(c.value) for c in at.caption)  # not drawn: at 0


def test_recurring_costs_are_the_what_ifs(extras_run, report_run, monkeypatch):
    at = goto(app_test(extras_run.run, monkeypatch), "Cost")
    assert "Recurring costs" in [h.value for h in at.subheader]
    _, options = what_if(read_run(extras_run.run))
    ft = next(o for o in options if o.name == "ft")
    (retrain,) = ft.cost.recurring
    assert retrain.what == "retraining" and retrain.every_months == RETRAIN_EVERY_MONTHS
    table = table_with(at, "recurring")
    assert list(table["strategy"]) == ["ft"] and list(table["recurring"]) == ["retraining"]
    assert table["$ each time"].iloc[0] == usd(retrain.usd)
    assert table["adds $ a month"].iloc[0] == usd(retrain.extra_monthly_usd(12))
    # the month's cost carries it: retraining every 3 months, of which one is setup spread over the 12
    monthly = ranking_table(at).set_index("strategy")["$ a month"]
    assert monthly["ft"] == pytest.approx(ft.cost.monthly_usd(MONTHLY_REQUESTS, 12))
    plain = what_if(read_run(report_run.run))[1]  # the same run, retraining never
    assert ft.cost.monthly_usd(MONTHLY_REQUESTS, 12) == pytest.approx(
        next(o for o in plain if o.name == "ft").cost.monthly_usd(MONTHLY_REQUESTS, 12)
        + retrain.usd * (1 / RETRAIN_EVERY_MONTHS - 1 / 12)
    )


def test_static_export_carries_the_optional_sections(extras_run):
    from reports.export import render_html, render_md

    page = render_html(extras_run.run)
    more = section(page, "More data: ft")
    assert more.count("<svg") == 1 and _e(CURVE_SENTENCE) in more and "<th>train fraction</th>" in more
    tips = section(page, "Where the decision tips")
    assert tips.count("<svg") == 1 and "<th>flips below</th>" in tips
    assert all(f"<li>{_e(t['sentence'])}</li>" in tips for t in TIPPING)
    assert "<td>2,500 (x0.05)</td>" in tips and "<td>0.02</td>" in tips
    assert "no flip within range" in tips.split("<svg", 1)[1].split("</svg>", 1)[0]  # marked on the chart
    cost = section(page, "Cost")
    assert "<h3>Recurring costs</h3>" in cost and "<td>retraining</td>" in cost

    md = render_md(extras_run.run)
    lines = md.splitlines()
    start = lines.index("## Where the decision tips")
    assert lines[start + 2] == TIPPING_MD_HEADER
    assert lines[start + 4].startswith("| monthly volume | 50,000 | zero | 2,500 (x0.05) | 400,000 (x8) |")
    assert all(f"- {t['sentence']}" in lines for t in TIPPING)
    assert "| train fraction | examples |" in md and CURVE_SENTENCE in md
    start = lines.index("## Recurring costs")
    assert lines[start + 2] == "| strategy | recurring | $ each time | every (months) | adds $ a month |"
    assert lines[start + 4].startswith("| ft | retraining |")
    assert "## Setup costs, item by item" in lines
    assert f"economics.data.usd_per_example ({USD_PER_EXAMPLE:g} $)" in md


# ---- 6. end to end in headless Chromium ---------------------------------------------------------------------------


def test_report_in_a_real_browser_and_static_html_offline(report_run, exports, tmp_path):
    from playwright.sync_api import sync_playwright

    assert exports.result.returncode == 0, exports.result.stderr
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "report", str(report_run.run), "--headless", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=cli_env(report_run.home),
        cwd=REPO,
        start_new_session=True,
    )  # its own group: the Streamlit child ends with it
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                deadline = time.monotonic() + 60
                body = ""
                while time.monotonic() < deadline:
                    assert server.poll() is None, "the report server exited:\n" + (tmp_path / "server.log").read_text()
                    try:
                        if not page.url.startswith("http"):
                            page.goto(f"http://127.0.0.1:{port}/", timeout=5000)
                        body = page.inner_text("body", timeout=5000)
                    except Exception:
                        page.wait_for_timeout(500)
                        continue
                    if report_run.verdict in body:
                        break
                    page.wait_for_timeout(500)
                assert report_run.verdict in body, f"verdict not shown within 60 s; page text:\n{body[:2000]}"
                assert page.locator('[data-testid="stException"]').count() == 0
                decision = report_run.data["decision"]
                sections = ["More data: ft"] + (["Where the decision tips"] if decision["tipping"] else [])
                for heading in sections:
                    page.get_by_text(heading, exact=True).wait_for(timeout=30_000)
                charts = 1 + any(t["current"] > 0 for t in decision["tipping"])  # learning curve (+ tipping)
                page.wait_for_function(
                    f'document.querySelectorAll(\'[data-testid="stVegaLiteChart"] canvas, '
                    f'[data-testid="stVegaLiteChart"] svg\').length >= {charts}',
                    timeout=30_000,
                )
                # Streamlit scrolls its main area inside the window: a window as tall as the page shows all of it
                height = page.evaluate(
                    "() => Math.max(document.body.scrollHeight, ...Array.from(document.querySelectorAll("
                    '\'[data-testid="stMain"], [data-testid="stAppViewContainer"], section.main\'), '
                    "e => e.scrollHeight))"
                )
                page.set_viewport_size({"width": 1400, "height": min(max(int(height) + 100, 1000), 16_000)})
                page.wait_for_timeout(1500)
                ARTIFACTS.mkdir(exist_ok=True)
                shot = ARTIFACTS / "report.png"
                shot.unlink(missing_ok=True)
                page.screenshot(path=str(shot), full_page=True)
                data = shot.read_bytes()
                assert len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n"
                page.close()

                # the static export, offline: anything not file:// is refused and recorded
                offline = browser.new_page()
                attempted: list[str] = []
                offline.on(
                    "request", lambda r: None if r.url.startswith(("file:", "data:")) else attempted.append(r.url)
                )

                def only_files(route):
                    if route.request.url.startswith("file://"):
                        route.continue_()
                    else:
                        attempted.append(route.request.url)
                        route.abort()

                offline.route("**/*", only_files)
                offline.goto(exports.html.resolve().as_uri())
                verdict = offline.locator("div.verdict")
                assert verdict.is_visible() and verdict.inner_text().strip() == report_run.verdict
                assert offline.locator("svg").count() > 0 and offline.locator("svg").first.is_visible()
                assert offline.locator("script").count() == 0
                offline.wait_for_timeout(300)
                assert attempted == [], f"the static report tried the network: {attempted}"
            finally:
                browser.close()
    finally:
        stop_group(server)
        log.close()


def stop_group(proc: subprocess.Popen) -> None:
    """Ends the process group started for `proc` (harness report and the Streamlit server it runs)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=15)
            time.sleep(1)  # the Streamlit child may outlive the CLI by a moment
        except subprocess.TimeoutExpired:
            continue


def test_stopping_harness_report_stops_its_streamlit_server(report_run, tmp_path):
    """A supervisor (systemd, a CI step, an IDE's stop button) ends `harness report` with SIGTERM to its pid: the
    Streamlit server it started must go with it, not linger on the port."""
    import socket

    port = free_port()
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "report", str(report_run.run), "--headless", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=cli_env(report_run.home),
        cwd=REPO,
        start_new_session=True,
    )

    def listening() -> bool:
        with socket.socket() as s:
            s.settimeout(1)
            return s.connect_ex(("127.0.0.1", port)) == 0

    try:
        deadline = time.monotonic() + 60
        while not listening():
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()
            time.sleep(0.3)
        server.terminate()  # SIGTERM to harness report only, as a supervisor sends it
        server.wait(timeout=15)
        deadline = time.monotonic() + 15
        while listening() and time.monotonic() < deadline:
            time.sleep(0.3)
        assert not listening(), f"the Streamlit server still serves port {port} after `harness report` was stopped"
    finally:
        stop_group(server)
        log.close()
