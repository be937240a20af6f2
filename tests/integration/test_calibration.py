"""Local time and dollars known before the run: `harness estimate` measures this machine once per model and shape
(cached, measured again under other library versions, and says so), predicts each strategy's answering, dev and
training time from it, and budget_hours caps local work before and during a run."""

from __future__ import annotations

import json
import math

import pytest

from harness.costs import calibrate
from harness.costs.calibrate import GenerationSpeed, TrainingSpeed
from harness.costs.estimate import estimate
from harness.run.compare import CompareOptions, compare
from harness.suite.load import load_suite
from tests.conftest import assert_refused, base_suite, harness_cli, write_suite
from tests.integration.test_finetune import ft_suite


def test_the_prediction_is_the_calibrated_arithmetic(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setattr(
        calibrate,
        "_measure_generation",
        lambda b, batch, ctx: GenerationSpeed(prefill_tok_s=1000.0, step_s=0.05, batch=batch, context_tokens=ctx),
    )
    monkeypatch.setattr(
        calibrate,
        "_measure_training",
        lambda t, ex, batch, per: TrainingSpeed(step_s=2.0, batch=batch, tokens_per_step=per * batch),
    )
    path = write_suite(tmp_path / "s", ft_suite(tiny_model))
    loaded = load_suite(path)
    est = {s.strategy: s for s in estimate(loaded, calibrate=True).strategies}
    zero, ft = est["zero"], est["ft"]
    batch = 8  # the suite's hf batch_size
    n = zero.requests
    from harness.costs.estimate import _PromptSizes
    from harness.costs.tokens import MESSAGE_OVERHEAD_TOKENS, chars_to_tokens

    system = _PromptSizes.of(loaded.suite.task, loaded.dataset.test).instructions_chars
    shared = chars_to_tokens(system) + MESSAGE_OVERHEAD_TOKENS  # the system turn, computed once
    own = zero.input_tokens - shared
    # zero-shot is shown no answers: every batch decodes to max_new_tokens
    expected = shared / 1000 + n * own / 1000 + math.ceil(n / batch) * zero.output_tokens_max * 0.05
    assert zero.predicted_s["test"] == pytest.approx(expected, abs=0.1), zero.predicted_s
    # the fine-tune: trained examples / batch x epochs steps at 2 s each, its answers as long as the targets
    steps = math.ceil(12 / 4) * 2  # 12 train examples, tuner batch 4, 2 epochs
    assert ft.predicted_s["training"] == pytest.approx(steps * 2.0)
    assert ft.predicted_s["dev"] > 0 and ft.predicted_s["test"] < zero.predicted_s["test"]
    assert ft.predicted_usd == pytest.approx(sum(ft.predicted_s.values()) / 3600 * 0.36, rel=1e-3)


@pytest.mark.slow
def test_estimate_measures_once_and_again_under_another_torch(tiny_model, tmp_path, monkeypatch, caplog):
    path = write_suite(tmp_path / "s", ft_suite(tiny_model))
    home = tmp_path / "home"
    first = harness_cli("estimate", str(path), home=home, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "calibrating tiny: generation" in first.stderr and "eight training steps" in first.stderr
    assert "local time on this machine (predicted): test" in first.stdout and "training" in first.stdout
    again = harness_cli("estimate", str(path), "--json", home=home, timeout=300)
    assert again.returncode == 0 and "calibrating" not in again.stderr  # cached
    figures = {s["strategy"]: s for s in json.loads(again.stdout)["strategies"]}
    assert figures["ft"]["predicted_s"]["training"] > 0 and figures["zero"]["predicted_usd"] is not None
    ran = harness_cli("compare", str(path), "--out", str(tmp_path / "run"), home=home, timeout=300)
    assert ran.returncode == 0, ran.stderr
    checks = json.loads((tmp_path / "run" / "run.json").read_text())["time_checks"]
    assert set(checks["ft"]) == {"test", "dev", "training"} and set(checks["zero"]) == {"test"}
    for phases in checks.values():  # each predicted phase beside what the run measured
        for check in phases.values():
            assert check["predicted_s"] >= 0 and check["measured_s"] is not None and check["measured_s"] > 0
    assert checks["ft"]["training"]["error"] == pytest.approx(
        checks["ft"]["training"]["measured_s"] / checks["ft"]["training"]["predicted_s"] - 1, abs=1e-3
    )
    store = home / "calibration.json"
    data = json.loads(store.read_text())
    for entry in data.values():
        entry["versions"]["torch"] = "0.0-other"
    store.write_text(json.dumps(data))
    monkeypatch.setenv("HARNESS_HOME", str(home))
    with caplog.at_level("WARNING"):
        assert all(calibrate.CalibrationStore().get(key) is None for key in data)  # measured again, not reused
    assert "measured under other versions (torch 0.0-other ->" in caplog.text and "measuring again" in caplog.text


def test_budget_hours_refuses_a_run_predicted_longer(tiny_model, tmp_path):
    suite = ft_suite(tiny_model)
    suite["budget_hours"] = 0.00001  # 36 ms
    path = write_suite(tmp_path / "s", suite)
    done = harness_cli("compare", str(path), "--out", str(tmp_path / "run"), home=tmp_path / "home", timeout=300)
    assert_refused(done, "budget_hours", "predicted at", "Nothing was run")
    assert not (tmp_path / "run" / "cases.jsonl").exists()


def test_budget_hours_stops_local_answering_and_a_rerun_finishes(tmp_path):
    suite = base_suite(latency_s=0.5)  # each fake answer counts 0.5 s of local busy time
    suite["budget_hours"] = 2.2 / 3600  # room for about 5 answers
    path = write_suite(tmp_path / "s", suite)
    record, run = compare(path, CompareOptions(out=tmp_path / "run", strategies=["zero"]))
    zero = record.strategies["zero"]
    assert 0 < zero.n_done < zero.n_planned and run.counts.budget_skipped == zero.n_planned - zero.n_done
    suite["budget_hours"] = 1.0
    write_suite(tmp_path / "s", suite)
    again, _ = compare(path, CompareOptions(out=tmp_path / "run", strategies=["zero"]))
    assert again.strategies["zero"].n_done == again.strategies["zero"].n_planned


def test_budget_usd_counts_local_compute_at_the_device_rate(tmp_path):
    suite = base_suite(latency_s=0.5)  # each fake answer: 0.5 s of local busy time
    suite["economics"] = {"usd_per_hour": {"cpu": 3.6}}  # $0.0005 an answer
    suite["budget_usd"] = 0.0022  # room for about 4 answers
    path = write_suite(tmp_path / "s", suite)
    record, run = compare(path, CompareOptions(out=tmp_path / "run", strategies=["zero"]))
    zero = record.strategies["zero"]
    assert 0 < zero.n_done < zero.n_planned and run.counts.budget_skipped == zero.n_planned - zero.n_done
    assert record.budget.paid_usd == 0 and 0.0022 <= record.budget.local_usd < 0.0022 + 0.0005 * 8
    assert record.budget.local_usd == pytest.approx(zero.n_done * 0.0005, rel=0.2)
    suite["budget_usd"] = 1.0
    write_suite(tmp_path / "s", suite)
    again, _ = compare(path, CompareOptions(out=tmp_path / "run", strategies=["zero"]))
    assert again.strategies["zero"].n_done == again.strategies["zero"].n_planned
    assert again.budget.local_usd == pytest.approx(zero.n_planned * 0.0005, rel=0.2)  # the first run's counted too


def test_budget_usd_refuses_a_run_whose_calibrated_local_work_costs_more(tiny_model, tmp_path):
    suite = ft_suite(tiny_model)
    suite["economics"] = {"usd_per_hour": {"cpu": 36000.0}}  # $10 a second: the 6 training steps pass $0.5
    path = write_suite(tmp_path / "s", suite)
    home = tmp_path / "home"
    assert harness_cli("estimate", str(path), home=home, timeout=300).returncode == 0  # calibrates this machine
    suite["budget_usd"] = 0.5
    write_suite(tmp_path / "s", suite)
    done = harness_cli("compare", str(path), "--out", str(tmp_path / "run"), home=home, timeout=300)
    assert_refused(done, "budget_usd", "local compute at the device's $/hour", "'ft'", "Nothing was run")
    assert not (tmp_path / "run" / "cases.jsonl").exists()
