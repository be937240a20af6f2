"""run.json as typed records: the schema other tools read, a version-1 run folder that still opens, and a record
that reads back exactly as it was written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest

from harness.records.run import SCHEMA_VERSION, run_json_schema
from harness.records.setup import FewShotGiven, FineTuneGiven, RagGiven, ZeroShotGiven
from harness.run.compare import CompareOptions, compare
from harness.run.folder import read_run
from tests.conftest import REPO, harness_cli, run_json

V1 = REPO / "tests" / "fixtures" / "run_v1"


@pytest.fixture
def v1_run(tmp_path) -> Path:
    return Path(shutil.copytree(V1, tmp_path / "v1-run"))


def test_a_version_1_folder_reads_as_version_2_with_every_setup_typed_and_nothing_lost(v1_run):
    old = json.loads((v1_run / "run.json").read_text())
    assert old["schema_version"] == 1
    record = read_run(v1_run)
    assert record.schema_version == SCHEMA_VERSION
    given = {name: s.setup.given for name, s in record.strategies.items()}
    assert isinstance(given["zero"], ZeroShotGiven) and isinstance(given["few"], FewShotGiven)
    assert isinstance(given["rag"], RagGiven) and isinstance(given["ft"], FineTuneGiven)
    # what version 1 recorded, under its version 2 names
    v1 = {name: s["setup"]["given"] for name, s in old["strategies"].items()}
    assert given["few"].exemplar_ids == v1["few"]["exemplar_ids"] and given["few"].k == 3
    assert given["rag"].top_k_selection.chosen == v1["rag"]["top_k_selection"]["chosen"]
    assert [c.top_k for c in given["rag"].top_k_selection.candidates] == [1, 2]
    (indexing,) = given["rag"].setup_costs
    assert (indexing.what, indexing.usd) == ("indexing", v1["rag"]["indexing_cost_usd"])
    (training,) = given["ft"].setup_costs
    assert (training.what, training.usd) == ("training", v1["ft"]["training_cost_usd"])
    assert given["ft"].preflight.n_examples == v1["ft"]["preflight"]["examples"] == 12
    assert given["ft"].training.wall_s == v1["ft"]["training"]["wall_s"]
    assert given["ft"].dev_scores == v1["ft"]["dev_scores"]
    # the summaries and the decision come through unchanged
    for name, s in record.strategies.items():
        assert s.metrics["label_accuracy"].mean == old["strategies"][name]["metrics"]["label_accuracy"]["mean"]
        assert s.cost.setup_usd == pytest.approx(old["strategies"][name]["cost"]["setup_usd"])
    assert record.decision.verdict == old["decision"]["verdict"]
    # a payback is a whole number of requests in version 2 (version 1 kept the fraction)
    for new, was in zip(record.decision.finetune, old["decision"]["finetune"], strict=True):
        assert new.payback_requests == max(1, -(-was["payback_requests"] // 1))


def test_harness_report_opens_a_version_1_folder(v1_run, tmp_path):
    md, page = tmp_path / "report.md", tmp_path / "report.html"
    result = harness_cli("report", str(v1_run), "--md", str(md), "--html", str(page), home=tmp_path / "home")
    assert result.returncode == 0, result.stderr
    verdict = json.loads((v1_run / "run.json").read_text())["decision"]["verdict"]
    assert verdict.split(":")[0] in md.read_text()
    html = page.read_text()
    assert "Training: ft" in html and "Leaderboard" in html


def test_run_json_is_described_by_the_exported_schema(toy_suite, tmp_path, v1_run):
    result = harness_cli("schema", "--run", home=tmp_path / "home")
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert schema["properties"]["schema_version"]["const"] == SCHEMA_VERSION
    compare(toy_suite, CompareOptions(out=tmp_path / "run"))
    jsonschema.validate(run_json(tmp_path / "run"), schema)
    jsonschema.validate(json.loads(read_run(v1_run).model_dump_json()), schema)
    broken = run_json(tmp_path / "run")
    broken["strategies"]["few"]["setup"]["given"]["k"] = "three"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)
    assert schema == run_json_schema()


def test_a_run_record_reads_back_exactly_as_written(toy_suite, tmp_path):
    record, _ = compare(toy_suite, CompareOptions(out=tmp_path / "run"))
    again = read_run(tmp_path / "run")
    assert again == record
    assert again.strategies["few"].setup.given == record.strategies["few"].setup.given


def test_an_unknown_key_in_run_json_is_refused_with_the_file_and_the_field(toy_suite, tmp_path):
    compare(toy_suite, CompareOptions(out=tmp_path / "run"))
    data = run_json(tmp_path / "run")
    data["strategies"]["zero"]["latency"]["p42_s"] = 1.0
    (tmp_path / "run" / "run.json").write_text(json.dumps(data))
    result = harness_cli("report", str(tmp_path / "run"), "--md", str(tmp_path / "r.md"), home=tmp_path / "home")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "run.json" in result.stderr and "strategies.zero.latency.p42_s" in result.stderr


def test_the_report_reads_cases_with_the_runs_reader_a_damaged_line_is_named_not_skipped(toy_suite, tmp_path):
    compare(toy_suite, CompareOptions(out=tmp_path / "run"))
    cases = tmp_path / "run" / "cases.jsonl"
    lines = cases.read_text().splitlines(keepends=True)
    lines[4] = lines[4][: len(lines[4]) // 2] + "\n"  # a line cut in the middle of the file
    cases.write_text("".join(lines))
    home = tmp_path / "home"
    report = harness_cli("report", str(tmp_path / "run"), "--md", str(tmp_path / "r.md"), home=home)
    assert report.returncode == 0 and "Traceback" not in report.stderr, report.stderr
    assert "1 unreadable line(s) of cases.jsonl left out (line 5)" in (tmp_path / "r.md").read_text()
    again = harness_cli("compare", str(toy_suite), "--out", str(tmp_path / "run"), home=home)
    assert again.returncode == 0 and "Traceback" not in again.stderr, again.stderr
    assert f"{cases}: 1 unreadable line(s) (5) moved to cases.rejected.jsonl" in again.stderr
    assert len(cases.read_text().splitlines()) == len(lines)  # the case was answered again


def test_a_recorded_fine_tune_still_improving_makes_the_verdict_provisional(v1_run):
    from harness.verdict.what_if import what_if

    record = read_run(v1_run)
    as_run, _ = what_if(record)
    assert not as_run.provisional and {v.outcome for v in as_run.finetune} == {"inconclusive"}
    record.strategies["ft"].setup.given.dev_still_rising_at_last_epoch = True  # what the run read off dev scores
    again, _ = what_if(record)
    assert again.provisional and {v.outcome for v in again.finetune} == {"under_trained"}
    training = record.strategies["ft"].setup.given.setup_costs[0].usd
    assert all(v.more_training_usd == training for v in again.finetune)
