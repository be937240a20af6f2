"""The answer-finding scorers (includes, regex, numeric) and your own grading function (python), on scripted
answers; the suite checks that refuse a bad pattern, tolerance or grading file; and a run whose grading function
fails on one case."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.builtins import SCORERS
from harness.errors import ConfigError
from harness.run.compare import CompareOptions, compare
from harness.run.plan import suite_fingerprint
from harness.scoring.python_code import PythonConfig
from harness.suite.data import Case
from harness.suite.load import load_suite
from harness.suite.schema import ScorerSpec, TaskSpec
from tests.conftest import assert_refused, base_suite, harness_cli, write_suite

TASK = TaskSpec(instructions="x")


def scorer(kind, **config):
    cls = SCORERS.get(kind)
    return cls(ScorerSpec(kind=kind, config=config), cls.Config.model_validate(config), TASK)


def case(target, **metadata):
    return Case(id="c", input="q", target=target, metadata=metadata)


# ---- includes ------------------------------------------------------------------------------------------------


def test_includes_finds_the_target_inside_a_longer_answer():
    s = scorer("includes")
    assert s.score("The capital of France is Paris, of course.", case("Paris")).value == 1
    assert s.score("It is Lyon.", case("Paris")).value == 0
    assert s.score("It is in Saint Paris-Ouest", case("saint paris")).value == 1  # several words, in order


def test_includes_matches_whole_words_only():
    s = scorer("includes")
    assert s.score("concatenate the strings", case("cat")).value == 0
    assert s.score("the cat sat", case("cat")).value == 1
    assert s.score("cat", case("cat")).value == 1  # at both ends of the answer
    assert s.score("the cats sat", case("cat")).value == 0


def test_includes_normalises_case_and_punctuation_like_exact_match():
    s = scorer("includes")
    assert s.score("ANSWER: NEW-YORK!", case("new york")).value == 1
    assert scorer("includes", case_sensitive=True).score("ANSWER: NEW YORK", case("new york")).value == 0
    strict = scorer("includes", keep_punctuation=True)
    assert strict.score("It is U.S.A. based", case("U.S.A.")).value == 1
    assert strict.score("It is USA based", case("U.S.A.")).value == 0


def test_includes_keeps_unicode_letters():
    s = scorer("includes")
    assert s.score("Sie wohnt in ZÜRICH.", case("Zürich")).value == 1
    assert s.score("Sie wohnt in Zurich.", case("Zürich")).value == 0
    assert s.score("首都は 東京 です", case("東京")).value == 1
    assert s.score("I flew to 東京, then home.", case("東京")).value == 1
    assert s.score("I flew to 京都.", case("東京")).value == 0


def test_includes_scores_an_empty_answer_0_and_never_matches_an_empty_reference():
    s = scorer("includes", references_field="aliases")
    assert s.score("", case("Paris")).value == 0
    assert s.score("   ", case("Paris")).value == 0
    # a reference that normalises to nothing (only punctuation) is found nowhere, not everywhere
    assert s.score("anything at all", case("Paris", aliases=["?!"])).value == 0


def test_includes_accepts_any_reference():
    s = scorer("includes", references_field="aliases")
    row = case("United Kingdom", aliases=["UK", "Britain"])
    found = s.score("They moved to Britain in 1990.", row)
    assert found.value == 1 and found.detail["found"] == "Britain"
    assert s.score("They moved to the UK.", row).value == 1
    assert s.score("They moved to France.", row).value == 0
    assert s.score("Ukulele lessons", row).value == 0  # 'uk' only as a whole word
    assert scorer("includes").score("They moved to Britain.", row).value == 0  # references only when asked
    assert s.score("in the UK", case("United Kingdom", aliases="UK")).value == 1  # one reference as a string


# ---- regex ---------------------------------------------------------------------------------------------------


def test_regex_without_a_group_scores_whether_the_pattern_matches():
    s = scorer("regex", pattern=r"\bSELECT\b.*\bFROM\b")
    hit = s.score("SELECT name FROM users", case("ignored"))
    assert hit.value == 1 and not hit.invalid and hit.detail["match"] == "SELECT name FROM"
    miss = s.score("select name from users", case("ignored"))
    assert miss.value == 0 and not miss.invalid  # no group: a miss is simply wrong
    assert (
        scorer("regex", pattern=r"\bSELECT\b.*\bFROM\b", flags=["ignorecase"]).score("select * from t", case("x")).value
        == 1
    )


def test_regex_flags_multiline_and_dotall():
    text = "Reasoning first.\nAnswer: yes\nDone"
    assert scorer("regex", pattern=r"^Answer: yes$").score(text, case("x")).value == 0
    assert scorer("regex", pattern=r"^Answer: yes$", flags=["multiline"]).score(text, case("x")).value == 1
    assert scorer("regex", pattern=r"first\..Answer").score(text, case("x")).value == 0
    assert scorer("regex", pattern=r"first\..Answer", flags=["dotall"]).score(text, case("x")).value == 1
    assert scorer("regex", pattern="answer", flags="ignorecase").score(text, case("x")).value == 1  # one flag


def test_regex_group_is_compared_with_the_target_after_normalising():
    s = scorer("regex", pattern=r"Answer:\s*(.+)", group=1)
    right = s.score("Let me think.\nAnswer: Paris.", case("paris"))
    assert right.value == 1 and right.detail["match"] == "Paris."
    wrong = s.score("Answer: Lyon", case("Paris"))
    assert wrong.value == 0 and not wrong.invalid and wrong.detail["match"] == "Lyon"
    unread = s.score("I think it is Paris", case("Paris"))  # the answer is not in the expected form
    assert unread.value == 0 and unread.invalid and unread.detail == {"match": None}
    exact = scorer("regex", pattern=r"Answer:\s*(.+)", group=1, case_sensitive=True)
    assert exact.score("Answer: paris", case("Paris")).value == 0


def test_regex_group_by_name_and_references():
    s = scorer("regex", pattern=r"city=(?P<city>\w+)", group="city", references_field="aliases")
    row = case("Munich", aliases=["München"])
    assert s.score("country=DE city=München", row).value == 1
    assert s.score("city=munich", row).value == 1
    assert s.score("city=Berlin", row).value == 0
    optional = scorer("regex", pattern=r"answer(?:: (\w+))?", group=1)
    missing = optional.score("answer", case("x"))  # matched, but the group took no part
    assert missing.value == 0 and missing.invalid


@pytest.mark.parametrize(
    ("config", "where", "words"),
    [
        ({"pattern": "(unclosed"}, "pattern", "not a valid regular expression"),
        ({"pattern": "a(b)", "group": 2}, "group", "group 2 does not exist"),
        ({"pattern": "(?P<x>a)", "group": "y"}, "group", "no group named 'y'"),
        ({"pattern": "a", "flags": ["verbose"]}, "flags", "ignorecase"),
    ],
)
def test_a_bad_pattern_or_group_is_refused_when_the_suite_loads(tmp_path, config, where, words):
    suite = base_suite()
    suite["scorers"].append({"kind": "regex", "config": config})
    with pytest.raises(ConfigError) as err:
        load_suite(write_suite(tmp_path / "s", suite))
    assert f"scorers[2].config.{where}" in str(err.value) and words in str(err.value), err.value
    assert "Fix" in str(err.value) or "Allowed" in str(err.value)


def test_harness_validate_refuses_an_invalid_regex_naming_the_field(tmp_path):
    suite = base_suite()
    suite["scorers"].append({"kind": "regex", "config": {"pattern": "Answer: ([A-D]"}})
    result = harness_cli("validate", str(write_suite(tmp_path / "s", suite)), home=tmp_path / "home", timeout=60)
    assert_refused(result, "suite.yaml:", "scorers[2].config.pattern", "not a valid regular expression")


# ---- numeric -------------------------------------------------------------------------------------------------


def test_numeric_compares_the_first_number_of_each():
    s = scorer("numeric")
    right = s.score("The total is 42 apples (and 3 pears).", case("42"))
    assert right.value == 1 and right.detail == {"answer_number": 42.0, "target_number": 42.0}
    assert s.score("43", case("42")).value == 0
    assert s.score("42.0", case("The answer is 42")).value == 1


def test_numeric_reads_numbers_as_people_write_them():
    s = scorer("numeric")
    assert s.score("It cost $1,234,567.89 in total", case("1234567.89")).value == 1
    assert s.score("-1,234.5", case("-1234.5")).value == 1
    assert s.score("about 1e-3 of it", case("0.001")).value == 1
    assert s.score("2.5E3", case("2500")).value == 1
    assert s.score("+3 degrees", case("3")).value == 1
    assert s.score(".5", case("0.5")).value == 1
    assert s.score("−7", case("-7")).value == 1  # the minus sign U+2212
    assert s.score("It fell to -12 overnight", case("12")).value == 0  # the sign counts
    assert s.score("COVID-19", case("19")).value == 1  # a hyphen in a word is no minus sign
    # commas group thousands only in threes: '1,2345' is 1 followed by 2345, not 12345
    assert s.score("1,2345", case("12345")).value == 0


def test_numeric_tolerances_absolute_and_relative():
    assert scorer("numeric", abs_tol=0.1).score("1.1", case("1.0")).value == 1  # the bound is included
    assert scorer("numeric", abs_tol=0.1).score("1.2", case("1.0")).value == 0
    rel = scorer("numeric", rel_tol=0.05)
    assert rel.score("104", case("100")).value == 1
    assert rel.score("106", case("100")).value == 0
    assert rel.score("-0.0104", case("-0.01")).value == 1  # relative to |target|
    either = scorer("numeric", abs_tol=1, rel_tol=0.01)
    assert either.score("1001", case("1000")).value == 1
    assert either.score("1009", case("1000")).value == 1
    assert either.score("1011", case("1000")).value == 0


def test_numeric_without_a_number_in_the_answer_is_invalid_and_in_the_target_unscored():
    s = scorer("numeric")
    invalid = s.score("I cannot say.", case("42"))
    assert invalid.value == 0 and invalid.invalid and invalid.detail["answer_number"] is None
    unscored = s.score("42", case("forty-two"))
    assert unscored.value is None and "no number in the target" in unscored.detail["error"]


def test_numeric_takes_the_best_reference():
    s = scorer("numeric", references_field="also")
    row = case("100", also=["1e2", "250"])
    found = s.score("250", row)
    assert found.value == 1 and found.detail == {"answer_number": 250.0, "target_number": 250.0}
    missed = s.score("7", row)
    assert missed.value == 0 and missed.detail["target_number"] == 100.0
    assert s.score("5", case("none", also=["5"])).value == 1  # the target has no number, a reference has


def test_a_negative_tolerance_is_refused_naming_the_field(tmp_path):
    suite = base_suite()
    suite["scorers"].append({"kind": "numeric", "config": {"rel_tol": -0.1}})
    with pytest.raises(ConfigError) as err:
        load_suite(write_suite(tmp_path / "s", suite))
    assert "scorers[2].config.rel_tol" in str(err.value) and "greater than or equal to 0" in str(err.value)


# ---- python --------------------------------------------------------------------------------------------------

GRADER = """
def grade(answer, case):
    if case["id"] == "test-4":
        raise ValueError("cannot grade this one")
    return answer == case["target"]


