"""The default suite on the real embedded model, through the CLI as a user runs it."""

from __future__ import annotations

import json

import pytest

from tests.conftest import REPO, harness_cli

pytestmark = pytest.mark.slow

REAL_MODEL_TIMEOUT_S = 1800  # a real model on the CPU: well above harness_cli's 300 s (these calls had no limit)


def test_quickstart_few_shot_beats_zero_shot_and_rerun_costs_no_model_call(embedded_model_dir, tmp_path):
    home = embedded_model_dir.parents[1]  # HARNESS_HOME that holds models/smollm2-135m-instruct
    out = tmp_path / "run"
    first = harness_cli(
        "compare",
        "suites/quickstart/suite.yaml",
        "--limit",
        "28",
        "--out",
        str(out),
        "--no-cache",
        "--strategies",
        "zero_shot,few_shot",
        home=home,
        timeout=REAL_MODEL_TIMEOUT_S,
    )
    assert first.returncode == 0, first.stderr[-2000:]
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "incomplete"  # --limit ran 28 of the 150 test cases
    assert run["strategies"]["few_shot"]["n_done"] == 28 and run["strategies"]["few_shot"]["n_planned"] == 150
    zero, few = (run["strategies"][s]["metrics"]["label_accuracy"] for s in ("zero_shot", "few_shot"))
    # A 135M model does not follow the label instructions zero-shot; a handful of exemplars teaches the format.
    assert few["mean"] > zero["mean"] + 0.15, (zero, few)
    assert few["n_invalid"] < zero["n_invalid"]
    assert run["options"]["counts"]["model_calls"] == 56
    second = harness_cli(
        "compare",
        "suites/quickstart/suite.yaml",
        "--limit",
        "28",
        "--out",
        str(out),
        "--strategies",
        "zero_shot,few_shot",
        home=home,
        timeout=REAL_MODEL_TIMEOUT_S,
    )
    assert second.returncode == 0
    assert json.loads((out / "run.json").read_text())["options"]["counts"]["model_calls"] == 0


def test_a_lora_fine_tune_of_the_real_model_learns_the_labels(embedded_model_dir, tmp_path):
    """A small cut of the quickstart data (60 train, 14 dev, 30 test), 2 epochs: the fine-tune must name labels."""
    import shutil

    import yaml

    suite = yaml.safe_load((REPO / "suites/quickstart/suite.yaml").read_text())
    folder = tmp_path / "suite"
    (folder / "data").mkdir(parents=True)
    for split, n in (("train", 60), ("dev", 14), ("test", 30)):
        lines = (REPO / "suites/quickstart/data" / f"{split}.jsonl").read_text().splitlines()
        step = max(1, len(lines) // n)  # every k-th line: all intents appear
        (folder / "data" / f"{split}.jsonl").write_text("\n".join(lines[::step][:n]) + "\n")
    suite["strategies"] = [s for s in suite["strategies"] if s["name"] in ("zero_shot", "lora")]
    suite["strategies"][1]["config"]["tuner"]["config"].update(epochs=2, learning_rate=1.0e-3)
    (folder / "suite.yaml").write_text(yaml.safe_dump(suite))
    home = embedded_model_dir.parents[1]
    result = harness_cli(
        "compare", str(folder / "suite.yaml"), "--out", str(tmp_path / "run"), home=home, timeout=REAL_MODEL_TIMEOUT_S
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    lora, zero = run["strategies"]["lora"], run["strategies"]["zero_shot"]
    given = lora["setup"]["given"]
    assert given["epochs_trained"] == 2 and given["chosen"]["on"] == "dev"
    assert given["training"]["device"] == "cpu" and given["setup_costs"][0]["usd"] > 0
    # After fine-tuning the model answers with intent names, which zero-shot never does.
    assert lora["metrics"]["label_accuracy"]["n_invalid"] < 10 < zero["metrics"]["label_accuracy"]["n_invalid"]
    assert lora["metrics"]["label_accuracy"]["mean"] > zero["metrics"]["label_accuracy"]["mean"] + 0.2
    shutil.rmtree(tmp_path / "run" / "training", ignore_errors=True)
