"""A damaged line of cases.jsonl costs one case, not the run: it is moved to cases.rejected.jsonl with its line
number, only that case runs again, and the report reads the same folder and says what it left out."""

from __future__ import annotations

import json

from harness.run.compare import CompareOptions, compare
from tests.conftest import run_json, write_suite


def test_a_garbage_line_in_the_middle_is_set_aside_and_only_its_case_reruns(tmp_path, caplog):
    from reports.export import render_md

    path = write_suite(tmp_path / "s")
    out = tmp_path / "run"
    compare(path, CompareOptions(out=out))
    cases = out / "cases.jsonl"
    lines = cases.read_text().splitlines()
    lost = json.loads(lines[4])
    lines[4] = '{"strategy": "zero", "case_id": "test-4", "rep'  # torn in the middle of the file
    cases.write_text("\n".join(lines) + "\n")
    assert "1 unreadable line(s) of cases.jsonl left out (line 5)" in render_md(out)  # the report says so

    before = run_json(out)["options"]["counts"]["model_calls"]
    compare(path, CompareOptions(out=out, use_cache=False))
    assert "1 unreadable line(s) (5) moved to cases.rejected.jsonl" in caplog.text
    rejected = [json.loads(x) for x in (out / "cases.rejected.jsonl").read_text().splitlines()]
    assert rejected == [{"file": "cases.jsonl", "line": 5, "text": '{"strategy": "zero", "case_id": "test-4", "rep'}]
    rows = [json.loads(x) for x in cases.read_text().splitlines()]
    assert len(rows) == 18 and len({(r["strategy"], r["case_id"]) for r in rows}) == 18
    assert run_json(out)["options"]["counts"]["model_calls"] == 1  # only the lost case was answered again
    redone = next(r for r in rows if (r["strategy"], r["case_id"]) == (lost["strategy"], lost["case_id"]))
    assert redone["output"] == lost["output"] and before > 1
    assert "unreadable" not in render_md(out)


def test_a_damaged_spend_line_still_counts_against_the_budget(tmp_path, caplog):
    from harness.costs.budget import SpendLedger

    ledger = SpendLedger(tmp_path / "spend.jsonl")
    ledger.add("ft", "training", 2.0)
    ledger.add("ft", "dev answers", 0.5)
    with (tmp_path / "spend.jsonl").open("a") as fh:
        fh.write('{"at": "2026-12-03", "strategy": "ft", "what": "judge", "usd": 0.25, "x\n')  # cut after usd
        fh.write('{"at": "2026-12-03", "strat\n')  # nothing of its amount left
        fh.write("\x00\x00\x00")  # a torn last line
    assert ledger.total() == 2.0 + 0.5 + 0.25 + 2.0 + 2.0  # salvaged; the rest at the largest charge
    assert "3 damaged line(s)" in caplog.text


def test_the_report_on_a_run_still_being_written_says_so(tmp_path):
    from harness.run.folder import read_run, write_json_atomic
    from reports.export import render_md

    path = write_suite(tmp_path / "s")
    compare(path, CompareOptions(out=tmp_path / "run"))
    assert "still being written" not in render_md(tmp_path / "run")
    record = read_run(tmp_path / "run")
    record.status = "running"  # what run.json says while a compare is writing the folder
    write_json_atomic(tmp_path / "run" / "run.json", record.model_dump_json())
    assert "This run is still being written: the numbers are a snapshot" in render_md(tmp_path / "run")