def partial(answer, case):
    return len(set(answer) & set(case["target"])) / len(set(case["target"]))


def explained(answer, case):
    return 0.25, {"fields": sorted(case), "text": case["text"]}


def remark(answer, case):
    return (1, "looks right")


def odd(answer, case):
    return {"nan": float("nan"), "text": "1", "none": None, "pair": (1, 2)}[answer]
"""


def python_suite(folder: Path, function: str = "scoring.py:grade", source: str | None = GRADER, **config) -> Path:
    suite = base_suite()
    suite["scorers"].append({"kind": "python", "config": {"function": function, **config}})
    path = write_suite(folder, suite)
    if source is not None:
        (folder / "scoring.py").write_text(source, encoding="utf-8")
    return path


def bound(tmp_path: Path, function: str, **config):
    """The python scorer as a run builds it: its file bound at load, relative to the suite's folder."""
    loaded = load_suite(python_suite(tmp_path / "s", function, **config))
    spec = loaded.suite.scorers[-1]
    return SCORERS.get("python")(spec, loaded.config("scorers", spec.label), loaded.suite.task)


def row(target="alpha", id="c", **fields):
    return Case(id=id, input="q", target=target, metadata={"text": "about alpha", **fields})


def test_python_scorer_takes_numbers_bools_and_pairs(tmp_path):
    assert bound(tmp_path, "scoring.py:partial").score("alp", row()).value == pytest.approx(3 / 4)
    s = bound(tmp_path, "scoring.py:grade")
    assert s.score("alpha", row()).value == 1.0 and s.score("beta", row()).value == 0.0  # bools count as 1 and 0
    assert s.binary is False  # not known in advance: graded unless the suite says binary
    pair = bound(tmp_path, "scoring.py:explained").score("x", row(difficulty="hard"))
    assert pair.value == 0.25
    assert pair.detail == {"fields": ["difficulty", "id", "input", "target", "text"], "text": "about alpha"}
    assert bound(tmp_path, "scoring.py:remark").score("x", row()).detail == {"note": "looks right"}


