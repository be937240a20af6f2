"""The report on a large run: 10,000 cases x 3 strategies (fake backend), every page rendered by streamlit's AppTest.

Measures: reading the run folder (reports.data.load_run) against the plain baseline of pandas.read_json on the same
cases.jsonl, the first render of the report (cold: the folder is read), a rerender (cached: what a user waits for
on each click), each page's render time, and the static HTML export. Goal (issue 7): load <= 3 s cached.
Run: python bench/report_load.py [--cases 10000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import REPO, parse, save

sys.path.insert(0, str(REPO))
from overhead import make_suite


def timed(fn):
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=10_000)
    args = parse(parser, cases=200)
    import pandas as pd
    from streamlit.testing.v1 import AppTest

    from harness.run.compare import CompareOptions, compare
    from reports.app import PAGES
    from reports.data import load_run
    from reports.export import render_html

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["HARNESS_HOME"] = str(Path(tmp) / "home")
        suite = make_suite(Path(tmp) / "suite", args.cases)
        run_dir = Path(tmp) / "run"
        compare_s, _ = timed(lambda: compare(suite, CompareOptions(out=run_dir)))
        lines = sum(1 for _ in (run_dir / "cases.jsonl").open())
        baseline_s, _ = timed(lambda: pd.read_json(run_dir / "cases.jsonl", lines=True))
        load_s, _ = timed(lambda: load_run(run_dir))
        os.environ["HARNESS_REPORT_RUN"] = str(run_dir)
        at = AppTest.from_file(str(REPO / "reports" / "app.py"), default_timeout=300)
        first_s, _ = timed(at.run)
        assert not at.exception, at.exception
        again_s, _ = timed(at.run)
        pages = {}
        for page in PAGES:
            at.sidebar.radio(key="page_name").set_value(page)
            seconds, _ = timed(at.run)
            assert not at.exception, (page, at.exception)
            pages[page] = round(seconds, 3)
        html_s, html = timed(lambda: render_html(run_dir))
    result = {
        "what": f"report on a run of {args.cases} cases x 3 strategies ({lines} result lines), fake backend",
        "compare_s": round(compare_s, 2),
        "baseline_pandas_read_json_s": round(baseline_s, 3),
        "load_run_s": round(load_s, 3),
        "first_render_s": round(first_s, 3),
        "cached_rerender_s": round(again_s, 3),
        "page_render_s": pages,
        "html_export_s": round(html_s, 3),
        "html_export_kb": round(len(html.encode()) / 1024, 1),
        "goal": {"cached_load_s": 3.0},
    }
    save("report_load", result)


if __name__ == "__main__":
    main()
