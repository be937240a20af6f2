"""Scorers of text answers: exact match, label accuracy, token F1, chrF, BLEU and ROUGE-L (sacrebleu and rouge-score
underneath), each against the target or any of the case's further references."""

from __future__ import annotations

from collections import Counter
from typing import Literal

from pydantic import Field

from harness.scoring.base import ReferencesConfig, Score, Scorer, references
from harness.scoring.normalise import normalise
from harness.suite.schema import StrictModel


class ExactMatchConfig(ReferencesConfig):
    case_sensitive: bool = False
    keep_punctuation: bool = False


class ExactMatch(Scorer):
    """1 when the answer equals the target after normalising case, punctuation and white space."""

    kind = "exact_match"
    Config = ExactMatchConfig
    config: ExactMatchConfig
    binary = True

    def score(self, answer, case):
        opts = {"case_sensitive": self.config.case_sensitive, "punctuation": self.config.keep_punctuation}
        got = normalise(answer, **opts)
        return Score(
            float(any(got == normalise(ref, **opts) for ref in references(case, self.config.references_field)))
        )


class LabelAccuracyConfig(StrictModel):
    match: Literal["exact", "first_label"] = Field(
        "exact",
        description="exact: the whole (normalised) first line must be a label; first_label: the first label named anywhere.",
    )


class LabelAccuracy(Scorer):
    """Accuracy over a closed label set; an answer that is no label is invalid (scored 0, counted)."""

    kind = "label_accuracy"
    Config = LabelAccuracyConfig
    config: LabelAccuracyConfig
    binary = True

    def __init__(self, spec, config, task):
        super().__init__(spec, config, task)
        self._labels = {normalise(label): label for label in task.labels or []}

    def predicted(self, answer: str) -> str | None:
        lines = [line for line in answer.strip().splitlines() if line.strip()]
        first = normalise(lines[0]) if lines else ""
        if first in self._labels:
            return self._labels[first]
        if self.config.match == "first_label":
            text = f" {normalise(answer)} "
            hits = [(text.find(f" {n} "), label) for n, label in self._labels.items() if f" {n} " in text]
            if hits:
                return min(hits)[1]
        return None

    def score(self, answer, case):
        if not self._labels:
            return Score(float(normalise(answer) == normalise(case.target)))
        label = self.predicted(answer)
        if label is None:
            return Score(0.0, invalid=True, detail={"predicted": None})
        return Score(float(label == case.target), detail={"predicted": label})


class TokenF1(Scorer):
    """SQuAD-style token overlap F1 after normalising case, punctuation and articles (best over the references)."""

    kind = "token_f1"
    Config = ReferencesConfig
    config: ReferencesConfig

    def score(self, answer, case):
        return max(
            (self._f1(answer, ref) for ref in references(case, self.config.references_field)),
            key=lambda s: s.value or 0.0,
        )

    @staticmethod
    def _f1(answer: str, target: str) -> Score:
        pred = normalise(answer, articles=True).split()
        gold = normalise(target, articles=True).split()
        if not pred or not gold:
            return Score(float(pred == gold))
        common = sum((Counter(pred) & Counter(gold)).values())
        if common == 0:
            return Score(0.0)
        precision, recall = common / len(pred), common / len(gold)
        return Score(2 * precision * recall / (precision + recall))


class ChrF(Scorer):
    """Sentence chrF (sacrebleu) against the target and any further references (multi-reference), scaled to 0-1."""

    kind = "chrf"
    Config = ReferencesConfig
    config: ReferencesConfig

    def score(self, answer, case):
        import sacrebleu

        return Score(sacrebleu.sentence_chrf(answer, references(case, self.config.references_field)).score / 100)


class Bleu(Scorer):
    """Sentence BLEU (sacrebleu, exponential smoothing) against the target and any further references, 0-1."""

    kind = "bleu"
    Config = ReferencesConfig
    config: ReferencesConfig

    def score(self, answer, case):
        import sacrebleu

        return Score(sacrebleu.sentence_bleu(answer, references(case, self.config.references_field)).score / 100)


class RougeL(Scorer):
    """ROUGE-L F-measure (rouge-score, with stemming); with several references, the best (rouge-score's
    score_multi)."""

    kind = "rouge_l"
    Config = ReferencesConfig
    config: ReferencesConfig

    def __init__(self, spec, config, task):
        super().__init__(spec, config, task)
        from rouge_score import rouge_scorer

        self._scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)

    def score(self, answer, case):
        refs = references(case, self.config.references_field)
        return Score(self._scorer.score_multi(refs, answer)["rougeL"].fmeasure)