def test_python_scorer_failures_leave_the_case_unscored(tmp_path):
    s = bound(tmp_path, "scoring.py:grade")
    failed = s.score("alpha", row(id="test-4"))
    assert failed.value is None and failed.detail["error"] == "ValueError: cannot grade this one"
    assert failed.detail["at"] == "scoring.py:4"
    odd = bound(tmp_path, "scoring.py:odd")
    for answer in ("nan", "text", "none", "pair"):
        got = odd.score(answer, row())
        assert got.value is None and "error" in got.detail, (answer, got)
    assert "not a finite number" in odd.score("nan", row()).detail["error"]


def test_python_scorer_declared_binary(tmp_path):
    s = bound(tmp_path, "scoring.py:partial", binary=True)
    assert s.binary is True
    assert s.score("alpha", row()).value == 1
    half = s.score("al", row())
    assert half.value is None and "binary" in half.detail["error"]


def test_the_grading_file_resolves_against_the_suite_folder_not_the_working_directory(tmp_path, monkeypatch):
    python_suite(tmp_path / "s")
    monkeypatch.chdir(tmp_path)
    loaded = load_suite(tmp_path / "s" / "suite.yaml")
    config = loaded.config("scorers", "python")
    assert isinstance(config, PythonConfig) and config.path == (tmp_path / "s" / "scoring.py").resolve()


