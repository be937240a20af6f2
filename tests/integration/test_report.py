"""The decision report on a real run folder (fake-backend prompting + a tiny CPU fine-tune): every page of the
Streamlit app through AppTest, the what-if recomputation against harness.verdict.what_if, a run folder of another
schema version, the static HTML / Markdown export, and one end-to-end pass in headless Chromium (the app served by
`harness report`, then the static HTML opened offline)."""

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
    HOSTILE,
    HOSTILE_CASE,
    HOSTILE_ESCAPED,
    MONTHLY_REQUESTS,
    build_run,
    cli_env,
    free_port,
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
            assert row[PAYBACK] == ft["payback_requests"]
            if "pays back its extra setup" in ft["reason"]:  # the reason reads the very number the table shows
                assert f"after {ft['payback_requests']:,} request" in ft["reason"]
            assert row[BREAK_EVEN] == ft["break_even_monthly_volume"]
        assert at.number_input(key="volume").value == MONTHLY_REQUESTS
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
        assert row[PAYBACK] == ft.payback_requests
        assert row[BREAK_EVEN] == ft.break_even_monthly_volume


def test_what_if_controls_recompute_break_even_and_costs(app, report_run):
    at = goto(app, "Cost")
    before = breakeven_table(at).copy()
    monthly_before = ranking_table(at).set_index("strategy")["$ a month"].copy()

    # a dearer training run: the fine-tune's payback and break-even move, as harness.verdict.decide computes them
    at.number_input(key="training_usd").set_value(100.0).run()
    assert not at.exception
    after = breakeven_table(at)
    assert (after[PAYBACK] > before[PAYBACK] * 1000).all(), (before, after)
    assert (after[BREAK_EVEN] != before[BREAK_EVEN]).all()
    want = expected(report_run.run, monthly_requests=MONTHLY_REQUESTS, horizon_months=12, training_usd=100.0)
    assert_same_breakeven(after, want)
    assert after[PAYBACK].iloc[0] == pytest.approx(100.0 / want.finetune[0].saving_per_request_usd, rel=1e-3)

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
    assert page.count("<svg") >= 5  # leaderboard, monthly cost, Pareto, latency, tokens (+ training)

    md = exports.md.read_text(encoding="utf-8")
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


# ---- 5. end to end in headless Chromium ---------------------------------------------------------------------------


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
