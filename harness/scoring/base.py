"""What every scorer provides: `score` one answer against one case, or `score_result` with what the strategy did
for that case (retrieved passages). Scorers never aggregate (that is harness.verdict.summary's job).

A score of None means "could not be scored" (counted as unscored); `invalid` marks an answer outside what the task
allows (e.g. not one of the labels), scored 0 and counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, Field

from harness.records.cases import CaseMeta
from harness.suite.data import Case
from harness.suite.schema import ScorerSpec, StrictModel, TaskSpec

if TYPE_CHECKING:
    from harness.scoring.judge import Judge


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
    # Judged by a model after generation, batched over cases (see harness.scoring.judge); the judge phase of a run
    # (harness.run.judging) calls ascore().
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

    def score_result(self, answer: str, case: Case, meta: CaseMeta) -> Score | None:
        """Score with the strategy's per-case record (`meta`, e.g. retrieved chunks); None: not applicable."""
        return self.score(answer, case)


class ReferencesConfig(StrictModel):
    references_field: str | None = Field(
        None,
        description="Case field with a list of further acceptable answers (e.g. SQuAD's answers); the best match counts.",
    )


def references(case: Case, field_name: str | None) -> list[str]:
    """The target, then any further acceptable answers the case lists."""
    extra = case.metadata.get(field_name) if field_name else None
    if isinstance(extra, str):
        extra = [extra]
    return [case.target, *[str(x) for x in (extra or []) if str(x) != case.target]]


class JudgeConfig(StrictModel):
    """How a model-judged scorer asks its judge."""

    judge: str = Field(description="Name of the suite backend that judges (any kind: hf, fake, an API backend).")
    max_new_tokens: int = Field(1024, ge=16, le=8192, description="Longest judge reply (tokens).")
    max_chars: int = Field(200, ge=20, le=10_000, description="Longest string a constrained judge may write per field.")
    max_items: int = Field(
        6, ge=1, le=1000, description="Longest list (e.g. of statements) a constrained judge may write."
    )
    retries: int = Field(
        1, ge=0, le=5, description="Retries of a judge reply that does not parse, showing it the error."
    )


class JudgedScorer(Scorer):
    """A scorer a model judges after generation: the run's judge phase (harness.run.judging) calls `prepare` with
    the judge once, then `ascore` for each answer, concurrently, so judge calls batch."""

    Config: ClassVar[type[BaseModel]] = JudgeConfig
    config: JudgeConfig
    deferred: ClassVar[bool] = True
    binary_fields: ClassVar[frozenset[str]] = frozenset()  # integer fields the judge may only set to 0 or 1

    def prepare(self, judge: Judge) -> None:
        raise NotImplementedError

    async def ascore(self, answer: str, case: Case, meta: CaseMeta) -> Score | None:
        raise NotImplementedError
