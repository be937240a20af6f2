"""Every benchmark still runs: each script under bench/ with `--smoke` (tiny sizes) exits 0 and writes its JSON to
bench/results/smoke/, so a benchmark broken by a change fails CI instead of being found months later. The
measured numbers (bench/results/*.json) are untouched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

SCRIPTS = sorted(p.stem for p in (REPO / "bench").glob("*.py") if not p.name.startswith("_") and p.stem != "table")
# the dry path on a machine without a GPU (in a smoke run its second model shape only, which runs every engine)
WRITES = {"finetune_gpu": ["finetune_gpu_llama1b_dry_run_cpu"]}


def test_every_benchmark_script_is_covered():
    assert len(SCRIPTS) >= 10, SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_benchmark_runs_in_smoke_mode(script, fresh_home):
    kept = {p: p.stat().st_mtime_ns for p in (REPO / "bench" / "results").glob("*.json")}
    names = WRITES.get(script, [script])
    written = [REPO / "bench" / "results" / "smoke" / f"{name}.json" for name in names]
    for path in written:
        path.unlink(missing_ok=True)
    began = time.time()
    done = subprocess.run(
        [sys.executable, f"bench/{script}.py", "--smoke"],
        cwd=REPO,
        env={**os.environ, "HARNESS_HOME": str(fresh_home), "HF_HUB_OFFLINE": "1", "CI": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    for path, name in zip(written, names, strict=True):
        result = json.loads(path.read_text())
        assert result["smoke"] is True and result["benchmark"] == name
        assert path.stat().st_mtime >= began - 1
    assert {p: p.stat().st_mtime_ns for p in (REPO / "bench" / "results").glob("*.json")} == kept
