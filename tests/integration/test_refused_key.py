"""A refused key while other requests are in flight (their 401 bodies still being read): the run stops with one
clear error, exit 2, and never a traceback, at any verbosity. Deterministic: the path runs 12 times with the
machine loaded (a busy process on one of its two cores) and the figures go to the reliability summary."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import api_suite, harness_cli, report_check
from tests.fake_openai import FakeOpenAI, Script

pytestmark = pytest.mark.slow

KEY = "sk-refused-0123456789abcdefghijklmnopqrstuv"
TRIES = 12


def test_a_refused_key_with_requests_in_flight_never_shows_a_traceback(tmp_path):
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"])]  # one of the two cores kept busy
    seen = {"tries": 0, "exit_2": 0, "tracebacks": 0, "key_shown": 0, "named_the_key_variable": 0}
    try:
        script = Script(reject_keys={KEY}, refuse_body_delay_s=0.3)
        with FakeOpenAI(script) as url:
            path = api_suite(tmp_path / "s", url, key_env="REFUSED_KEY", n_test=48, concurrency=16)
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
