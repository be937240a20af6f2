"""A strategy's own prompt (instructions, template): what it sends, what it costs, what it trains on."""

from __future__ import annotations

import json

import pytest

from harness.run.compare import CompareOptions, compare
from harness.suite.load import load_suite
from tests.conftest import assert_refused, base_suite, harness_cli, write_suite

GUIDE = "Pick one of: {labels}. " + "Read the labelling guide with care before you answer. " * 20


def suite_with_own_prompts() -> dict:
    suite = base_suite()
    suite["task"]["instructions"] = GUIDE  # a long guide the prompted strategies carry on every request
    suite["backends"][0]["model"] = "toy-model"
    suite["economics"] = {"prices": {"toy-model": {"input_per_1m_usd": 1.0, "output_per_1m_usd": 4.0}}}
    suite["strategies"] = [
        {"name": "guided", "kind": "zero_shot"},
        {"name": "short", "kind": "zero_shot", "instructions": "Label it."},
        {"name": "bare", "kind": "zero_shot", "instructions": ""},
        {"name": "templated", "kind": "few_shot", "prompt_template": "Request: {text}", "config": {"k": 3}},
    ]
    return suite


@pytest.fixture
def run(tmp_path):
    path = write_suite(tmp_path / "s", suite_with_own_prompts())
    record, _ = compare(path, CompareOptions(out=tmp_path / "run"))
    lines = [json.loads(x) for x in (tmp_path / "run" / "cases.jsonl").read_text().splitlines()]
    return path, record, {(r["strategy"], r["case_id"]): r for r in lines}


def test_each_strategy_sends_its_own_instructions_and_pays_only_for_them(run):
    _, record, lines = run
    guided, short, bare = (lines[(name, "test-0")] for name in ("guided", "short", "bare"))
    assert guided["prompt"].startswith("[system] Pick one of: alpha, beta, gamma. Read the labelling guide")
    assert short["prompt"].startswith("[system] Label it.\n[user] ")
    assert bare["prompt"].startswith("[user] ")  # no instructions: no system turn at all
    assert guided["tokens"]["instructions"] > 100 > short["tokens"]["instructions"] > 0
    assert "instructions" not in bare["tokens"]
    per_request = {name: record.strategies[name].cost.per_request_usd for name in ("guided", "short", "bare")}
    assert per_request["guided"] > 4 * per_request["short"] > 4 * per_request["bare"] * 0.9
    part = record.strategies["guided"].cost.per_request_by_part_usd["instructions"]
    assert part == pytest.approx(record.strategies["guided"].tokens_mean["instructions"] * 1e-6)


def test_a_strategys_own_template_renders_its_exemplars_and_cases_from_the_row(run):
    _, _, lines = run
    templated = lines[("templated", "test-0")]["prompt"]
    user_turns = [line for line in templated.split("\n") if line.startswith("[user]")]
    assert len(user_turns) == 4 and all(turn.startswith("[user] Request: ") for turn in user_turns)
    assert lines[("guided", "test-0")]["prompt"].endswith("[user] test request number 0 about alpha")


def test_the_estimate_counts_each_strategys_own_prompt(run, tmp_path):
    path, _, _ = run
    result = harness_cli("estimate", str(path), "--json", home=tmp_path / "home")
    assert result.returncode == 0, result.stderr
    tokens = {s["strategy"]: s["input_tokens"] for s in json.loads(result.stdout)["strategies"]}
    assert tokens["guided"] > tokens["short"] + 100 > tokens["bare"] + 100


def test_a_fine_tune_trains_on_exactly_the_prompt_it_is_served_with(tmp_path):
    suite = suite_with_own_prompts()
    suite["strategies"] = [{"name": "ft", "kind": "finetune", "instructions": "Label it."}]
    loaded = load_suite(write_suite(tmp_path / "s", suite))
    from harness.builtins import BACKENDS, STRATEGIES
    from harness.strategy import StrategyContext

    spec = loaded.suite.strategies[0]
    backend_spec = loaded.suite.backends[0]
    backend = BACKENDS.get(backend_spec.kind)(backend_spec, loaded.config("backends", backend_spec.name))
    ctx = StrategyContext(loaded.suite.for_strategy(spec), loaded.dataset, backend, tmp_path / "run", 7)
    strategy = STRATEGIES.get("finetune")(spec, loaded.config("strategies", "ft"), ctx)
    _, examples = strategy.make_tuner()
    served = strategy.request(loaded.dataset.train[0]).messages
    assert examples[0].prompt == served and served[0] == {"role": "system", "content": "Label it."}


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ({"prompt_template": "Request: {txt}"}, ["strategies[1].prompt_template", "'txt'", "Did you mean 'text'"]),
        ({"prompt_template": "Request: {text"}, ["strategies[1].prompt_template", "'{'"]),
        ({"instructions": 3}, ["strategies[1].instructions"]),
    ],
)
def test_a_bad_strategy_prompt_is_refused_naming_the_field(tmp_path, override, words):
    suite = base_suite()
    suite["strategies"][1].update(override)
    path = write_suite(tmp_path / "s", suite)
    assert_refused(harness_cli("validate", str(path), home=tmp_path / "home"), *words)