@pytest.mark.parametrize(
    ("function", "source", "words"),
    [
        ("scoring.py:grade", None, "does not exist"),
        ("scoring.py:grade_it", GRADER, "defines no function 'grade_it'"),
        ("scoring.py:grade", "def grade(answer, case)\n    return 1\n", "is not valid Python"),
        ("scoring.py:grade", "import no_such_module_here\n", "ModuleNotFoundError"),
        ("scoring.py:grade", "def grade(answer):\n    return 1\n", "cannot be called as grade(answer, case)"),
        ("scoring.py", GRADER, "FILE:FUNCTION"),
        ("../scoring.py:grade", GRADER, "goes outside the suite folder"),
    ],
)
def test_a_grading_function_that_cannot_load_is_refused_when_the_suite_loads(tmp_path, function, source, words):
    with pytest.raises(ConfigError) as err:
        load_suite(python_suite(tmp_path / "s", function, source))
    message = str(err.value)
    assert "suite.yaml:" in message and "scorers[2].config.function" in message and words in message, message
    assert "Fix:" in message


def test_harness_validate_refuses_a_missing_grading_file_or_function(tmp_path):
    missing = python_suite(tmp_path / "a", source=None)
    result = harness_cli("validate", str(missing), home=tmp_path / "home", timeout=60)
    assert_refused(result, "suite.yaml:", "scorers[2].config.function", "'scoring.py' does not exist")
    no_function = python_suite(tmp_path / "b", "scoring.py:grade_it")
    result = harness_cli("validate", str(no_function), home=tmp_path / "home", timeout=60)
    assert_refused(result, "suite.yaml:", "scorers[2].config.function", "no function 'grade_it'")


def test_the_grading_file_is_part_of_the_fingerprint(tmp_path):
    path = python_suite(tmp_path / "s")
    first = load_suite(path)
    assert first.dataset.hashes["scoring.py"]
    again = suite_fingerprint(load_suite(path))
    assert suite_fingerprint(first) == again  # the same file, the same fingerprint
    (tmp_path / "s" / "scoring.py").write_text(GRADER.replace('"test-4"', '"test-5"'), encoding="utf-8")
    assert suite_fingerprint(load_suite(path)) != again


def test_a_run_completes_with_the_case_the_grading_function_failed_on_unscored(tmp_path):
    record, _run = compare(python_suite(tmp_path / "s"), CompareOptions(out=tmp_path / "run"))
    assert record.status == "complete"
    for name in ("zero", "few"):
        metric = record.strategies[name].metrics["python"]
        assert (metric.n_unscored, metric.n_scored, metric.n) == (1, 8, 8), metric
        assert metric.ci_method.startswith("bootstrap")  # graded: not binary unless the suite says so
    rows = [json.loads(line) for line in (tmp_path / "run" / "cases.jsonl").read_text().splitlines()]
    failed = [r for r in rows if r["case_id"] == "test-4"]
    assert len(failed) == 2
    for r in failed:
        assert r["scores"]["python"]["value"] is None
        assert r["scores"]["python"]["detail"]["error"] == "ValueError: cannot grade this one"
        assert r["scores"]["label_accuracy"]["value"] is not None  # the other scorers are untouched
