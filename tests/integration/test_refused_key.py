"""A refused key while other requests are in flight (their 401 bodies still being read): the run stops with one
clear error, exit 2, and never a traceback, at any verbosity. Deterministic: the path runs 20 times with the
machine loaded (two busy processes) and the figures go to the reliability summary."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from tests.conftest import harness_cli, report_check, write_jsonl
from tests.fake_openai import FakeOpenAI, Script

pytestmark = pytest.mark.slow

KEY = "sk-refused-0123456789abcdefghijklmnopqrstuv"
TRIES = 20


def suite(folder, url):
    write_jsonl(folder / "test.jsonl", [{"id": f"c{i}", "q": f"question {i}", "a": "x"} for i in range(60)])
    data = {
        "name": "refused",
        "task": {"instructions": "Answer.", "input_field": "q", "target_field": "a"},
        "data": {"test": "test.jsonl"},
        "backends": [
            {
                "name": "api",
                "kind": "openai",
                "model": "gpt-4o-mini",
                "config": {"base_url": url, "api_key_env": "REFUSED_KEY", "concurrency": 16},
            }
        ],
        "strategies": [{"name": "zero", "kind": "zero_shot"}],
        "scorers": [{"kind": "exact_match"}],
    }
    (folder / "suite.yaml").write_text(yaml.safe_dump(data))
    return folder / "suite.yaml"


def test_a_refused_key_with_requests_in_flight_never_shows_a_traceback(tmp_path):
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    seen = {"tries": 0, "exit_2": 0, "tracebacks": 0, "key_shown": 0, "named_the_key_variable": 0}
    try:
        script = Script(reject_keys={KEY}, refuse_body_delay_s=0.3)
        with FakeOpenAI(script) as url:
            path = suite(tmp_path / "s", url)
            for i in range(TRIES):
                flags = ["-v"] if i % 2 else []
                done = harness_cli(
                    "compare",
                    str(path),
                    "--out",
                    str(tmp_path / f"run{i}"),
                    *flags,
                    home=tmp_path / "home",
                    env={"REFUSED_KEY": KEY},
                    timeout=120,
                )
                output = done.stdout + done.stderr
                seen["tries"] += 1
                seen["exit_2"] += done.returncode == 2
                seen["tracebacks"] += "Traceback" in output or "Task exception" in output
                seen["key_shown"] += KEY in output or KEY[-12:] in output
                seen["named_the_key_variable"] += "REFUSED_KEY" in output
                assert done.returncode == 2 and "Traceback" not in output and KEY[-12:] not in output, output[-3000:]
    finally:
        for proc in busy:
            proc.kill()
    report_check("refused key with requests in flight", **seen)
    assert seen == {"tries": TRIES, "exit_2": TRIES, "tracebacks": 0, "key_shown": 0, "named_the_key_variable": TRIES}
