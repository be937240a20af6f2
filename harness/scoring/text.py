"""Scorers judge one answer against one case. They never aggregate (that is harness.verdict.summary's job).

A score of None means "could not be scored" (counted as unscored); `invalid` marks an answer outside
what the task allows (e.g. not one of the labels), scored 0 and counted.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field

from harness.suite.data import Case
from harness.suite.schema import ScorerSpec, StrictModel, TaskSpec
from harness.scoring.normalise import normalise


@dataclass
class Score:
    value: float | None
    invalid: bool = False
    detail: dict[str, Any] = field(default_factory=dict)


class Scorer:
    kind: ClassVar[str]
    Config: ClassVar[type[BaseModel]] = StrictModel
    binary: ClassVar[bool] = False  # 0/1 scores get Wilson intervals and exact paired tests
    # Scores only some strategies' results (e.g. retrieval metrics: those that retrieve); the others get no entry.
    conditional: ClassVar[bool] = False
    # Judged by a model after generation, batched over cases (see harness.scoring.judge); the runner calls ascore().
    deferred: ClassVar[bool] = False

    def __init__(self, spec: ScorerSpec, config: BaseModel, task: TaskSpec):
        self.spec = spec
        self.config = config
        self.task = task

    @property
    def name(self) -> str:
        return self.spec.label

    def score(self, answer: str, case: Case) -> Score:
        raise NotImplementedError

    def score_result(self, answer: str, case: Case, meta: dict[str, Any]) -> Score | None:
        """Score with the strategy's per-case record (`meta`, e.g. retrieved chunks); None: not applicable."""
        return self.score(answer, case)


class ReferencesConfig(StrictModel):
    references_field: str | None = Field(
        None, description="Case field with a list of further acceptable answers (e.g. SQuAD's answers); the best match counts.")


def references(case: Case, field_name: str | None) -> list[str]:
    """The target, then any further acceptable answers the case lists."""
    extra = case.metadata.get(field_name) if field_name else None
    if isinstance(extra, str):
        extra = [extra]
    return [case.target, *[str(x) for x in (extra or []) if str(x) != case.target]]




class ExactMatchConfig(ReferencesConfig):
    case_sensitive: bool = False
    keep_punctuation: bool = False


class ExactMatch(Scorer):
    """1 when the answer equals the target after normalising case, punctuation and white space."""

    kind = "exact_match"
    Config = ExactMatchConfig
    binary = True

    def score(self, answer, case):
        opts = {"case_sensitive": self.config.case_sensitive, "punctuation": self.config.keep_punctuation}
        got = normalise(answer, **opts)
        return Score(float(any(got == normalise(ref, **opts) for ref in references(case, self.config.references_field))))


class LabelAccuracyConfig(StrictModel):
    match: Literal["exact", "first_label"] = Field(
        "exact", description="exact: the whole (normalised) first line must be a label; first_label: the first label named anywhere."
    )


class LabelAccuracy(Scorer):
    """Accuracy over a closed label set; an answer that is no label is invalid (scored 0, counted)."""

    kind = "label_accuracy"
    Config = LabelAccuracyConfig
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

    def score(self, answer, case):
        return max((self._f1(answer, ref) for ref in references(case, self.config.references_field)), key=lambda s: s.value)

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

    def score(self, answer, case):
        import sacrebleu

        return Score(sacrebleu.sentence_chrf(answer, references(case, self.config.references_field)).score / 100)


class Bleu(Scorer):
    """Sentence BLEU (sacrebleu, exponential smoothing) against the target and any further references, 0-1."""

    kind = "bleu"
    Config = ReferencesConfig

    def score(self, answer, case):
        import sacrebleu

        return Score(sacrebleu.sentence_bleu(answer, references(case, self.config.references_field)).score / 100)


class RougeL(Scorer):
    """ROUGE-L F-measure (rouge-score, with stemming); with several references, the best (rouge-score's
    score_multi)."""

    kind = "rouge_l"
    Config = ReferencesConfig

    def __init__(self, spec, config, task):
        super().__init__(spec, config, task)
        from rouge_score import rouge_scorer

        self._scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)

    def score(self, answer, case):
        refs = references(case, self.config.references_field)
        return Score(self._scorer.score_multi(refs, answer)["rougeL"].fmeasure)


class JsonMatchConfig(StrictModel):
    mode: Literal["object", "fields"] = Field(
        "object", description="object: 1 only when every field matches; fields: the fraction of target fields that match."
    )
    fields: list[str] | None = Field(None, description="Only compare these fields (default: all fields of the target).")


