"""The default suite on the real embedded model, through the CLI as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def harness(*args, home):
    env = {**os.environ, "HARNESS_HOME": str(home), "HF_HUB_OFFLINE": "1", "CI": "1"}
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=REPO, env=env, capture_output=True, text=True)


def test_quickstart_few_shot_beats_zero_shot_and_rerun_costs_no_model_call(embedded_model_dir, tmp_path):
    home = embedded_model_dir.parents[1]  # HARNESS_HOME that holds models/smollm2-135m-instruct
    out = tmp_path / "run"
    first = harness("compare", "suites/quickstart/suite.yaml", "--limit", "28", "--out", str(out), "--no-cache", home=home)
    assert first.returncode == 0, first.stderr[-2000:]
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "incomplete"  # --limit ran 28 of the 150 test cases
    assert run["strategies"]["few_shot"]["n_done"] == 28 and run["strategies"]["few_shot"]["n_planned"] == 150
    zero, few = (run["strategies"][s]["metrics"]["label_accuracy"] for s in ("zero_shot", "few_shot"))
    # A 135M model does not follow the label instructions zero-shot; a handful of exemplars teaches the format.
    assert few["mean"] > zero["mean"] + 0.15, (zero, few)
    assert few["n_invalid"] < zero["n_invalid"]
    assert run["options"]["counts"]["model_calls"] == 56
    second = harness("compare", "suites/quickstart/suite.yaml", "--limit", "28", "--out", str(out), home=home)
    assert second.returncode == 0
    assert json.loads((out / "run.json").read_text())["options"]["counts"]["model_calls"] == 0
