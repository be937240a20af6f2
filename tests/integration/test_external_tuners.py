"""Tuners that train in another process and environment: AutoTrain Advanced (the real `autotrain` CLI, from its
own virtual environment, on CPU with a tiny Llama) and Unsloth (refused without an NVIDIA GPU, naming `local`;
its child-process contract checked with a stand-in for Unsloth's entry points)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from harness.cli import app
from harness.errors import HarnessError
from harness.run.compare import CompareOptions, compare
from tests.conftest import REPO, write_suite
from tests.integration.test_finetune import ft_suite

AUTOTRAIN_ENV = Path(os.environ.get("HARNESS_AUTOTRAIN_ENV", REPO / ".venv-autotrain"))
STANDIN = REPO / "tests" / "fixtures" / "unsloth_standin"


def tuner_suite(tiny_model, kind: str, **config):
    suite = ft_suite(tiny_model, **config)
    suite["strategies"][1]["config"]["tuner"]["kind"] = kind
    return suite


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


def autotrain_env() -> Path:
    exe = AUTOTRAIN_ENV / "bin" / "autotrain"
    assert exe.exists(), (
        f"AutoTrain's environment is missing at {AUTOTRAIN_ENV}. Fix: make autotrain-env "
        "(CI builds it; HARNESS_AUTOTRAIN_ENV points elsewhere)."
    )
    return AUTOTRAIN_ENV


# ---- AutoTrain --------------------------------------------------------------------------------------


def test_export_only_writes_autotrains_config_and_data(tiny_model, tmp_path):
    path = write_suite(tmp_path / "s", tuner_suite(tiny_model, "autotrain", executable=str(tmp_path / "nowhere")))
    result = cli("tune", str(path), "--export-only", "--out", str(tmp_path / "export"))
    assert result.exit_code == 0, result.output
    config = yaml.safe_load((tmp_path / "export" / "config.yml").read_text())
    assert config["task"] == "llm-sft" and config["hub"]["push_to_hub"] is False
    params = config["params"]
    assert (params["epochs"], params["batch_size"], params["lr"], params["lora_r"], params["lora_alpha"]) == (
        2,
        4,
        5e-3,
        4,
        8,
    )
    assert params["peft"] is True and params["quantization"] is None and params["mixed_precision"] is None  # CPU
    rows = [json.loads(x) for x in (tmp_path / "export" / "data" / "train.jsonl").read_text().splitlines()]
    assert len(rows) == 12
    assert rows[0]["messages"][-1] == {"role": "assistant", "content": "alpha"}  # the answer closes each conversation
    assert "Pick one of" in rows[0]["messages"][0]["content"]  # the prompt exactly as inference sends it
    # a base folder saved by transformers >= 5 is given to AutoTrain through a view its transformers can read
    base = Path(config["base_model"])
    tok = json.loads((base / "tokenizer_config.json").read_text())
    assert tok["tokenizer_class"] == "PreTrainedTokenizerFast" and "chat_template" in tok
    # AutoTrain's own parameter model accepts the exported params
    check = subprocess.run(
        [
            str(autotrain_env() / "bin" / "python"),
            "-c",
            "import sys, yaml; from autotrain.trainers.clm.params import LLMTrainingParams as P; "
            "c = yaml.safe_load(open(sys.argv[1])); P(model=c['base_model'], project_name='p', **c['params'])",
            str(tmp_path / "export" / "config.yml"),
        ],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr[-2000:]


def test_export_only_refuses_a_tuner_without_export(tiny_model, tmp_path):
    path = write_suite(tmp_path / "s", ft_suite(tiny_model))
    result = cli("tune", str(path), "--export-only", "--out", str(tmp_path / "export"))
    assert result.exit_code == 2 and "tuner.kind: autotrain" in result.output and "Traceback" not in result.output


@pytest.mark.slow
def test_autotrain_trains_with_the_real_cli_and_serves_its_adapter(tiny_model, tmp_path):
    env = autotrain_env()
    path = write_suite(tmp_path / "s", tuner_suite(tiny_model, "autotrain", executable=str(env), epochs=1))
    record, _ = compare(path, CompareOptions(out=tmp_path / "run"))
    assert record.status == "complete"
    setup = record.strategies["ft"].setup
    given = setup.given
    assert given.tuner == "autotrain" and given.epochs_trained == 1 and given.chosen.on == "dev"
    stats = given.training
    assert stats.device == "cpu" and stats.engine == "autotrain-advanced" and stats.wall_s > 0
    assert given.setup_costs[0].usd == pytest.approx(stats.wall_s / 3600 * 0.36, rel=1e-2)
    assert setup.serving["adapter_sha"] != record.strategies["zero"].setup.serving["adapter_sha"]
    curve = [json.loads(x) for x in (tmp_path / "run" / "training" / "ft" / "curve.jsonl").read_text().splitlines()]
    assert curve and all(row["loss"] > 0 for row in curve)  # read from AutoTrain's own log lines
    work = Path(given.workdir) / "autotrain"
    assert "Starting SFT training" in (work / "autotrain.log").read_text()
    assert (work / "harness-autotrain" / "adapter_config.json").exists()
    assert record.strategies["ft"].n_errors == 0 and len(record.strategies["ft"].metrics) > 0


@pytest.mark.slow
def test_autotrain_failure_inside_its_trainer_is_an_error_not_a_result(tiny_model, tmp_path):
    # AutoTrain exits 0 when its trainer raises; the tuner reads the log and fails with AutoTrain's message.
    env = autotrain_env()
    path = write_suite(
        tmp_path / "s",
        tuner_suite(tiny_model, "autotrain", executable=str(env), epochs=1, optimizer="no_such_optimizer"),
    )
    with pytest.raises(HarnessError, match=r"(?s)AutoTrain training failed: .*no_such_optimizer.*autotrain.log"):
        from harness.commands.tune import train_only

        train_only(path, "ft")


def test_missing_autotrain_is_a_note_for_validate_and_a_refusal_for_compare(tiny_model, tmp_path):
    path = write_suite(tmp_path / "s", tuner_suite(tiny_model, "autotrain", executable=str(tmp_path / "no-env")))
    ok = cli("validate", str(path))
    assert (
        ok.exit_code == 0 and "tuner.config.executable" in ok.output and "pip install autotrain-advanced" in ok.output
    )
    refused = cli("compare", str(path), "--out", str(tmp_path / "run"))
    assert refused.exit_code == 2 and "no AutoTrain executable" in refused.output and "Traceback" not in refused.output
    assert not (tmp_path / "run" / "cases.jsonl").exists()


# ---- Unsloth ----------------------------------------------------------------------------------------


def test_unsloth_without_a_gpu_names_the_local_tuner(tiny_model, tmp_path):
    import torch

    assert not torch.cuda.is_available(), "this test is about machines without an NVIDIA GPU"
    path = write_suite(tmp_path / "s", tuner_suite(tiny_model, "unsloth"))
    ok = cli("validate", str(path))
    assert ok.exit_code == 0 and "strategies[1].config.tuner.kind" in ok.output and "tuner kind: local" in ok.output
    refused = cli("compare", str(path), "--out", str(tmp_path / "run"))
    assert refused.exit_code == 2 and "NVIDIA GPU" in refused.output and "tuner kind: local" in refused.output
    assert "Traceback" not in refused.output


def test_unsloth_rejects_full_fine_tuning_with_the_key_named(tiny_model, tmp_path):
    path = write_suite(tmp_path / "s", tuner_suite(tiny_model, "unsloth", method="full"))
    result = cli("validate", str(path))
    assert result.exit_code == 2 and "strategies[1].config.tuner.config.method" in result.output


@pytest.mark.slow
def test_unsloth_child_process_contract_with_a_stand_in(tiny_model, tmp_path, monkeypatch):
    """Our side of the Unsloth contract on CPU: the job file, the child process in another interpreter, one
    checkpoint per epoch read back, a rerun resuming, the adapter served. (bench/gpu_check.sh runs real Unsloth.)"""
    import strategies.finetune.unsloth_tuner as unsloth_tuner

    monkeypatch.setattr(unsloth_tuner, "cuda_problem", lambda *a: None)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(STANDIN), str(REPO), os.environ.get("PYTHONPATH", "")]))
    path = write_suite(
        tmp_path / "s", tuner_suite(tiny_model, "unsloth", optimizer="adamw_torch", python=sys.executable)
    )
    record, run = compare(path, CompareOptions(out=tmp_path / "run"))
    given = record.strategies["ft"].setup.given
    assert given.tuner == "unsloth" and given.epochs_trained == 2 and len(given.dev_scores) == 2
    assert given.training.engine == "unsloth stand-in" and given.training.steps == 6
    assert run.counts.dev_calls == 12
    work = Path(given.workdir)
    job = json.loads((work / "unsloth-job.json").read_text())
    assert job["config"]["rank"] == 4 and len(job["examples"]) == 12 and job["offline"] is True
    curve = [json.loads(x) for x in (tmp_path / "run" / "training" / "ft" / "curve.jsonl").read_text().splitlines()]
    assert [row["step"] for row in curve] == [1, 2, 3, 4, 5, 6]

    # Killed after the first epoch's checkpoint: the rerun resumes from it and trains only the second epoch.
    import shutil

    from harness.commands.tune import train_only

    (work / "result.json").unlink()
    shutil.rmtree(work / "checkpoints" / "checkpoint-6")
    train_only(path, "ft")
    again = json.loads((work / "result.json").read_text())
    assert again["stats"]["resumed"] is True and [c["step"] for c in again["checkpoints"]] == [3, 6]
    assert len((work / "train-runs.jsonl").read_text().splitlines()) == 2  # time of both processes is counted
