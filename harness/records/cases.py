"""One line of cases.jsonl: a (strategy, case, repeat) with its answer, scores, tokens, cost and timing, and what
the strategy did for that case (exemplars chosen for it, passages retrieved)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, field_validator, model_serializer

from harness.errors import redact
from harness.records.base import OpenRecord, Record


class DropNone:
    """Optional fields that are None are left out of the JSON, so each line carries only what applies to it."""

    @model_serializer(mode="wrap")
    def _without_none(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        declared = type(self).model_fields  # type: ignore[attr-defined]
        return {k: v for k, v in data.items() if v is not None or k not in declared}


class CaseScore(Record):
    value: float | None
    invalid: bool = False  # the answer could not be read (e.g. no label in it); scored as wrong
    detail: dict[str, Any] = Field(default_factory=dict)  # the scorer's own explanation (free-form JSON)


class RetrievalTrace(DropNone, Record):
    """What a retrieving strategy found for one case, in rank order, and what went into the prompt."""

    chunk_ids: list[str]
    doc_ids: list[str]
    texts: list[str]
    used: int  # passages that fitted in the prompt
    dropped: int  # passages left out because the model's window was full
    context_tokens: int
    retrieval_s: float
    retriever: str
    query_embedding_usd: float | None = None  # an API embedder's charge for embedding this case's query


class CaseMeta(DropNone, OpenRecord):
    """What the strategy did for this case; a plugin strategy may add keys of its own."""

    exemplar_ids: list[str] | None = None  # exemplars chosen for this case (few-shot `similar`)
    retrieval: RetrievalTrace | None = None


class CaseResult(Record):
    """One line of cases.jsonl."""

    strategy: str
    case_id: str
    repeat: int
    input: Any  # the case's input: text, or chat messages
    target: str
    prompt: str | None = None
    output: str | None = None
    error: str | None = None
    scores: dict[str, CaseScore] = Field(default_factory=dict)
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0  # prompt tokens the provider served from its cache (billed at the cached price)
    # The prompt's tokens by part (instructions, exemplars, context, input, template) and the output's.
    tokens: dict[str, int] = Field(default_factory=dict)
    cost_usd: float | None = None  # what this answer cost (0 for a cache hit); None when the model has no price
    paid_usd: float = 0.0  # the part of cost_usd billed by providers (token-priced calls): counts against budget_usd
    latency_s: float | None = None
    latency_kind: str = "request"
    compute_s: float = 0.0
    batch_size: int = 1
    ttft_s: float | None = None
    cache_hit: bool = False
    meta: CaseMeta = Field(default_factory=CaseMeta)
    finished_at: datetime

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.strategy, self.case_id, self.repeat)

    @field_validator("error")
    @classmethod
    def _no_secrets(cls, error: str | None) -> str | None:
        # A provider's error body may quote the key it was sent; every recorded error passes here.
        return redact(error) if error else error
