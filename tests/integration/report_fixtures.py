"""A run folder for the decision report's tests: zero-shot and few-shot on the scripted (fake) backend, priced
like an API model, and a fine-tune of a tiny random Llama on the CPU (so the Training page and the fine-tune
break-even exist). One scripted answer holds markup and a table pipe, which every view must show as text."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

from tests.conftest import base_suite, write_suite

HOSTILE = "<script>alert(1)</script> | alpha"  # the fake backend's answer to HOSTILE_INPUT
HOSTILE_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
HOSTILE_CASE = "test-4"  # "test request number 4 about beta"
MONTHLY_REQUESTS = 50_000


def report_suite(tiny_model: Path) -> dict:
    suite = base_suite()
    fake = suite["backends"][0]
    fake["model"] = "toy-model"
    fake["config"]["rules"].insert(0, {"pattern": "test request number 4 ", "answer": HOSTILE})
    suite["backends"].append(
        {
            "name": "tiny",
            "kind": "hf",
            "model": str(tiny_model),
            "generation": {"max_new_tokens": 4},
            "config": {"batch_size": 8},
        }
    )
    suite["strategies"] = [
        {"name": "zero", "kind": "zero_shot", "backend": "fake"},
        {"name": "few", "kind": "few_shot", "backend": "fake", "config": {"k": 3, "selection": "balanced"}},
        {
            "name": "ft",
            "kind": "finetune",
            "backend": "tiny",
            "config": {
                "tuner": {
                    "kind": "local",
                    "config": {"epochs": 2, "batch_size": 4, "rank": 4, "alpha": 8, "learning_rate": 5e-3},
                }
            },
        },
    ]
    suite["economics"] = {
        "usd_per_hour": {"cpu": 0.36},
        # dear tokens, so that the fine-tune (CPU time only) is cheaper per request and has a break-even volume
        "prices": {"toy-model": {"input_per_1m_usd": 10.0, "output_per_1m_usd": 40.0}},
    }
    suite["decision"] = {"monthly_requests": MONTHLY_REQUESTS, "horizon_months": 12}
    return suite


def build_run(folder: Path, tiny_model: Path, home: Path) -> Path:
    """Writes the suite under folder/suite, runs `compare` into folder/run with HARNESS_HOME=home; returns the run."""
    from harness.run.compare import CompareOptions, compare

    path = write_suite(folder / "suite", report_suite(tiny_model))
    saved = {k: os.environ.get(k) for k in ("HARNESS_HOME", "HF_HUB_OFFLINE")}
    os.environ.update(HARNESS_HOME=str(home), HF_HUB_OFFLINE="1")
    try:
        record, _ = compare(path, CompareOptions(out=folder / "run"))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert record.status == "complete", record.status
    return folder / "run"


def with_schema_version(run_dir: Path, target: Path, version: int) -> Path:
    """A copy of the run folder whose run.json claims another schema version."""
    shutil.copytree(run_dir, target)
    data = json.loads((target / "run.json").read_text(encoding="utf-8"))
    data["schema_version"] = version
    (target / "run.json").write_text(json.dumps(data), encoding="utf-8")
    return target


def cli_env(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "HARNESS_HOME": str(home),
        "HF_HUB_OFFLINE": "1",
        "CI": "1",
        "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
