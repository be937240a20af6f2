"""`harness init --from-promptfoo` and `--from-lm-eval`: a promptfoo config and lm-eval task files (tests/fixtures,
written in those tools' documented formats) become suites that validate and run on the fake backend; what does not
map is listed; templates harness cannot convert, hub datasets and missing files are refused with file:line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml
from typer.testing import CliRunner

from harness.cli import app
from harness.run.compare import CompareOptions, compare
from harness.suite.load import load_suite
from tests.conftest import REPO, run_json

PROMPTFOO = REPO / "tests" / "fixtures" / "promptfoo"
LM_EVAL = REPO / "tests" / "fixtures" / "lm_eval"


def harness(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def assert_refused(result, *expected: str) -> None:
    """Exit 2 with the message and a fix on stderr, not a traceback."""
    assert result.exit_code == 2, f"exit {result.exit_code}\n{result.output}"
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    missing = [e for e in expected if e not in result.stderr]
    assert not missing, f"missing {missing} in:\n{result.stderr}"
    assert "Fix" in result.stderr, result.stderr


def run_on_fake(suite_path: Path, out: Path, **fake_config) -> dict:
    """The converted suite with its backend swapped for a scripted fake of the same name, compared; run.json."""
    suite = yaml.safe_load(suite_path.read_text(encoding="utf-8"))
    name = suite["backends"][0]["name"]
    suite["backends"] = [{"name": name, "kind": "fake", "config": fake_config}]
    suite_path.write_text(yaml.safe_dump(suite, sort_keys=False), encoding="utf-8")
    compare(suite_path, CompareOptions(out=out))
    return run_json(out)


def means(run: dict) -> dict[str, dict[str, float]]:
    return {s: {m: v["mean"] for m, v in r["metrics"].items()} for s, r in run["strategies"].items()}


def cases(folder: Path, split: str = "test") -> list[dict]:
    return [json.loads(x) for x in (folder / "data" / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]


# ---- promptfoo ---------------------------------------------------------------------------------------------------


def test_a_promptfoo_config_becomes_a_suite_that_runs_and_lists_what_did_not_map(tmp_path: Path) -> None:
    target = tmp_path / "capitals"
    result = harness("init", target, "--from-promptfoo", PROMPTFOO / "promptfooconfig.yaml")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"harness validate {target / 'suite.yaml'}" in out
    # each unmappable assertion is named with where it is written and why
    assert "tests[1] assert[1] (not-contains): harness scorers have no negated form" in out
    assert "tests.csv:2 __expected2 (similar)" in out
    assert "defaultTest.assert[0] (javascript): harness runs no JavaScript" in out
    assert out.count("(javascript)") == 1  # defaultTest's assertion is listed once, not once per test
    assert "providers (openai:gpt-4o-mini)" in out

    loaded = load_suite(target)
    assert loaded.suite.task.prompt_template == "What is the capital of {country}? Answer with the city's name only."
    assert [(s.name, s.prompt_template) for s in loaded.suite.strategies] == [
        ("zero_shot", None),
        ("terse", "Q: {country}? A:"),
    ]
    # inline tests, then the CSV's rows; the icontains value is each case's target
    assert [(c["country"], c["target"]) for c in cases(target)] == [
        ("France", "Paris"),
        ("Japan", "Tokyo"),
        ("Italy", "Rome"),
        ("Spain", "Madrid"),
        ("Peru", "Lima"),
    ]
    assert [(s.label, s.kind, s.config) for s in loaded.suite.scorers] == [("icontains", "includes", {})]

    run = run_on_fake(
        target / "suite.yaml",
        tmp_path / "run",
        rules=[{"pattern": "France", "answer": "Paris."}, {"pattern": "Japan", "answer": "It is TOKYO"}],
        default="no idea",
    )
    assert means(run) == {"zero_shot": {"icontains": 0.4}, "terse": {"icontains": 0.4}}

    readme = (target / "README.md").read_text(encoding="utf-8")
    assert str((PROMPTFOO / "promptfooconfig.yaml").resolve()) in readme and "tests.csv" in readme
    assert "## Not mapped" in readme and "(not-contains)" in readme


def test_form_checks_and_a_rubric_map_onto_regex_python_and_model_graded_scorers(tmp_path: Path) -> None:
    target = tmp_path / "json"
    result = harness("init", target, "--from-promptfoo", PROMPTFOO / "json_and_rubric.yaml")
    assert result.exit_code == 0, result.output
    loaded = load_suite(target)
    # the JSON braces in the prompt stay literal text; the var is filled in
    assert loaded.dataset.test[0].input == 'Describe a banana as a JSON object like {"name": ..., "colour": ...}.'
    scorers = {s.label: (s.kind, s.config) for s in loaded.suite.scorers}
    assert scorers == {
        "regex": ("regex", {"pattern": '"name"'}),
        "is-json": ("python", {"function": "graders.py:is_json", "binary": True}),
        "llm-rubric": (
            "model_graded",
            {"judge": "local", "rubric": "Names the colour of the item", "scale": [0, 1], "reference": False},
        ),
    }
    grade = json.dumps({"reason": "scripted", "score": 1})
    run = run_on_fake(
        target / "suite.yaml",
        tmp_path / "run",
        rules=[{"pattern": "Answer to grade", "answer": grade}],
        default='{"name": "banana", "colour": "yellow"}',
    )
    assert means(run) == {"zero_shot": {"regex": 1.0, "is-json": 1.0, "llm-rubric": 1.0}}
    # the placeholder target says there was none, and the README says so too
    assert {c["target"] for c in cases(target)} == {"(no expected value in the promptfoo test)"}
    assert "placeholder" in (target / "README.md").read_text(encoding="utf-8")


def test_a_config_of_unknown_assertions_still_converts_with_notes(tmp_path: Path) -> None:
    target = tmp_path / "haiku"
    result = harness("init", target, "--from-promptfoo", PROMPTFOO / "unmapped_only.yaml")
    assert result.exit_code == 0, result.output
    assert "tests[0] assert[0] (javascript)" in result.stdout
    assert "tests[1] assert[0] (latency)" in result.stdout
    assert "no assertion maps onto a harness scorer" in result.stdout
    load_suite(target)  # still a valid suite, to edit


def test_bad_promptfoo_input_is_refused_with_file_line_and_field(tmp_path: Path) -> None:
    js = tmp_path / "promptfooconfig.js"
    js.write_text("module.exports = {prompts: []};\n")
    assert_refused(harness("init", tmp_path / "s", "--from-promptfoo", js), "unknown file type '.js'", str(js))
    assert_refused(
        harness("init", tmp_path / "s", "--from-promptfoo", PROMPTFOO / "filter_prompt.yaml"),
        f"{PROMPTFOO / 'filter_prompt.yaml'}:2: prompts[0]: uses a Nunjucks filter ('{{{{ text | upper }}}}')",
    )
    assert not (tmp_path / "s").exists()  # nothing half-written
    both = harness(
        "init", tmp_path / "s", "--from-promptfoo", PROMPTFOO / "json_and_rubric.yaml", "--from-lm-eval", "t.yaml"
    )
    assert_refused(both, "exactly one of")


def test_an_existing_suite_is_kept_unless_forced(tmp_path: Path) -> None:
    target = tmp_path / "s"
    assert harness("init", target, "--from-promptfoo", PROMPTFOO / "unmapped_only.yaml").exit_code == 0
    assert_refused(harness("init", target, "--from-promptfoo", PROMPTFOO / "json_and_rubric.yaml"), "--force")
    forced = harness("init", target, "--from-promptfoo", PROMPTFOO / "json_and_rubric.yaml", "--force")
    assert forced.exit_code == 0 and (target / "graders.py").is_file()


# ---- lm-eval -----------------------------------------------------------------------------------------------------


def test_a_multiple_choice_task_becomes_a_labelled_suite_with_few_shot(tmp_path: Path) -> None:
    target = tmp_path / "sentiment"
    result = harness("init", target, "--from-lm-eval", LM_EVAL / "sentiment.yaml")
    assert result.exit_code == 0, result.output
    assert "metric_list[2] (mcc)" in result.stdout and "metric_list[1] (acc_norm)" in result.stdout
    loaded = load_suite(target)
    task = loaded.suite.task
    assert task.labels == ["negative", "positive"]
    assert task.prompt_template == "Review: {text}\nSentiment:"
    assert task.instructions == "Classify the sentiment of each review. Answer with exactly one of: {labels}."
    assert [(s.name, s.kind, s.config) for s in loaded.suite.strategies] == [
        ("zero_shot", "zero_shot", {}),
        ("few_shot", "few_shot", {"k": 2, "selection": "random"}),
    ]
    assert (len(loaded.dataset.train), len(loaded.dataset.dev), len(loaded.dataset.test)) == (4, 2, 4)
    # the target index became the choice's text, next to the original fields
    assert cases(target)[0] == {"id": "test-1", "text": "Charming, funny and warm.", "label": 1, "target": "positive"}
    run = run_on_fake(
        target / "suite.yaml",
        tmp_path / "run",
        rules=[{"pattern": "Charming", "answer": "positive"}],
        default="negative",
    )
    assert means(run) == {"zero_shot": {"acc": 0.75}, "few_shot": {"acc": 0.75}}
    readme = (target / "README.md").read_text(encoding="utf-8")
    assert str((LM_EVAL / "sentiment.yaml").resolve()) in readme and "log-likelihood" in readme


def test_a_generate_until_task_maps_its_generation_settings_and_metrics(tmp_path: Path) -> None:
    target = tmp_path / "capitals"
    result = harness("init", target, "--from-lm-eval", LM_EVAL / "capitals.yaml")
    assert result.exit_code == 0, result.output
    assert "metric_list[2] (ter)" in result.stdout and "target_delimiter" in result.stdout
    loaded = load_suite(target)
    generation = loaded.suite.backends[0].generation
    assert (generation.stop, generation.max_new_tokens, generation.temperature) == (["\n", "Question:"], 24, 0.0)
    assert [c["target"] for c in cases(target)] == ["Rome", "Madrid", "Lima", "Nairobi"]  # {{ answer.city }}
    assert {s.label: s.config for s in loaded.suite.scorers} == {
        "exact_match": {"case_sensitive": False, "keep_punctuation": False},  # ignore_case, ignore_punctuation
        "bleu": {},
    }
    run = run_on_fake(
        target / "suite.yaml",
        tmp_path / "run",
        rules=[{"pattern": "Italy", "answer": "Rome"}, {"pattern": "Spain", "answer": "madrid."}],
        default="no idea",
    )
    assert {s: m["exact_match"] for s, m in means(run).items()} == {"zero_shot": 0.5, "few_shot": 0.5}


def task_variant(tmp_path: Path, old: str, new: str, source: str = "capitals.yaml") -> Path:
    """A copy of a fixture task (with its data) in which `old` is replaced by `new`."""
    folder = tmp_path / "task"
    shutil.copytree(LM_EVAL, folder)
    path = folder / source
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def line_with(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), start=1) if needle in line)


def test_jinja_beyond_plain_substitution_is_refused_with_file_line_and_field(tmp_path: Path) -> None:
    statement = task_variant(tmp_path / "a", "Question: What is", "{% if country %}Question: What is")
    assert_refused(
        harness("init", tmp_path / "s", "--from-lm-eval", statement),
        f"{statement}:{line_with(statement, '{% if')}: doc_to_text: uses a Jinja statement ('{{% if country %}}')",
    )
    filtered = task_variant(tmp_path / "b", '"{{ answer.city }}"', '"{{ answer.city | upper }}"')
    assert_refused(
        harness("init", tmp_path / "s", "--from-lm-eval", filtered),
        f"{filtered}:{line_with(filtered, 'doc_to_target')}: doc_to_target: uses a Jinja filter "
        "('{{ answer.city | upper }}')",
    )
    function = task_variant(tmp_path / "c", 'doc_to_target: "{{ answer.city }}"', "doc_to_target: !function u.x")
    assert_refused(harness("init", tmp_path / "s", "--from-lm-eval", function), "doc_to_target: is a Python function")
    assert not (tmp_path / "s").exists()


def test_data_that_is_not_local_or_not_there_is_refused(tmp_path: Path) -> None:
    hub = task_variant(tmp_path / "a", "dataset_path: json", "dataset_path: super_glue")
    assert_refused(
        harness("init", tmp_path / "s", "--from-lm-eval", hub),
        f"{hub}:{line_with(hub, 'dataset_path')}: dataset_path: HF_HUB_OFFLINE=1 is set and the dataset "
        "'super_glue' is not in the local Hugging Face cache",
        "dataset_path: json",
    )
    missing = task_variant(tmp_path / "b", "data/capitals_test.jsonl", "data/nowhere.jsonl")
    assert_refused(
        harness("init", tmp_path / "s", "--from-lm-eval", missing),
        f"{missing}:{line_with(missing, 'nowhere')}: dataset_kwargs.data_files.test: data file 'data/nowhere.jsonl' "
        "not found",
    )
    assert_refused(
        harness("init", tmp_path / "s", "--from-lm-eval", LM_EVAL / "data" / "capitals_test.jsonl"),
        "unknown file type '.jsonl'",
    )


def test_promptfoo_values_and_default_tests_kept_in_files(tmp_path: Path) -> None:
    (tmp_path / "paris.txt").write_text("Paris", encoding="utf-8")
    config = {
        "prompts": ["Capital of {{country}}?"],
        "defaultTest": "file://defaults.yaml",
        "tests": [
            {"vars": {"country": "France"}, "assert": [{"type": "equals", "value": "file://paris.txt"}]},
            {"vars": {"country": "Japan"}, "assert": [{"type": "equals", "value": "Tokyo"}]},
        ],
    }
    (tmp_path / "promptfooconfig.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    result = harness("init", tmp_path / "s", "--from-promptfoo", tmp_path / "promptfooconfig.yaml")
    assert result.exit_code == 0, result.output
    assert [c["target"] for c in cases(tmp_path / "s")] == ["Paris", "Tokyo"]  # the file's text, not its path
    assert "defaultTest: file://defaults.yaml" in result.output  # not read: listed, never dropped quietly
