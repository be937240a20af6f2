"""Model-graded scorers with a scripted `fake` judge: a rubric graded on a scale (cached, counted, retried, its
agreement with human grades reported and, below min_agreement, refused as the ground of the decision) and a
pairwise preference whose position swap cancels a judge that always prefers the first answer it reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.run.compare import CompareOptions, compare
from tests.conftest import LABELS, assert_refused, base_suite, harness_cli, run_json, write_jsonl, write_suite

# Two strategies that answer differently: `good` names the label, `bad` never does.
GOOD = {"name": "good", "kind": "fake", "config": {"rules": [{"pattern": f"about {x}", "answer": x} for x in LABELS]}}
BAD = {"name": "bad", "kind": "fake", "config": {"default": "no idea"}}


def judge(rules: list[tuple[str, str]], default: str = "not json") -> dict:
    return {"name": "judge", "kind": "fake", "config": {"rules": [{"pattern": p, "answer": a} for p, a in rules]}}


def grade(score: int) -> str:
    return json.dumps({"reason": "scripted", "score": score})


# A fair rubric judge: 5 for a label, 1 for "no idea".
FAIR = [(r"Answer to grade:\n(alpha|beta|gamma)\b", grade(5)), (r"Answer to grade:\nno idea", grade(1))]


def suite_with(scorers: list[dict], judge_backend: dict, **decision) -> dict:
    suite = base_suite()
    suite["backends"] = [GOOD, BAD, judge_backend]
    suite["strategies"] = [
        {"name": "good", "kind": "zero_shot", "backend": "good"},
        {"name": "bad", "kind": "zero_shot", "backend": "bad"},
    ]
    suite["scorers"] = [{"kind": "label_accuracy"}, *scorers]
    if decision:
        suite["decision"] = decision
    return suite


def with_human_grades(path: Path) -> None:
    """Every test case carries an answer a human graded and the grade: the label (5) on even rows, "no idea" (1)
    on odd ones."""
    rows = [json.loads(x) for x in (path.parent / "data/test.jsonl").read_text().splitlines()]
    graded = [
        {**r, "graded": r["label"] if i % 2 == 0 else "no idea", "human": 5 if i % 2 == 0 else 1}
        for i, r in enumerate(rows)
    ]
    write_jsonl(path.parent / "data/test.jsonl", graded)


def evaluation(run: dict, strategy: str, metric: str) -> dict:
    return run["strategies"][strategy]["setup"]["evaluation"][metric]


def test_a_rubric_grades_on_its_scale_and_a_rerun_asks_the_judge_nothing(tmp_path):
    rubric = {"kind": "model_graded", "config": {"judge": "judge", "rubric": "Names the request's intent."}}
    path = write_suite(tmp_path / "s", suite_with([rubric], judge(FAIR)))
    compare(path, CompareOptions(out=tmp_path / "run"))
    run = run_json(tmp_path / "run")
    good, bad = (run["strategies"][n]["metrics"]["model_graded"] for n in ("good", "bad"))
    assert (good["mean"], bad["mean"]) == (1.0, 0.0)  # grade 5 -> 1.0, grade 1 -> 0.0 on the 1-5 scale
    counts = evaluation(run, "good", "model_graded")["judge"]
    assert (
        counts["calls"] == 9
        and counts["cache_hits"] == 0
        and evaluation(run, "good", "model_graded")["judge_backend"] == "judge"
    )
    assert run["manifest"]["backends"]["judge"]["kind"] == "fake"  # the judge model is in the manifest
    line = json.loads((tmp_path / "run/cases.jsonl").read_text().splitlines()[0])
    assert line["scores"]["model_graded"]["detail"]["reason"] == "scripted"
    compare(path, CompareOptions(out=tmp_path / "again"))
    again = evaluation(run_json(tmp_path / "again"), "good", "model_graded")["judge"]
    assert again["calls"] == 0 and again["cache_hits"] == 9  # the judge's replies come from the response cache


def test_a_reply_that_does_not_parse_is_retried_once_with_the_error_then_left_unscored(tmp_path):
    rubric = {"kind": "model_graded", "config": {"judge": "judge", "rubric": "Names the intent."}}
    # The judge grades `bad` in prose; its retry message carries no answer, so it gets the default "not json".
    path = write_suite(tmp_path / "s", suite_with([rubric], judge(FAIR[:1])))
    compare(path, CompareOptions(out=tmp_path / "run"))
    run = run_json(tmp_path / "run")
    bad = run["strategies"]["bad"]["metrics"]["model_graded"]
    assert bad["n_unscored"] == 9 and bad["mean"] is None
    counts = evaluation(run, "bad", "model_graded")["judge"]
    assert counts["parse_failures"] == 18 and counts["failed_verdicts"] == 9  # two tries each
    rows = [json.loads(x) for x in (tmp_path / "run/cases.jsonl").read_text().splitlines()]
    detail = next(r for r in rows if r["strategy"] == "bad" and "model_graded" in r["scores"])
    assert "did not parse after 2 tries" in detail["scores"]["model_graded"]["detail"]["error"]


HUMAN = {"human_field": "human", "human_answer_field": "graded", "min_agreement": 0.5}


def test_judge_human_agreement_is_reported_and_a_judge_below_min_agreement_decides_nothing(tmp_path):
    rubric = {"kind": "model_graded", "config": {"judge": "judge", "rubric": "Names the intent.", **HUMAN}}
    fair = write_suite(tmp_path / "fair", suite_with([rubric], judge(FAIR), primary_metric="model_graded"))
    with_human_grades(fair)
    compare(fair, CompareOptions(out=tmp_path / "run"))
    run = run_json(tmp_path / "run")
    trust = run["strategies"]["good"]["metrics"]["model_graded"]["judge"]
    assert trust["agreement_kind"] == "spearman" and trust["n_graded"] == 9
    assert trust["agreement"] == pytest.approx(1.0) and trust["min_agreement"] == 0.5
    assert run["decision"]["winner"] == "good"
    assert any("agrees with the human grades at Spearman's rho 1.00" in x for x in run["decision"]["uncertainty"])
    # The human-graded answers are graded with the same prompt as a strategy's identical answer: 36 verdicts
    # asked for (each strategy's 9 answers and 9 human-graded ones), 18 distinct prompts sent, the rest cached.
    counts = [evaluation(run, name, "model_graded")["judge"] for name in ("good", "bad")]
    assert sum(c["requests"] for c in counts) == 36 and sum(c["calls"] for c in counts) == 18

    # A judge that grades the other way round: 1 for a named intent, 5 for "no idea".
    backwards = [(r"Answer to grade:\n(alpha|beta|gamma)\b", grade(1)), (r"Answer to grade:\nno idea", grade(5))]
    wrong = write_suite(tmp_path / "wrong", suite_with([rubric], judge(backwards), primary_metric="model_graded"))
    with_human_grades(wrong)
    compare(wrong, CompareOptions(out=tmp_path / "wrong-run"))
    decision = run_json(tmp_path / "wrong-run")["decision"]
    assert decision["status"] == "undecided" and decision["winner"] is None
    assert "agrees with the human grades at only -1.00 over 9 cases, below min_agreement 0.5" in decision["verdict"]


def test_cohens_kappa_on_a_pass_fail_scale():
    from harness.verdict.scorer_stats import agreement

    # 10 cases, judge and human agree on 8: p_o = 0.8, p_e = 0.5*0.5 + 0.5*0.5 = 0.5, kappa = 0.6
    judge_grades = [1, 1, 1, 1, 1, 0, 0, 0, 0, 0]
    human_grades = [1, 1, 1, 1, 0, 1, 0, 0, 0, 0]
    kappa, low, high = agreement(judge_grades, human_grades, "cohen_kappa")
    assert kappa == pytest.approx(0.6) and low < 0.6 < high


# `bad` answers after `good`: good's comparisons wait for the pass after every strategy has answered.
PAIR = {"kind": "pairwise", "config": {"judge": "judge", "against": "bad"}}


def test_pairwise_swaps_positions_so_a_judge_that_always_picks_the_first_answer_gives_ties(tmp_path):
    first = judge([(r"Answer A:", json.dumps({"reason": "first", "winner": "A"}))])
    path = write_suite(tmp_path / "s", suite_with([PAIR], first))
    compare(path, CompareOptions(out=tmp_path / "run"))
    run = run_json(tmp_path / "run")
    good = run["strategies"]["good"]["metrics"]["pairwise"]
    assert good["mean"] == 0.5  # every case a tie: the two orders never agree
    assert good["judge"]["position_first_share"] == 1.0 and good["judge"]["n_position"] == 18
    assert run["strategies"]["bad"]["metrics"]["pairwise"]["mean"] == 0.5  # the reference ties with itself
    assert evaluation(run, "good", "pairwise")["judge"]["calls"] == 18  # both orders of 9 cases
    assert "pairwise" not in run["strategies"]["bad"]["setup"]["evaluation"]  # no judge call for the reference
    assert any("saw first in 100% of 18 decisive replies" in x for x in run["decision"]["uncertainty"])
    from reports.export import render_md

    md = render_md(tmp_path / "run")
    assert "## How far the judge can be trusted" in md and "100% of 18 decisive replies" in md


def test_pairwise_without_the_reference_strategys_answers_says_so(tmp_path, caplog):
    path = write_suite(tmp_path / "s", suite_with([PAIR], judge(FAIR)))
    compare(path, CompareOptions(out=tmp_path / "run", strategies=["good"]))
    assert run_json(tmp_path / "run")["strategies"]["good"]["metrics"]["pairwise"]["n_scored"] == 0
    assert "no answers of 'bad' in this run folder" in caplog.text and "--strategies" in caplog.text


def test_pairwise_counts_a_win_when_both_orders_agree_and_can_be_the_primary_metric(tmp_path):
    fair = judge(
        [
            (r"Answer A:\n(alpha|beta|gamma)\n", json.dumps({"reason": "A names it", "winner": "A"})),
            (r"Answer B:\n(alpha|beta|gamma)\n", json.dumps({"reason": "B names it", "winner": "B"})),
        ]
    )
    path = write_suite(tmp_path / "s", suite_with([PAIR], fair, primary_metric="pairwise"))
    compare(path, CompareOptions(out=tmp_path / "run"))
    run = run_json(tmp_path / "run")
    good = run["strategies"]["good"]["metrics"]["pairwise"]
    assert good["mean"] == 1.0 and good["judge"]["position_first_share"] == 0.5
    assert run["decision"]["winner"] == "good"


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"judge": "judge", "rubric_file": "missing.md"}, "scorers[1].config.rubric_file"),
        ({"judge": "nobody", "rubric": "x"}, "scorers[1].config.judge"),
        ({"judge": "judge"}, "the rubric is given nowhere"),
        ({"judge": "judge", "rubric": "x", "human_field": "h"}, "name both case fields"),
        ({"judge": "judge", "rubric": "x", "scale": [5, 1]}, "scale"),
    ],
)
def test_bad_rubric_configs_are_refused_before_any_call(tmp_path, config, expected):
    path = write_suite(tmp_path / "s", suite_with([{"kind": "model_graded", "config": config}], judge(FAIR)))
    assert_refused(harness_cli("validate", str(path), home=tmp_path / "home", timeout=60), expected)


def test_pairwise_against_an_unknown_strategy_is_refused(tmp_path):
    pair = {"kind": "pairwise", "config": {"judge": "judge", "against": "few_shot"}}
    path = write_suite(tmp_path / "s", suite_with([pair], judge(FAIR)))
    assert_refused(harness_cli("validate", str(path), home=tmp_path / "home", timeout=60), "scorers[1].config.against")


def test_a_rubric_file_is_read_from_the_suite_folder_and_is_part_of_the_fingerprint(tmp_path):
    from harness.suite.load import load_suite

    path = write_suite(
        tmp_path / "s",
        suite_with([{"kind": "model_graded", "config": {"judge": "judge", "rubric_file": "rubric.md"}}], judge(FAIR)),
    )
    (path.parent / "rubric.md").write_text("Names the intent.", encoding="utf-8")
    before = load_suite(path).dataset.hashes["rubric.md"]
    (path.parent / "rubric.md").write_text("Names the intent, in lower case.", encoding="utf-8")
    assert load_suite(path).dataset.hashes["rubric.md"] != before
    compare(path, CompareOptions(out=tmp_path / "run"))
    prompt_seen = (tmp_path / "run/run.json").read_text()
    assert run_json(tmp_path / "run")["strategies"]["good"]["metrics"]["model_graded"]["mean"] == 1.0
    assert "rubric.md" in prompt_seen  # recorded with the suite's data hashes


def test_json_fields_are_summed_over_the_test_set_with_f1_per_key_in_run_json_and_the_report(tmp_path):
    from reports.export import render_html, render_md

    suite = base_suite()
    suite["task"] = {"instructions": "Extract the intent as JSON.", "input_field": "text", "target_field": "label"}
    suite["backends"] = [
        {
            "name": "fake",
            "kind": "fake",
            "config": {
                "rules": [
                    {"pattern": "about alpha", "answer": '{"intent": "alpha", "street": "Elm St"}'},  # made up
                    {"pattern": "about beta", "answer": '{"intent": "beta"}'},
                ],
                "default": "{}",  # gamma: the intent missed
            },
        }
    ]
    suite["strategies"] = [{"name": "zero", "kind": "zero_shot", "backend": "fake"}]
    suite["scorers"] = [{"kind": "json_match", "config": {"mode": "fields"}}]
    path = write_suite(tmp_path / "s", suite)
    for split in ("train", "dev", "test"):
        file = path.parent / f"data/{split}.jsonl"
        rows = [json.loads(x) for x in file.read_text().splitlines()]
        write_jsonl(file, [{**r, "label": json.dumps({"intent": r["label"]})} for r in rows])
    compare(path, CompareOptions(out=tmp_path / "run"))
    fields = run_json(tmp_path / "run")["strategies"]["zero"]["metrics"]["json_match"]["fields"]
    # 9 cases, 3 of each: alpha right + a made-up street, beta right, gamma missed
    assert (fields["tp"], fields["fp"], fields["fn"]) == (6, 3, 3)
    assert fields["precision"] == pytest.approx(6 / 9) and fields["recall"] == pytest.approx(6 / 9)
    assert fields["per_key_f1"] == {"intent": pytest.approx(0.8), "street": 0.0}
    md = render_md(tmp_path / "run")
    assert "## Structured fields" in md and "intent 0.80, street 0.00" in md and "6 / 3 / 3" in md
    assert "intent 0.80, street 0.00" in render_html(tmp_path / "run")
