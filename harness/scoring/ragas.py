"""ragas metrics as scorers: faithfulness, answer relevancy, context precision and context recall.

The metrics are ragas' own (`ragas.metrics.collections`); the judge behind them is one of the suite's backends
(`config.judge`), wrapped by harness.scoring.judge so each call is cached, batched, counted as evaluation cost and
retried when its JSON does not parse. Answer quality metrics decide the ranking; these are diagnostics.
Context metrics apply only to strategies that retrieve; they judge the contexts the model was actually given.
"""

from __future__ import annotations

import math
import os
from typing import Any, ClassVar

from pydantic import Field

from harness.errors import require
from harness.records.cases import CaseMeta
from harness.scoring.base import JudgeConfig, JudgedScorer, Score
from harness.scoring.judge import Judge, JudgeError
from harness.suite.data import Case

# ragas' 0/1 verdict fields: a constrained judge may only write 0 or 1 there.
BINARY_FIELDS = frozenset({"verdict", "attributed", "noncommittal"})


class RagasConfig(JudgeConfig):
    """A ragas metric's judge."""


class AnswerRelevancyConfig(RagasConfig):
    strictness: int = Field(3, ge=1, le=10, description="Questions generated back from the answer (ragas' default 3).")
    embedder: str = Field("all-minilm-l6-v2", description="sentence-transformers model comparing the questions.")


def _ragas_collections():
    os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")  # ragas' analytics would post to its servers
    return require("ragas.metrics.collections", extra="rag", purpose="ragas metrics")


def judge_llm(judge: Judge):
    """ragas' LLM interface over a harness Judge: each ragas prompt becomes one cached, counted judge call."""
    from ragas.llms.base import InstructorBaseRagasLLM

    class HarnessJudge(InstructorBaseRagasLLM):
        is_async = True

        def __init__(self, judge: Judge):
            self.judge = judge

        async def agenerate(self, prompt, response_model):
            return await self.judge.ask(str(prompt), response_model)

        def generate(self, prompt, response_model):
            raise TypeError("the harness judge is asynchronous; ragas metrics are awaited with ascore()")

    return HarnessJudge(judge)


def judge_embeddings(name: str):
    """ragas' embedding interface over the RAG strategy's embedder (the embedded MiniLM by default)."""
    from ragas.embeddings.base import BaseRagasEmbedding

    from harness.backends.embeddings import EmbedderConfig, make_embedder

    inner = make_embedder(EmbedderConfig(model=name))

    class Embeddings(BaseRagasEmbedding):
        def embed_text(self, text, **kwargs):
            return inner.embed_query(text)

        def embed_texts(self, texts, **kwargs):
            return inner.embed_documents(list(texts))

        async def aembed_text(self, text, **kwargs):
            return self.embed_text(text)

        async def aembed_texts(self, texts, **kwargs):
            return self.embed_texts(texts)

    return Embeddings()


def contexts_given(meta: CaseMeta) -> list[str] | None:
    """The retrieved texts the model was actually given (rank order, before any were dropped for length)."""
    found = meta.retrieval
    if not found:
        return None
    return found.texts[: found.used]


class RagasScorer(JudgedScorer):
    Config = RagasConfig
    config: RagasConfig
    needs_contexts: ClassVar[bool] = True
    uses_answer: ClassVar[bool] = True  # context precision and recall judge the contexts against the reference
    conditional = True
    binary_fields = BINARY_FIELDS
    value_range: ClassVar[tuple[float, float]] = (0.0, 1.0)  # a share of 0/1 verdicts

    def score(self, answer, case):
        raise TypeError(f"{self.kind} is judged by a model after generation, in the run's judge phase (ascore)")

    def score_result(self, answer, case, meta):
        raise TypeError(f"{self.kind} is judged by a model after generation, in the run's judge phase (ascore)")

    def prepare(self, judge: Judge) -> None:
        self.metric = self.make_metric(_ragas_collections(), judge_llm(judge))

    def make_metric(self, collections, llm):
        raise NotImplementedError

    def inputs(self, answer: str, case: Case, contexts: list[str] | None) -> dict[str, Any]:
        raise NotImplementedError

    async def ascore(self, answer: str, case: Case, meta: CaseMeta) -> Score | None:
        contexts = contexts_given(meta)
        if self.needs_contexts and contexts is None:
            return None
        if self.uses_answer and not answer.strip():
            return Score(None, detail={"error": "empty answer: nothing to judge"})
        try:
            result = await self.metric.ascore(**self.inputs(answer, case, contexts))
        except JudgeError as exc:
            return Score(None, detail={"error": str(exc)})
        except (ValueError, TypeError) as exc:  # ragas refuses an input (e.g. empty contexts): unscored, counted
            return Score(None, detail={"error": f"ragas: {exc}"})
        value = result.value
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return Score(None, detail={"error": "ragas gave no score (e.g. no statements could be extracted)"})
        low, high = self.value_range
        if not low - 1e-6 <= float(value) <= high + 1e-6:  # verdicts outside 0/1 from a judge that ignored the scale
            return Score(None, detail={"error": f"judge verdicts out of range (ragas computed {value})"})
        return Score(
            float(value), detail={"reason": getattr(result, "reason", None)} if getattr(result, "reason", None) else {}
        )


class Faithfulness(RagasScorer):
    """Share of the answer's statements that the given contexts support (ragas faithfulness)."""

    kind = "faithfulness"

    def make_metric(self, collections, llm):
        return collections.Faithfulness(llm=llm)

    def inputs(self, answer, case, contexts):
        return {"user_input": case.input_text(), "response": answer, "retrieved_contexts": contexts}


class AnswerRelevancy(RagasScorer):
    """How well the answer addresses the question (ragas answer relevancy); applies to every strategy."""

    kind = "answer_relevancy"
    Config = AnswerRelevancyConfig
    config: AnswerRelevancyConfig
    needs_contexts = False
    conditional = False
    value_range = (-1.0, 1.0)  # a mean cosine similarity (an unrelated question can score below 0)

    def prepare(self, judge):
        self.metric = _ragas_collections().AnswerRelevancy(
            llm=judge_llm(judge), embeddings=judge_embeddings(self.config.embedder), strictness=self.config.strictness
        )

    def inputs(self, answer, case, contexts):
        return {"user_input": case.input_text(), "response": answer}


class ContextPrecision(RagasScorer):
    """Whether the contexts useful for the reference answer are ranked high (ragas context precision)."""

    kind = "context_precision"
    uses_answer = False

    def make_metric(self, collections, llm):
        return collections.ContextPrecisionWithReference(llm=llm)

    def inputs(self, answer, case, contexts):
        return {"user_input": case.input_text(), "reference": case.target, "retrieved_contexts": contexts}


class ContextRecall(RagasScorer):
    """Share of the reference answer's claims that the contexts support (ragas context recall)."""

    kind = "context_recall"
    uses_answer = False

    def make_metric(self, collections, llm):
        return collections.ContextRecall(llm=llm)

    def inputs(self, answer, case, contexts):
        return {"user_input": case.input_text(), "reference": case.target, "retrieved_contexts": contexts}
