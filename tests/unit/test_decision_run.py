"""Costs, the decision, the estimate, the budget cap and the CI gates, end to end through `harness compare` on the
fake backend priced like an API model (so every dollar is known in advance)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from harness.backends.fake import fake_tokens
from harness.run.compare import CompareOptions, compare
from harness.run.folder import read_run
from tests.conftest import base_suite, harness_cli, write_jsonl, write_suite

IN_PRICE, OUT_PRICE = 1.0, 4.0  # $ per 1M tokens for the scripted model "toy-model"


def priced(suite: dict | None = None, **extra) -> dict:
    suite = suite or base_suite()
    suite["backends"][0]["model"] = "toy-model"
    suite["economics"] = {"prices": {"toy-model": {"input_per_1m_usd": IN_PRICE, "output_per_1m_usd": OUT_PRICE}}}
    suite.update(extra)
    return suite


def cases(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "cases.jsonl").read_text().splitlines()]


# ---- costs and tokens in run.json ----------------------------------------------------------------


def test_each_answer_is_priced_from_its_tokens_and_the_prompt_is_split_by_part(tmp_path):
    record, _run = compare(write_suite(tmp_path / "s", priced()), CompareOptions(out=tmp_path / "run"))
    rows = cases(tmp_path / "run")
    for row in rows:
        # $1 per 1M input tokens and $4 per 1M output tokens, call by call
        assert row["cost_usd"] == pytest.approx(row["input_tokens"] * 1e-6 + row["output_tokens"] * 4e-6)
        assert row["paid_usd"] == row["cost_usd"]  # all of it billed by the provider
        parts = row["tokens"]
        # each part counted on its own text (the fake model's tokenizer), the remainder is the chat template: a few
        # role markers per message (the fake prompt renders each message as "[role] text")
        assert parts["input"] == fake_tokens(row["input"])
        messages = 2 + (6 if row["strategy"] == "few" else 0)  # system + the case, and 3 exemplar pairs
        assert 0 < parts["template"] <= 4 * messages, (parts, row["prompt"])
        assert sum(v for k, v in parts.items() if k != "output") == row["input_tokens"]
        assert parts["output"] == row["output_tokens"]
    zero = [r for r in rows if r["strategy"] == "zero"]
    few = [r for r in rows if r["strategy"] == "few"]
    assert all("exemplars" not in r["tokens"] for r in zero)
    instructions = fake_tokens("Pick one of: alpha, beta, gamma.")
    assert {r["tokens"]["instructions"] for r in zero + few} == {instructions}
    assert all(r["tokens"]["exemplars"] > 0 for r in few)

    summary = record.strategies["few"]
    mean_in = sum(r["input_tokens"] for r in few) / len(few)
    mean_out = sum(r["output_tokens"] for r in few) / len(few)
    assert summary.cost.per_request_usd == pytest.approx(mean_in * 1e-6 + mean_out * 4e-6)
    assert summary.tokens_mean["exemplars"] == pytest.approx(sum(r["tokens"]["exemplars"] for r in few) / len(few))
    # what each part costs adds up to the request's cost
    assert sum(summary.cost.per_request_by_part_usd.values()) == pytest.approx(summary.cost.per_request_usd)
    assert record.budget.paid_usd == pytest.approx(sum(r["cost_usd"] for r in rows))
    assert record.prices.version and record.prices.date
    assert record.prices.overrides.prices["toy-model"].output_per_1m_usd == OUT_PRICE


def test_the_decision_is_in_run_json_decision_md_and_the_terminal(tmp_path):
    suite = priced(decision={"monthly_requests": 50_000, "min_gain": 0.02})
    path = write_suite(tmp_path / "s", suite)
    result = harness_cli("compare", str(path), "--out", str(tmp_path / "run"), home=tmp_path / "home", timeout=120)
    assert result.returncode == 0, result.stderr
    decision = read_run(tmp_path / "run").decision
    # the fake rules answer alpha and beta right and gamma wrong under both strategies: the same quality,
    # so the cheaper strategy (zero-shot: no exemplars in the prompt) wins
    assert decision.winner == "zero"
    assert decision.status == "decided"
    assert "50,000 requests a month" in decision.verdict
    assert f"decision: {decision.verdict}" in result.stdout
    md = (tmp_path / "run" / "decision.md").read_text()
    assert decision.verdict in md and "| zero |" in md and "## Reasons" in md
    assert "decision.md" in result.stdout


def test_a_local_model_is_priced_by_busy_time_at_the_device_rate(tmp_path):
    suite = base_suite()
    suite["economics"] = {"usd_per_hour": {"cpu": 3.6}}  # $3.60 an hour = $0.001 a second
    record, _ = compare(write_suite(tmp_path / "s", suite), CompareOptions(out=tmp_path / "run"))
    cost = record.strategies["zero"].cost
    assert cost.pricing.kind == "device_hours"
    # the fake model is busy 0.05 s per answer: 0.05 s x $0.001 = $0.00005 a request
    assert cost.per_request_usd == pytest.approx(0.05 * 0.001)
    assert record.budget.paid_usd == 0  # nothing billed by a provider


# ---- quality: inconclusive on few cases, settled on many ----------------------------------------


def two_strategy_suite(folder: Path, n: int, only_a: set[int], only_b: set[int]) -> Path:
    """n cases, all answered right by both strategies except: "rich" (backend a) alone is right on `only_a`
    (b answers "no" there) and "cheap" (backend b) alone is right on `only_b`."""
    rows = [{"id": f"c{i}", "text": f"case {i}", "label": "yes"} for i in range(n)]
    write_jsonl(folder / "data/test.jsonl", rows)
    write_jsonl(folder / "data/train.jsonl", [{"id": f"t{i}", "text": f"train {i}", "label": "yes"} for i in range(3)])
    # A says "yes" except on B's own wins; B says "yes" except on A's own wins
    a_wrong = "|".join(f"case {i}$" for i in sorted(only_b)) or "^$"
    b_wrong = "|".join(f"case {i}$" for i in sorted(only_a)) or "^$"
    suite = {
        "name": "pair",
        "seed": 1,
        "task": {
            "instructions": "Answer yes or no.",
            "input_field": "text",
            "target_field": "label",
            "labels": ["yes", "no"],
        },
        "data": {"train": "data/train.jsonl", "test": "data/test.jsonl"},
        "backends": [
            {
                "name": "a",
                "kind": "fake",
                "model": "toy-model",
                "config": {"rules": [{"pattern": a_wrong, "answer": "no"}], "default": "yes"},
            },
            {
                "name": "b",
                "kind": "fake",
                "model": "toy-model",
                "config": {"rules": [{"pattern": b_wrong, "answer": "no"}], "default": "yes"},
            },
        ],
        "strategies": [
            {"name": "cheap", "kind": "zero_shot", "backend": "b"},
            {"name": "rich", "kind": "few_shot", "backend": "a", "config": {"k": 3, "selection": "random"}},
        ],
        "scorers": [{"kind": "exact_match"}],
        "economics": {"prices": {"toy-model": {"input_per_1m_usd": IN_PRICE, "output_per_1m_usd": OUT_PRICE}}},
        "decision": {"min_gain": 0.02, "monthly_requests": 10_000},
    }
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


def test_a_lead_of_one_case_in_40_is_inconclusive_with_the_cases_needed(tmp_path):
    # 40 cases: "rich" (dearer: exemplars in every prompt) is right alone on 2 cases, "cheap" alone on 1:
    # rich 39/40 = 0.975 against cheap 38/40 = 0.950, a 2.5-point lead McNemar cannot settle (2 against 1).
    path = two_strategy_suite(tmp_path / "s", 40, only_a={3, 17}, only_b={25})
    record, _ = compare(path, CompareOptions(out=tmp_path / "run"))
    d = record.decision
    assert record.strategies["rich"].metrics["exact_match"].mean == pytest.approx(0.975)
    assert d.status == "inconclusive", d.verdict
    assert "more test cases needed" in d.verdict
    more = d.by_volume[0].more_cases
    # The count is for the exact McNemar test at the observed rates (2/40 and 1/40): that many cases in all settle
    # about 80% of simulated runs. The normal approximation, by hand: two +1, one -1, 37 zeros: mean 0.025,
    # sd = sqrt((3 - 40 x 0.025^2) / 39) = 0.27619; ((1.95996 + 0.84162) x 0.27619 / 0.025)^2 = 958 in all.
    settled = settled_share(40 + more, p_win=2 / 40, p_loss=1 / 40, alpha=0.05)
    assert 0.76 <= settled <= 0.88, (more, settled)
    assert abs((40 + more) - 958) < 0.1 * 958


def settled_share(n: int, *, p_win: float, p_loss: float, alpha: float, runs: int = 2000) -> float:
    """Share of simulated runs of n cases at these disagreement rates that the exact McNemar test settles."""
    import numpy as np

    from harness.verdict.paired import mcnemar_exact

    draws = np.random.default_rng(1).multinomial(n, [p_win, p_loss, 1 - p_win - p_loss], size=runs)
    return float(np.mean([mcnemar_exact(int(won), int(lost)) < alpha for won, lost, _ in draws]))


def test_the_same_lead_on_many_cases_is_settled(tmp_path):
    # 4,000 cases: rich right alone on 3% (120), cheap alone on 0.5% (20): a 2.5-point lead, McNemar p << 0.05
    n = 4000
    path = two_strategy_suite(tmp_path / "s", n, only_a=set(range(0, 120)), only_b=set(range(120, 140)))
    record, _ = compare(path, CompareOptions(out=tmp_path / "run"))
    d = record.decision
    assert d.status == "decided", d.verdict
    assert d.winner == "rich"


# ---- estimate and the budget --------------------------------------------------------------------


def test_estimate_prices_the_plan_before_any_call(tmp_path):
    path = write_suite(tmp_path / "s", priced())
    result = harness_cli("estimate", str(path), "--json", home=tmp_path / "home", timeout=120)
    assert result.returncode == 0, result.stderr
    est = json.loads(result.stdout)
    zero = next(s for s in est["strategies"] if s["strategy"] == "zero")
    assert zero["requests"] == 9 and zero["paid"] is True
    # expected: requests x (input x $1 + output x $4) per 1M tokens
    assert zero["inference_usd"] == pytest.approx(
        9 * (round(zero["input_tokens"]) * 1e-6 + round(zero["output_tokens"]) * 4e-6)
    )
    assert zero["inference_usd_max"] >= zero["inference_usd"]
    few = next(s for s in est["strategies"] if s["strategy"] == "few")
    assert few["input_tokens"] > zero["input_tokens"]  # three exemplars in every prompt
    assert est["min_detectable_diff"] > 0
    assert not (tmp_path / "home" / "cache").exists()  # no model was called
    text = harness_cli("estimate", str(path), home=tmp_path / "home", timeout=120)
    assert "minimum detectable difference with 9 test cases" in text.stdout


def test_a_budget_below_the_estimate_refuses_to_start(tmp_path):
    path = write_suite(tmp_path / "s", priced(budget_usd=1e-7))
    result = harness_cli("compare", str(path), "--out", str(tmp_path / "run"), home=tmp_path / "home", timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "budget_usd" in result.stderr and "suite.yaml" in result.stderr and "Fix:" in result.stderr
    assert "Nothing was spent" in result.stderr
    assert not (tmp_path / "run" / "cases.jsonl").exists() or not (tmp_path / "run" / "cases.jsonl").read_text()
    assert harness_cli("estimate", str(path), home=tmp_path / "home", timeout=120).returncode == 2


def test_paid_calls_stop_at_the_budget_and_a_larger_budget_finishes_without_paying_twice(tmp_path):
    # Long answers (the estimate expects answers as short as the targets): the run passes the estimate (about
    # $0.002 for 60 cases) but the real spend (about $0.0002 a case) reaches the cap. No call is sent that could
    # take spend past it.
    suite = priced(budget_usd=0.005)
    suite["backends"][0]["config"]["default"] = " ".join(["word"] * 40)
    suite["backends"][0]["generation"] = {"max_new_tokens": 64}
    suite["strategies"] = [{"name": "zero", "kind": "zero_shot", "backend": "fake"}]
    path = write_suite(tmp_path / "s", suite, n_test=60)
    record, run = compare(path, CompareOptions(out=tmp_path / "run"))
    paid = sum(r["cost_usd"] for r in cases(tmp_path / "run"))
    assert 0.004 < paid <= 0.005
    assert record.budget.paid_usd == pytest.approx(paid)
    skipped = record.budget.skipped["zero"]
    assert skipped > 0 and record.strategies["zero"].n_done == 60 - skipped
    assert record.status == "incomplete"
    first_calls = run.counts.model_calls

    suite["budget_usd"] = 1.0
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    record, run = compare(path, CompareOptions(out=tmp_path / "run"))
    assert record.status == "complete" and record.strategies["zero"].n_done == 60
    assert run.counts.model_calls == skipped  # only the calls the cap held back
    assert first_calls + run.counts.model_calls == 60


# ---- CI gates --------------------------------------------------------------------------------------


def test_fail_under_and_the_ci_files(tmp_path):
    path = write_suite(tmp_path / "s", priced())
    home = tmp_path / "home"
    ok = harness_cli(
        "compare",
        str(path),
        "--out",
        str(tmp_path / "run"),
        "--fail-under",
        "label_accuracy=0.5",
        "--json",
        str(tmp_path / "ci.json"),
        "--junit",
        str(tmp_path / "junit.xml"),
        home=home,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    summary = json.loads((tmp_path / "ci.json").read_text())
    assert summary["passed"] is True and summary["checks"][0]["passed"] is True
    assert summary["strategies"]["zero"]["mean"] == pytest.approx(6 / 9)
    root = ET.parse(tmp_path / "junit.xml").getroot()
    suite = root.find("testsuite")
    assert suite.get("failures") == "0" and int(suite.get("tests")) == 3  # the gate and one per strategy

    failed = harness_cli(
        "compare",
        str(path),
        "--out",
        str(tmp_path / "run"),
        "--fail-under",
        "few:label_accuracy=0.9",
        "--junit",
        str(tmp_path / "junit.xml"),
        home=home,
        timeout=120,
    )
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "FAIL: few: label_accuracy >= 0.9" in failed.stdout
    root = ET.parse(tmp_path / "junit.xml").getroot()
    assert root.find("testsuite").get("failures") == "1"
    assert root.find(".//failure") is not None


def test_a_bad_gate_is_refused_before_any_call(tmp_path):
    path = write_suite(tmp_path / "s", priced())
    result = harness_cli(
        "compare",
        str(path),
        "--out",
        str(tmp_path / "run"),
        "--fail-under",
        "accuracy=0.5",
        home=tmp_path / "home",
        timeout=120,
    )
    assert result.returncode == 2
    assert "no scorer named 'accuracy'" in result.stderr and "label_accuracy" in result.stderr
    assert not (tmp_path / "run").exists()


def test_a_regression_against_a_saved_run_fails_ci(tmp_path):
    home = tmp_path / "home"
    suite = priced()
    baseline = write_suite(tmp_path / "s", suite, n_test=90)
    assert (
        harness_cli("compare", str(baseline), "--out", str(tmp_path / "before"), home=home, timeout=120).returncode == 0
    )
    # the model gets worse: it no longer knows beta (a third of the cases)
    suite["backends"][0]["config"]["rules"] = [{"pattern": "about alpha", "answer": "alpha"}]
    baseline.write_text(yaml.safe_dump(suite, sort_keys=False))
    result = harness_cli(
        "compare",
        str(baseline),
        "--out",
        str(tmp_path / "after"),
        "--baseline",
        str(tmp_path / "before"),
        home=home,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL: zero: no regression" in result.stdout
    # the same run against itself passes
    same = harness_cli(
        "compare",
        str(baseline),
        "--out",
        str(tmp_path / "after"),
        "--baseline",
        str(tmp_path / "after"),
        home=home,
        timeout=120,
    )
    assert same.returncode == 0, same.stdout + same.stderr


def test_the_decision_recomputes_from_run_json_alone(tmp_path):
    """What the report's what-if does: the same functions over run.json give the run's decision back, and
    another volume changes the monthly figures."""
    from harness.suite.schema import DecisionSpec
    from harness.verdict.decide import decide, decide_run, options_from_summaries

    suite = priced(decision={"monthly_requests": 20_000})
    compare(write_suite(tmp_path / "s", suite), CompareOptions(out=tmp_path / "run"))
    record = read_run(tmp_path / "run")  # nothing but the run folder from here on
    resolved = record.suite
    again = decide_run(resolved, record.strategies, record.decision.pairs, prices=record.prices)
    assert again == record.decision  # verdict, rankings, tipping points and uncertainty alike
    assert again.tipping  # the tipping search ran on the stored summaries too
    kinds = {s.name: s.kind for s in resolved.strategies}
    options = options_from_summaries(record.strategies, kinds, record.primary_metric, policy=resolved.decision)
    bigger = decide(
        options, record.decision.pairs, DecisionSpec(monthly_requests=2_000_000), metric=record.primary_metric
    )
    zero = next(r for r in bigger.by_volume[0].ranking if r.strategy == "zero")
    before = next(r for r in record.decision.by_volume[0].ranking if r.strategy == "zero")
    assert zero.monthly_usd == pytest.approx(before.monthly_usd * 100)  # no setup: cost scales with volume


def test_a_baseline_with_nothing_to_compare_is_a_usage_error_and_ci_files_get_their_folders(tmp_path):
    home = tmp_path / "home"
    path = write_suite(tmp_path / "s", priced())
    assert harness_cli("compare", str(path), "--out", str(tmp_path / "before"), home=home, timeout=120).returncode == 0
    other = priced()
    other["strategies"] = [{"name": "renamed", "kind": "zero_shot", "backend": "fake"}]
    other_path = write_suite(tmp_path / "o", other)
    result = harness_cli(
        "compare",
        str(other_path),
        "--out",
        str(tmp_path / "after"),
        "--baseline",
        str(tmp_path / "before"),
        "--json",
        str(tmp_path / "ci" / "deep" / "out.json"),
        home=home,
        timeout=120,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "none of its strategies (zero, few) is in this run (renamed)" in result.stderr
    assert (tmp_path / "ci" / "deep").is_dir()  # the folder for --json was made before the run
