"""Retrieval metrics (recall@k, hit rate, MRR) over the passages a retrieving strategy recorded for each case."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from harness.scoring.base import ReferencesConfig, Score, Scorer, references
from harness.scoring.normalise import normalise


class RetrievalConfig(ReferencesConfig):
    k: int | None = Field(None, ge=1, description="Judge the top k retrieved chunks (default: all retrieved).")
    gold_field: str = Field("doc_id", description="Case field naming the gold document id(s) (a string or a list).")
    match: Literal["auto", "doc_id", "answer"] = Field(
        "auto",
        description="doc_id: a chunk is relevant when it comes from a gold document; answer: when it contains "
        "the answer string; auto: doc_id when the case names one, else answer.",
    )


class RetrievalScorer(Scorer):
    """Base of the retrieval metrics. Reads the ranked chunks a retrieving strategy records per case
    (`meta.retrieval.doc_ids`, `chunk_ids`, `texts`); strategies that do not retrieve get no entry."""

    Config = RetrievalConfig
    config: RetrievalConfig
    conditional = True

    def score(self, answer, case):
        raise TypeError(f"{self.kind} scores retrieval results; it needs the strategy's per-case record")

    def score_result(self, answer, case, meta):
        found = meta.retrieval
        if not found:
            return None
        k = self.config.k or len(found.chunk_ids)
        gold = case.metadata.get(self.config.gold_field)
        mode = self.config.match
        if mode == "auto":
            mode = "doc_id" if gold not in (None, "", []) else "answer"
        if mode == "doc_id":
            if gold in (None, "", []):
                return Score(None, detail={"error": f"case has no '{self.config.gold_field}' to judge retrieval by"})
            gold_ids = {str(g) for g in (gold if isinstance(gold, list) else [gold])}
            relevant = [
                d in gold_ids or c in gold_ids for d, c in zip(found.doc_ids[:k], found.chunk_ids[:k], strict=True)
            ]
            n_gold = len(gold_ids)
            hits = len(gold_ids & ({*found.doc_ids[:k]} | {*found.chunk_ids[:k]}))
        else:
            refs = [normalise(r) for r in references(case, self.config.references_field) if normalise(r)]
            relevant = [any(f" {r} " in f" {normalise(t)} " for r in refs) for t in found.texts[:k]]
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
