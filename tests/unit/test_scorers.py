"""Each scorer on answers a user would recognise as right, wrong or invalid."""

from __future__ import annotations

import json

import pytest

from harness.builtins import SCORERS
from harness.suite.data import Case
from harness.suite.schema import ScorerSpec, TaskSpec

TASK = TaskSpec(instructions="x", labels=["get_weather", "play_music"])


def scorer(kind, **config):
    cls = SCORERS.get(kind)
    return cls(ScorerSpec(kind=kind, config=config), cls.Config.model_validate(config), TASK)


def case(target):
    return Case(id="c", input="q", target=target)


def test_exact_match_normalises_case_space_and_punctuation():
    s = scorer("exact_match")
    assert s.score("  Paris. ", case("paris")).value == 1
    assert s.score("Paris, France", case("paris")).value == 0
    assert scorer("exact_match", case_sensitive=True).score("paris", case("Paris")).value == 0


def test_label_accuracy_counts_answers_outside_the_label_set_as_invalid():
    s = scorer("label_accuracy")
    assert s.score("get_weather", case("get_weather")).value == 1
    assert s.score("Get weather.\nBecause it asks about rain", case("get_weather")).value == 1
    wrong = s.score("play_music", case("get_weather"))
    assert wrong.value == 0 and not wrong.invalid
    invalid = s.score("I think it is about the weather", case("get_weather"))
    assert invalid.value == 0 and invalid.invalid
    lenient = scorer("label_accuracy", match="first_label")
    assert lenient.score("The intent is get_weather.", case("get_weather")).value == 1


def test_token_f1_gives_partial_credit():
    s = scorer("token_f1")
    assert s.score("the Eiffel Tower", case("Eiffel Tower")).value == 1
    assert s.score("Tower", case("Eiffel Tower")).value == pytest.approx(2 / 3)
    assert s.score("Louvre", case("Eiffel Tower")).value == 0


def test_text_overlap_scorers_rank_closer_answers_higher():
    ref = "The Eagle is a coffee shop near the river serving French food."
    close = "The Eagle is a coffee shop by the river that serves French food."
    far = "Prices are high."
    for kind in ("chrf", "bleu", "rouge_l"):
        s = scorer(kind)
        assert s.score(ref, case(ref)).value == pytest.approx(1.0, abs=1e-6), kind
        assert 0 <= s.score(far, case(ref)).value < s.score(close, case(ref)).value < 1, kind


def test_json_match_whole_object_and_fields():
    target = json.dumps({"city": "Paris", "days": 3})
    obj = scorer("json_match")
    assert obj.score('Sure: {"days": 3, "city": "Paris"}', case(target)).value == 1  # key order does not matter
    assert obj.score('{ "city" :"Paris",\n  "days":3 }', case(target)).value == 1  # nor does white space
    half = obj.score('```json\n{"city": "Paris", "days": 4}\n```', case(target))
    assert half.value == 0 and half.detail["keys"]["days"] == {"tp": 0, "fp": 1, "fn": 1}
    fields = scorer("json_match", mode="fields").score('{"city": "Paris", "days": 4}', case(target))
    assert (fields.detail["precision"], fields.detail["recall"], fields.value) == (0.5, 0.5, 0.5)
    bad = obj.score("no json here", case(target))
    assert bad.value == 0 and bad.invalid


ADDRESS = json.dumps({"city": "Springfield", "state": "IL", "zip": "62704"})
HALLUCINATED = '{"city": "Springfield", "state": "IL", "zip": "62704", "street_number": "12", "street": "Elm St"}'


def test_json_match_counts_a_hallucinated_field_against_the_answer():
    """An address that had only a city, state and ZIP: inventing a street is wrong in object mode and lowers
    precision (not recall) in fields mode; ignore_extra restores the lenient reading."""
    whole = scorer("json_match").score(HALLUCINATED, case(ADDRESS))
    assert whole.value == 0 and whole.detail["extra_keys"] == ["street", "street_number"]
    fields = scorer("json_match", mode="fields").score(HALLUCINATED, case(ADDRESS))
    assert fields.detail["precision"] == pytest.approx(3 / 5) and fields.detail["recall"] == 1
    assert fields.value == pytest.approx(2 * 0.6 / 1.6)
    assert scorer("json_match", ignore_extra=True).score(HALLUCINATED, case(ADDRESS)).value == 1
    lenient = scorer("json_match", mode="fields", ignore_extra=True).score(HALLUCINATED, case(ADDRESS))
    assert lenient.value == 1 and lenient.detail["pairs"] == {"tp": 3, "fp": 0, "fn": 0}


def test_json_match_a_missing_key_lowers_recall_and_fields_limits_the_comparison():
    missing = scorer("json_match", mode="fields").score('{"city": "Springfield", "state": "IL"}', case(ADDRESS))
    assert missing.detail["precision"] == 1 and missing.detail["recall"] == pytest.approx(2 / 3)
    assert missing.detail["keys"]["zip"] == {"tp": 0, "fp": 0, "fn": 1}
    assert scorer("json_match").score('{"city": "Springfield", "state": "IL"}', case(ADDRESS)).value == 0
    only = scorer("json_match", fields=["city", "state"])
    assert only.score(HALLUCINATED, case(ADDRESS)).value == 1  # only the named keys are compared
    assert scorer("json_match", mode="fields").score("{}", case("{}")).value == 1  # nothing to find, nothing made up


@pytest.mark.parametrize("kind", ["chrf", "bleu", "rouge_l"])
def test_generation_metrics_take_every_reference_when_told_where_they_are(kind):
    """E2E-style data: an answer that matches a second human reference scores as a match only when the scorer
    reads the references field (sacrebleu multi-reference; rouge-score's best of several)."""
    from harness.builtins import SCORERS
    from harness.suite.data import Case
    from harness.suite.schema import ScorerSpec, TaskSpec

    cls = SCORERS.get(kind)
    case = Case(
        id="1",
        input="name: Blue Spice, eatType: coffee shop, near: Burger King",
        target="Blue Spice is a coffee shop.",
        metadata={"references": ["Blue Spice is a coffee shop.", "The Blue Spice coffee shop is near Burger King."]},
    )
    answer = "The Blue Spice coffee shop is near Burger King."
    single = cls(ScorerSpec(kind=kind), cls.Config(), TaskSpec(instructions="x")).score(answer, case).value
    multi = (
        cls(ScorerSpec(kind=kind), cls.Config(references_field="references"), TaskSpec(instructions="x"))
        .score(answer, case)
        .value
    )
    assert multi == pytest.approx(1.0) and single < 0.7
