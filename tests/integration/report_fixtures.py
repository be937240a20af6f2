"""A run folder for the decision report's tests: zero-shot and few-shot on the scripted (fake) backend, priced
like an API model, and a fine-tune of a tiny random Llama on the CPU (so the Training page and the fine-tune
break-even exist), also trained on a subset of its train split (a learning curve), with labelled examples priced
(a data preparation setup line). One scripted answer holds markup and a table pipe, which every view must show as
text."""

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
LEARNING_CURVE = [0.85, 1.0]  # of 12 train examples: 11 and 12 (the smallest subset must keep 10 to train)
USD_PER_EXAMPLE = 0.05


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
                },
                "learning_curve": LEARNING_CURVE,
            },
        },
    ]
    suite["economics"] = {
        "usd_per_hour": {"cpu": 0.36},
        # dear tokens, so that the fine-tune (CPU time only) is cheaper per request and has a break-even volume
        "prices": {"toy-model": {"input_per_1m_usd": 10.0, "output_per_1m_usd": 40.0}},
        "data": {"usd_per_example": USD_PER_EXAMPLE},  # a "data preparation" setup line for what uses train cases
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


# ---- a run folder with the decision's optional sections filled by hand ---------------------------------------------

# q(n) = a - b * n^(-c): the hand-made learning curve's fit, and the points it passes near
CURVE_PARAMS = {"a": 0.6, "b": 0.52, "c": 0.5}
CURVE_SENTENCE = "With 2x the training data (24 examples) ft is expected to reach label_accuracy 0.494 [0.394, 0.544]."
TIPPING = [
    {  # flips both ways
        "input": "monthly_requests",
        "label": "monthly volume",
        "current": 50_000.0,
        "volume": MONTHLY_REQUESTS,
        "winner": "zero",
        "runner_up": "ft",
        "low": 2_500.0,
        "low_winner": "few",
        "high": 400_000.0,
        "high_winner": "ft",
        "searched": [1.0, 1e9],
        "sentence": "At 50,000 requests a month, zero stays ahead unless monthly volume falls below 2,500 requests a "
        "month (few then wins) or monthly volume rises above 400,000 requests a month (ft then wins)",
    },
    {  # does not flip
        "input": "token_price_factor",
        "label": "token prices",
        "current": 1.0,
        "volume": MONTHLY_REQUESTS,
        "winner": "zero",
        "runner_up": "ft",
        "low": None,
        "high": None,
        "searched": [0.01, 100.0],
        "sentence": "At 50,000 requests a month, zero stays ahead with token prices anywhere from 0.01x today's to 100x "
        "today's (now 1x today's): it does not flip within that range",
    },
    {  # 0 in this run: no factor, the table gives the value
        "input": "correct_usd",
        "label": "the value of a right answer",
        "current": 0.0,
        "volume": MONTHLY_REQUESTS,
        "winner": "zero",
        "runner_up": "ft",
        "low": None,
        "high": 0.02,
        "high_winner": "few",
        "searched": [0.0, 1.0],
        "sentence": "At 50,000 requests a month, zero stays ahead unless the value of a right answer rises above "
        "$0.020 (few then wins); now $0",
    },
]
RETRAIN_EVERY_MONTHS = 3


def _q(n: float) -> float:
    a, b, c = CURVE_PARAMS["a"], CURVE_PARAMS["b"], CURVE_PARAMS["c"]
    return a - b * n ** (-c)


def with_decision_extras(run_dir: Path, target: Path) -> Path:
    """A copy of the run folder whose run.json has an extrapolated learning curve for ft (three points, the fit and
    its band), the tipping points above (one flips both ways, one does not flip, one sits at 0) and retraining every
    RETRAIN_EVERY_MONTHS months: every optional section of the report, whatever the real run produced."""
    shutil.copytree(run_dir, target)
    data = json.loads((target / "run.json").read_text(encoding="utf-8"))
    decision = data["decision"]
    points = [
        {
            "fraction": f,
            "n_examples": n,
            "mean": round(_q(n), 3),
            "ci_low": round(_q(n) - 0.15, 3),
            "ci_high": round(_q(n) + 0.15, 3),
            "n_cases": 9,
            "training_usd": 0.001 * f,
            "epochs": 2,
            "name": "ft" if f == 1 else f"ft@curve{f:g}",
        }
        for f, n in ((0.25, 3), (0.5, 6), (1.0, 12))
    ]
    sizes = [24, 3, 4, 5, 6, 8, 10, 12, 16, 20]  # 2x the largest first, then the band's sizes
    decision["learning_curves"] = [
        {
            "strategy": "ft",
            "metric": data["primary_metric"],
            "points": points,
            "fit": {
                "status": "extrapolated",
                "reason": "The gains shrink as the data grows; the fitted curve levels off at 0.6.",
                "params": CURVE_PARAMS,
                "asymptote": CURVE_PARAMS["a"],
                "predictions": [
                    {"n_examples": n, "factor": n / 12, "mean": _q(n), "low": _q(n) - 0.1, "high": _q(n) + 0.05}
                    for n in sizes
                ],
                "resamples": 1000,
                "supported_share": 0.9,
            },
            "more_data": {
                "factor": 2.0,
                "more_examples": 12,
                "labelling_usd": 0.6,
                "extra_training_usd": 0.001,
                "expected_gain": 0.044,
                "gain_low": -0.056,
                "gain_high": 0.094,
                "worth_it": False,
                "sentence": CURVE_SENTENCE,
            },
        }
    ]
    decision["tipping"] = TIPPING
    data["suite"].setdefault("decision", {})["retrain_every_months"] = RETRAIN_EVERY_MONTHS
    (target / "run.json").write_text(json.dumps(data), encoding="utf-8")
    return target
