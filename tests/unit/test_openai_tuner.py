"""The `openai` tuner against the local server's fine-tuning API: chat JSONL uploaded, one job created and
followed, every epoch checkpoint scored on dev and the best serving the test cases at fine-tuned prices; a rerun
after an interruption follows the same job; Ctrl-C cancels only when asked."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import yaml

from harness.run.compare import CompareOptions, compare
from tests.conftest import LABELS, make_rows, write_jsonl
from tests.fake_openai import FakeOpenAI, Script

KEY = "sk-test-tuner-0123456789"


def answers(body):
    """Base model: always 'alpha'. Checkpoint at step 20 (epoch 2): always right. Final model (epoch 3): right on
    alpha and beta only."""
    model, text = body["model"], body["messages"][-1]["content"]
    label = next(label for label in LABELS if label in text.split()[-1] or f"about {label}" in text)
    if model.endswith(":ckpt-step-20"):
        return label
    if model.startswith("ft:") and ":ckpt-" not in model:
        return label if label != "gamma" else "alpha"
    if model.startswith("ft:"):
        return "beta"
    return "alpha"


def suite_file(folder, url, **tuner):
    write_jsonl(folder / "data/train.jsonl", make_rows("train", 12))
    write_jsonl(folder / "data/dev.jsonl", make_rows("dev", 9))
    write_jsonl(folder / "data/test.jsonl", make_rows("test", 9))
    api = {"base_url": url, "api_key_env": "TUNER_KEY", "concurrency": 4, "max_retries": 2}
    suite = {
        "name": "tuner",
        "seed": 5,
        "task": {
            "instructions": "Pick one of: {labels}.",
            "input_field": "text",
            "target_field": "label",
            "labels": LABELS,
        },
        "data": {"train": "data/train.jsonl", "dev": "data/dev.jsonl", "test": "data/test.jsonl"},
        "backends": [{"name": "api", "kind": "openai", "model": "gpt-4o-mini", "config": api}],
        "strategies": [
            {"name": "zero", "kind": "zero_shot"},
            {
                "name": "ft",
                "kind": "finetune",
                "config": {
                    "tuner": {
                        "kind": "openai",
                        "config": {"epochs": 3, "suffix": "t", "poll_s": 0.01, "poll_max_s": 0.02, **tuner},
                    }
                },
            },
        ],
        "scorers": [{"kind": "label_accuracy"}],
        "decision": {"monthly_requests": 100000},
    }
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("TUNER_KEY", KEY)
    script = Script(chat=answers)
    with FakeOpenAI(script) as url:
        yield script, url


def test_a_job_is_created_once_followed_and_its_best_epoch_serves(tmp_path, server):
    script, url = server
    record, _ = compare(suite_file(tmp_path, url), CompareOptions(out=tmp_path / "run"))
    assert record.status == "complete"
    assert len(script.jobs) == 1
    (job,) = script.jobs.values()
    # the train split as chat JSONL, the answer as the assistant turn; dev as the validation file
    train = [json.loads(x) for x in script.files[job["training_file"]]["content"].splitlines()]
    assert len(train) == 12 and train[0]["messages"][-1] == {"role": "assistant", "content": "alpha"}
    assert script.files[job["training_file"]]["purpose"] == "fine-tune" and job["validation_file"] in script.files
    assert job["hyperparameters"]["n_epochs"] == 3 and job["seed"] == 5
    given = record.strategies["ft"].setup.given
    # three epoch checkpoints scored on dev: the step-20 one answers all right
    assert given.dev_scores == pytest.approx([1 / 3, 1.0, 2 / 3])
    assert given.chosen.epoch == 2.0 and given.chosen.on == "dev"
    served = record.strategies["ft"].setup.serving["model"]
    assert served.endswith(":ckpt-step-20")
    assert record.strategies["ft"].metrics["label_accuracy"].mean == 1.0
    # training billed as trained tokens x gpt-4o-mini's $3 per 1M; answers at the fine-tuned prices
    trained = given.training.trained_tokens
    assert trained == 40 * 12 * 3 and given.setup_costs[0].usd == pytest.approx(trained * 3.0 / 1e6)
    assert record.strategies["ft"].cost.pricing.price.finetuned is True
    assert any(r.strategy == "ft" for r in record.decision.finetune)
    workdir = given.workdir  # the job id saved at once, and the job's events, kept with the fine-tune
    assert json.loads(Path(workdir, "job.json").read_text())["job_id"] == job["id"]
    logged = [json.loads(x) for x in Path(workdir, "events.jsonl").read_text().splitlines()]
    assert any("successfully completed" in e["message"] for e in logged)
    assert record.budget.paid_usd >= given.setup_costs[0].usd


def test_an_interrupted_run_follows_the_same_job_and_never_creates_a_second(tmp_path, server, monkeypatch):
    script, url = server
    script.job_step_polls = 3
    import strategies.finetune.openai_tuner as tuner_module

    real_sleep = tuner_module.time.sleep
    calls = {"n": 0}

    def interrupted(seconds):
        if threading.current_thread() is not threading.main_thread():  # time.sleep is shared: other threads (a
            return real_sleep(seconds)  # library's background flusher) sleep as usual; Ctrl-C reaches the main one
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # the user presses Ctrl-C while the job runs
        real_sleep(seconds)

    monkeypatch.setattr(tuner_module.time, "sleep", interrupted)
    with pytest.raises(KeyboardInterrupt):
        compare(suite_file(tmp_path, url), CompareOptions(out=tmp_path / "run"))
    (job,) = script.jobs.values()
    assert job["status"] not in ("succeeded", "cancelled")  # left running (the default)
    monkeypatch.setattr(tuner_module.time, "sleep", real_sleep)
    record, _ = compare(suite_file(tmp_path, url), CompareOptions(out=tmp_path / "run"))
    assert record.status == "complete"
    assert len(script.jobs) == 1  # the same job, followed to the end
    assert record.strategies["ft"].setup.given.training.job_id == job["id"]
    creates = [r for r in script.requests if r["path"].endswith("/fine_tuning/jobs") and r.get("method") == "POST"]
    assert len(creates) == 1


@pytest.mark.parametrize("asked_by", ["suite", "command line"])
def test_ctrl_c_cancels_the_job_when_asked(tmp_path, server, monkeypatch, asked_by):
    script, url = server
    script.job_step_polls = 5
    import strategies.finetune.openai_tuner as tuner_module

    real_sleep = tuner_module.time.sleep

    def interrupted(seconds):  # Ctrl-C reaches the main thread only; other threads (progress, analytics) sleep on
        if threading.current_thread() is not threading.main_thread():
            return real_sleep(seconds)
        raise KeyboardInterrupt

    monkeypatch.setattr(tuner_module.time, "sleep", interrupted)
    if asked_by == "command line":
        monkeypatch.setenv("HARNESS_CANCEL_ON_ABORT", "1")  # what `harness compare --cancel-on-abort` sets
    tuner = {"cancel_on_abort": True} if asked_by == "suite" else {}
    with pytest.raises(KeyboardInterrupt):
        compare(suite_file(tmp_path, url, **tuner), CompareOptions(out=tmp_path / "run"))
    (job,) = script.jobs.values()
    assert job["status"] == "cancelled"  # (not asked: left running, see the test above)


def test_a_failed_job_stops_the_strategy_with_its_error(tmp_path, server):
    from harness.errors import HarnessError

    script, url = server
    script.job_outcome = "failed"
    with pytest.raises(HarnessError, match="ended failed: injected job failure"):
        compare(suite_file(tmp_path, url), CompareOptions(out=tmp_path / "run"))
    assert len(script.jobs) == 1


def azure_suite(folder, url, **tuner):
    path = suite_file(folder, url)
    suite = yaml.safe_load(path.read_text())
    root = url.removesuffix("/v1")
    suite["backends"][0]["config"].update(base_url=root, azure_api_version="2024-10-21")
    suite["strategies"][1]["config"]["tuner"] = {
        "kind": "azure",
        "config": {
            "epochs": 3,
            "poll_s": 0.01,
            "poll_max_s": 0.02,
            "subscription_id": "sub-1",
            "resource_group": "rg-1",
            "account": "acct-1",
            "management_url": root,
            "token_env": "AZURE_MGMT_TOKEN",
            **tuner,
        },
    }
    path.write_text(yaml.safe_dump(suite))
    return path


@pytest.fixture
def azure(monkeypatch):
    monkeypatch.setenv("TUNER_KEY", KEY)
    monkeypatch.setenv("AZURE_MGMT_TOKEN", "mgmt-token-xyz")
    script = Script(chat=answers, deploy_polls=2)
    script.deployments["gpt-4o-mini"] = {"model": "gpt-4o-mini", "state": "Succeeded", "polls": 0}  # the base
    with FakeOpenAI(script) as url:
        yield script, url


def test_azure_deploys_each_checkpoint_to_score_it_and_deletes_every_deployment(tmp_path, azure):
    script, url = azure
    record, _ = compare(azure_suite(tmp_path, url), CompareOptions(out=tmp_path / "run"))
    assert record.status == "complete"
    given = record.strategies["ft"].setup.given
    assert given.chosen.epoch == 2.0 and record.strategies["ft"].metrics["label_accuracy"].mean == 1.0
    created = [name for action, name, _ in script.deployment_log if action == "create"]
    deleted = [name for action, name, _ in script.deployment_log if action == "delete"]
    assert len(created) == 4  # three checkpoints scored on dev, then the chosen one for the test cases
    assert sorted(created) == sorted(deleted)  # none left running
    assert set(script.deployments) == {"gpt-4o-mini"}
    mgmt = [r for r in script.requests if "/deployments/" in r["path"] and "Microsoft.CognitiveServices" in r["path"]]
    assert all(r["auth"] == "Bearer mgmt-token-xyz" for r in mgmt)
    # Hosting: the sheet's $1.70/h for azure/gpt-4o-mini goes into the decision; the time deployed is a run cost
    cost = record.strategies["ft"].cost
    assert cost.hosting_usd_per_hour == 1.70
    assert given.deployment.hosted_s > 0 and any("deployment hosting" in i.what for i in cost.setup_items)
    assert cost.pricing.price.finetuned is True  # served deployments priced as the fine-tuned model


def test_azure_deletes_the_deployment_after_an_error_and_keeps_it_only_when_asked(tmp_path, azure, monkeypatch):
    script, url = azure
    # keep_deployment: the chosen deployment outlives the run; the others were deleted after scoring
    record, _ = compare(azure_suite(tmp_path, url, keep_deployment=True), CompareOptions(out=tmp_path / "run"))
    kept = set(script.deployments) - {"gpt-4o-mini"}
    assert len(kept) == 1 and record.strategies["ft"].setup.given.deployment.kept == list(kept)

    # an error while answering the test cases: the deployment is deleted all the same
    script.deployments = {"gpt-4o-mini": script.deployments["gpt-4o-mini"]}
    import strategies.finetune.strategy as ft_module

    def failing_request(self, case):
        raise KeyboardInterrupt  # Ctrl-C in the middle of the test cases

    monkeypatch.setattr(ft_module.FineTune, "request", failing_request)
    logged = len(script.deployment_log)
    with pytest.raises(KeyboardInterrupt):
        compare(azure_suite(tmp_path / "b", url), CompareOptions(out=tmp_path / "run2"))
    created = {name for action, name, _ in script.deployment_log[logged:] if action == "create"}
    deleted = {name for action, name, _ in script.deployment_log[logged:] if action == "delete"}
    assert created and created <= deleted  # the interrupted run deployed its fine-tune, and deleted every one
    assert set(script.deployments) == {"gpt-4o-mini"}
