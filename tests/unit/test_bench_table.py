"""README's benchmark table is made from bench/results/*.json: it matches them, and a new result changes it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "bench"))
import table


def test_readme_table_matches_the_results():
    done = subprocess.run([sys.executable, "bench/table.py", "--check"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_new_result_shows_in_the_table_with_its_date(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(REPO / "bench" / "results", results, ignore=shutil.ignore_patterns("smoke", ".*"))
    data = json.loads((results / "overhead.json").read_text())
    data["runs"][0]["wall_s"] = 123.4
    data["measured_at"] = "2030-01-02T03:04:05+00:00"
    (results / "overhead.json").write_text(json.dumps(data))
    row = next(line for line in table.table(results).splitlines() if "bench/overhead.py" in line)
    assert "123 s" in row and "2030-01-02" in row
    assert table.table(results) != table.table()
