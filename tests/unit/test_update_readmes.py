"""suites/update_readmes.py: the results block of a suite's README is written from a run folder (here a run on the
fake backend), the prose around it is kept, a rerun changes nothing, and --check tells a stale README from a fresh
one."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from harness.run.compare import CompareOptions, compare
from harness.run.folder import read_run
from tests.conftest import REPO, base_suite, write_suite

SCRIPT = REPO / "suites" / "update_readmes.py"
BEFORE = "# toy\n\nWhat the suite is, written by hand.\n\n## Results\n\n"
AFTER = "\n\nWhat it says, written by hand.\n"
HAND_WRITTEN = "<!-- results:start -->\n| zero | 0.123 |\n<!-- results:end -->"


def _script():
    spec = importlib.util.spec_from_file_location("update_readmes", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def update_readmes():
    return _script()


@pytest.fixture
def suite_and_run(tmp_path) -> tuple[Path, Path]:
    """A suite folder with a hand-written README between markers, and a full run of it on the fake backend."""
    path = write_suite(tmp_path / "toy", base_suite())
    record, _ = compare(path, CompareOptions(out=tmp_path / "run"))
    assert record.status == "complete"
    (path.parent / "README.md").write_text(BEFORE + HAND_WRITTEN + AFTER, encoding="utf-8")
    return path.parent, tmp_path / "run"


def test_the_block_shows_the_runs_verdict_and_numbers_and_the_prose_is_kept(update_readmes, suite_and_run, capsys):
    folder, run = suite_and_run
    readme = folder / "README.md"
    assert update_readmes.main([str(folder), "--run-dir", str(run)]) == 0
    text = readme.read_text(encoding="utf-8")
    record = read_run(run)

    assert text.startswith(BEFORE) and text.endswith(AFTER)  # the prose around the markers is untouched
    block = text[len(BEFORE) : -len(AFTER)]
    assert block.startswith("<!-- results:start -->") and block.endswith("<!-- results:end -->")
    assert "0.123" not in block  # the hand-written numbers are gone
    assert f"**{record.decision.verdict}**" in block
    for name, summary in record.strategies.items():
        m = summary.metrics["label_accuracy"]
        row = next(line for line in block.splitlines() if line.startswith(f"| {name} |"))
        assert f"{m.mean:.3f} [{m.ci_low:.3f}, {m.ci_high:.3f}]" in row
        assert f"{summary.cost.per_request_usd * 1000:.4g}" in row  # $ per 1,000 requests
    assert "python suites/update_readmes.py toy" in block  # the command that regenerates it
    assert f"seed {record.manifest.seed}" in block and f"harness {record.harness_version}" in block

    # a second run gives the same README, byte for byte
    assert update_readmes.main([str(folder), "--run-dir", str(run)]) == 0
    assert readme.read_text(encoding="utf-8") == text
    assert "up to date" in capsys.readouterr().out


def test_check_fails_on_a_stale_readme_and_passes_on_a_fresh_one(update_readmes, suite_and_run, capsys):
    folder, run = suite_and_run
    readme = folder / "README.md"
    assert update_readmes.main([str(folder), "--run-dir", str(run), "--check"]) == 1  # still the hand-written block
    out = capsys.readouterr().out
    assert "-| zero | 0.123 |" in out and "out of date" in out  # a diff, and what to run
    assert readme.read_text(encoding="utf-8") == BEFORE + HAND_WRITTEN + AFTER  # --check writes nothing

    assert update_readmes.main([str(folder), "--run-dir", str(run)]) == 0
    assert update_readmes.main([str(folder), "--run-dir", str(run), "--check"]) == 0

    fresh = readme.read_text(encoding="utf-8")
    readme.write_text(fresh.replace("| zero | ", "| zero | 0.999 ", 1), encoding="utf-8")  # a number edited by hand
    assert update_readmes.main([str(folder), "--run-dir", str(run), "--check"]) == 1


def test_a_rerun_that_differs_only_in_date_and_wall_time_keeps_the_readme(update_readmes, suite_and_run):
    # a rerun answered from the caches has the same numbers but its own date and wall time: the README keeps the
    # facts of the run that made the answers, and --check passes
    folder, run = suite_and_run
    readme = folder / "README.md"
    update_readmes.main([str(folder), "--run-dir", str(run)])
    lines = readme.read_text(encoding="utf-8").split("\n")
    i = next(i for i, line in enumerate(lines) if line.startswith("- Run: "))
    lines[i] = "- Run: 2020-01-01, wall time 11 min 3 s; 300 model calls, 0 answers from the response cache"
    older = "\n".join(lines)
    readme.write_text(older, encoding="utf-8")
    assert update_readmes.main([str(folder), "--run-dir", str(run), "--check"]) == 0
    assert update_readmes.main([str(folder), "--run-dir", str(run)]) == 0
    assert readme.read_text(encoding="utf-8") == older


def test_missing_suite_run_folder_or_markers_are_refused_without_a_traceback(
    update_readmes, suite_and_run, tmp_path, capsys
):
    folder, run = suite_and_run
    assert update_readmes.main(["no_such_suite", "--run-dir", str(run)]) == 2
    assert "no suite 'no_such_suite'" in capsys.readouterr().err
    assert update_readmes.main([str(folder), "--run-dir", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "run folder" in err and "missing" in err and "not found" in err
    (folder / "README.md").write_text("# toy\n\nNo markers.\n", encoding="utf-8")
    assert update_readmes.main([str(folder), "--run-dir", str(run)]) == 2
    assert "results:start" in capsys.readouterr().err
    assert (folder / "README.md").read_text(encoding="utf-8") == "# toy\n\nNo markers.\n"

    # as a command: a message and exit 2, no traceback
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "no_such_suite", "--run-dir", str(run)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "no suite 'no_such_suite'" in done.stderr