def first_json_object(text: str) -> Any:
    """The first JSON object in a reply (a ```json fence and chatter around it are ignored); ValueError if none."""
    text = text.strip()
    fence = re.search(r"```(?:json)?\s*(.*?)```", text, re.S)
    if fence:
        text = fence.group(1).strip()
    decoder = json.JSONDecoder()
    for start in [i for i, ch in enumerate(text) if ch == "{"]:
        try:
            return decoder.raw_decode(text[start:])[0]
        except json.JSONDecodeError:
            continue
    raise ValueError("no JSON object in the answer")


class JsonMatch(Scorer):
    """Parses the answer's first JSON object and compares it with the target, field by field."""

    kind = "json_match"
    Config = JsonMatchConfig

    @property
    def binary(self) -> bool:  # type: ignore[override]
        return self.config.mode == "object"

    def score(self, answer, case):
        try:
            target = json.loads(case.target)
        except json.JSONDecodeError:
            return Score(None, detail={"error": "target is not JSON"})
        try:
            got = first_json_object(answer)
        except ValueError:
            return Score(0.0, invalid=True, detail={"error": "answer is not JSON"})
        if not isinstance(target, dict) or not isinstance(got, dict):
            return Score(float(got == target))
        names = self.config.fields or sorted(target)
        per_field = {name: float(name in got and got[name] == target.get(name)) for name in names}
        whole = float(all(per_field.values()))
        value = whole if self.config.mode == "object" else sum(per_field.values()) / max(len(per_field), 1)
        return Score(value, detail={"fields": per_field, "object": whole})


# ---- retrieval metrics ------------------------------------------------------------------------------


class RetrievalConfig(ReferencesConfig):
    k: int | None = Field(None, ge=1, description="Judge the top k retrieved chunks (default: all retrieved).")
    gold_field: str = Field("doc_id", description="Case field naming the gold document id(s) (a string or a list).")
    match: Literal["auto", "doc_id", "answer"] = Field(
        "auto", description="doc_id: a chunk is relevant when it comes from a gold document; answer: when it contains "
        "the answer string; auto: doc_id when the case names one, else answer.")


class RetrievalScorer(Scorer):
    """Base of the retrieval metrics. Reads the ranked chunks a retrieving strategy records per case
    (`meta.retrieval.doc_ids`, `chunk_ids`, `texts`); strategies that do not retrieve get no entry."""

    Config = RetrievalConfig
    conditional = True

    def score(self, answer, case):
        raise TypeError(f"{self.kind} scores retrieval results; it needs the strategy's per-case record")

    def score_result(self, answer, case, meta):
        found = meta.get("retrieval")
        if not found:
            return None
        k = self.config.k or len(found["chunk_ids"])
        gold = case.metadata.get(self.config.gold_field)
        mode = self.config.match
        if mode == "auto":
            mode = "doc_id" if gold not in (None, "", []) else "answer"
        if mode == "doc_id":
            if gold in (None, "", []):
                return Score(None, detail={"error": f"case has no '{self.config.gold_field}' to judge retrieval by"})
            gold_ids = {str(g) for g in (gold if isinstance(gold, list) else [gold])}
            relevant = [d in gold_ids or c in gold_ids for d, c in zip(found["doc_ids"][:k], found["chunk_ids"][:k], strict=True)]
            n_gold = len(gold_ids)
            hits = len(gold_ids & ({*found["doc_ids"][:k]} | {*found["chunk_ids"][:k]}))
        else:
            refs = [normalise(r) for r in references(case, self.config.references_field) if normalise(r)]
            relevant = [any(f" {r} " in f" {normalise(t)} " for r in refs) for t in found["texts"][:k]]
            n_gold, hits = 1, int(any(relevant))
        first = next((i + 1 for i, rel in enumerate(relevant) if rel), None)
        return Score(self.metric(relevant, hits, n_gold, first), detail={"first_relevant_rank": first, "by": mode})

    def metric(self, relevant: list[bool], hits: int, n_gold: int, first: int | None) -> float:
        raise NotImplementedError


class RecallAtK(RetrievalScorer):
    """Share of the gold documents among the top k chunks (answer mode: 1 when any chunk holds the answer)."""

    kind = "recall_at_k"

    def metric(self, relevant, hits, n_gold, first):
        return hits / n_gold


class HitRate(RetrievalScorer):
    """1 when any of the top k chunks is relevant."""

    kind = "hit_rate"
    binary = True

    def metric(self, relevant, hits, n_gold, first):
        return float(first is not None)


class MRR(RetrievalScorer):
    """Reciprocal rank of the first relevant chunk in the top k (0 when none is)."""

    kind = "mrr"

    def metric(self, relevant, hits, n_gold, first):
        return 1.0 / first if first else 0.0
