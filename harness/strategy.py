"""What every strategy provides: `prepare` once (pick exemplars, build an index, fine-tune), then `request` per case.

The run owns batching, caching and timing; a strategy only says what to send for each case. Calls a strategy makes
while it is prepared (answers on dev to choose a setting) go through `ctx.gateway.answer`, so they are cached,
budgeted and charged to the strategy's setup like every other call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, Field

from harness.backends.base import Backend, GenRequest, GenResult
from harness.errors import ConfigError
from harness.records.cases import CaseMeta
from harness.records.setup import DataUsed, DevScore, Given
from harness.run.progress import Progress, QuietProgress
from harness.suite.data import Case, Dataset
from harness.suite.schema import StrategySpec, StrictModel, Suite

log = logging.getLogger(__name__)

Problem = tuple[tuple[str | int, ...], str]  # (location inside the strategy's config, message with the fix)


def reference_problem(suite: Suite, name: str, kind: str, add_hint: str = "") -> str | None:
    """Why `name` (a strategy another one's config names, e.g. rag's model_from) is not a `kind` strategy of the
    suite, with the fix; None when it is."""
    kinds = {s.name: s.kind for s in suite.strategies}
    if kinds.get(name) == kind:
        return None
    what = f"is not a {kind} strategy" if name in kinds else "names no strategy"
    found = [n for n, k in kinds.items() if k == kind]
    return f"'{name}' {what}. Fix: name a {kind} strategy of this suite" + (
        f" ({', '.join(found)})." if found else f", or add one{add_hint}."
    )


class Answers(Protocol):
    """The part of the run's gateway a strategy sees."""

    def answer(self, backend: Backend, requests: list[GenRequest], what: str = "answers on dev") -> list[GenResult]:
        """`what` names the work in progress lines (e.g. "checkpoint epoch 2 on dev")."""
        ...


class DirectAnswers:
    """Answers straight from the backend, outside a run (e.g. `harness tune`): no cache, no budget."""

    def answer(self, backend: Backend, requests: list[GenRequest], what: str = "answers on dev") -> list[GenResult]:
        answers = dict(backend.generate(requests))
        return [answers[i] for i in range(len(requests))]


@dataclass
class StrategyContext:
    suite: Suite
    dataset: Dataset
    backend: Backend  # a strategy may replace it in prepare() (e.g. with a fine-tuned model)
    run_dir: Path
    seed: int
    scorers: list[Any] = field(default_factory=list)
    gateway: Answers = field(default_factory=DirectAnswers)
    use_cache: bool = True  # False with `harness compare --no-cache`: no cached answer or embedding is read or kept
    # Strategies this run has prepared, by name (a strategy may serve another's model: rag's model_from).
    prepared: Callable[[str], Strategy | None] = field(default=lambda name: None)
    progress: Progress = field(default_factory=QuietProgress)  # long setup work (indexing, training) shows it


@dataclass
class StrategyRequest:
    messages: list[dict[str, str]]
    meta: CaseMeta = field(default_factory=CaseMeta)  # kept in the case's result line (e.g. retrieved passages)
    # The prompt's texts by part (harness.suite.prompts.prompt_parts), so its tokens can be attributed; None: all input.
    parts: dict[str, str] | None = None


class StrategyPlan(StrictModel):
    """What a strategy adds to the plan before any call, for `harness estimate` (in characters; the estimate turns
    them into tokens)."""

    exemplars: int = Field(0, description="Exemplars per prompt.")
    exemplars_chars: float = Field(0.0, description="Characters of exemplars per prompt.")
    exemplars_shared: bool = Field(True, description="The same exemplars in every prompt (a prefix computed once).")
    context_chars: float = Field(0.0, description="Characters of retrieved context per prompt, at most.")
    dev_requests: int = Field(0, description="Answers on dev to choose a setting.")
    training_chars: float = Field(0.0, description="Characters trained on: examples x epochs.")
    epochs: int = 1
    embedding_chars: float = Field(0.0, description="Characters embedded to build an index.")
    embedder_usd_per_1m_tokens: float | None = Field(None, description="An API embedder's price.")
    notes: list[str] = Field(default_factory=list, description="What the estimate should say about this plan.")

    def after_setup(self) -> StrategyPlan:
        """The plan once an earlier run of the folder has done (and paid for) the setup: answers only."""
        return self.model_copy(update={"dev_requests": 0, "training_chars": 0.0, "embedding_chars": 0.0, "notes": []})


class Strategy:
    kind: ClassVar[str]
    Config: ClassVar[type[BaseModel]] = StrictModel
    given: Given | None = None  # what prepare() returned, once the run has prepared it

    def __init__(self, spec: StrategySpec, config: BaseModel, ctx: StrategyContext):
        self.spec = spec
        self.config = config
        self.ctx = ctx

    def prepared_strategy(self, name: str, field: str) -> Strategy:
        """The strategy `name` that this one's `config.<field>` names, as this run prepared it; refused (with the
        fix) when the run has not prepared it before this one."""
        found = self.ctx.prepared(name)
        if found is None:
            raise ConfigError(
                f"strategy '{self.spec.name}': config.{field} names '{name}', which this run has not prepared before "
                f"it. Fix: list '{name}' before '{self.spec.name}' in the suite, and include both in --strategies."
            )
        return found

    @classmethod
    def check(cls, config: BaseModel, dataset: Dataset, suite: Suite) -> Iterable[Problem]:
        """Problems visible from config and data alone, reported before any model call."""
        return ()

    @classmethod
    def unseeded(cls, config: BaseModel, suite: Suite) -> str | None:
        """Why `seeds` would give the same answers every time with this config (nothing drawn at random), or None.
        A strategy that draws with `ctx.seed` (exemplars, a training run) returns None."""
        return None

    @classmethod
    def machine_check(cls, config: BaseModel) -> Iterable[Problem]:
        """What this machine cannot run (e.g. a GPU-only tuner here). `harness validate` shows these as notes;
        `harness compare` refuses them before any model call."""
        return ()

    @classmethod
    def data_files(cls, config: BaseModel, base: Path) -> list[Path]:
        """Files or folders this strategy reads besides the splits (e.g. a corpus). Their content is hashed into
        the suite's fingerprint, so editing them invalidates finished results instead of silently mixing them."""
        return []

    @classmethod
    def data_used(cls, config: BaseModel, dataset: Dataset, suite: Suite) -> DataUsed | None:
        """The labelled examples (and corpus) the strategy uses, which economics.data prices; None: not known."""
        return None

    @classmethod
    def plan(cls, config: BaseModel, dataset: Dataset, suite: Suite) -> StrategyPlan:
        """What the strategy adds to the plan before any call (see StrategyPlan)."""
        return StrategyPlan()

    @property
    def backend(self) -> Backend:
        return self.ctx.backend

    def prepare(self) -> Given:
        """One-off work; returns what the strategy was given (recorded in run.json for fairness) and its one-off
        costs. A plugin may return `Given(kind=..., **its own keys)`."""
        return Given(kind=self.kind)

    def request(self, case: Case) -> StrategyRequest:
        raise NotImplementedError

    def close(self) -> None:
        """Release what prepare() holds outside this process (e.g. a model deployment), also after an error or
        Ctrl-C. May add to what prepare() returned (e.g. the hosting time it cost)."""

    def dev_score(
        self,
        backend: Backend,
        requests: list[GenRequest],
        cases: list[Case],
        metas: list[CaseMeta] | None = None,
        what: str = "answers on dev",
    ) -> DevScore:
        """Mean of the suite's primary metric over dev answers (through the run's cache; failed answers count as
        wrong, unscored ones are left out and counted), for choosing a setting on dev, never on test."""
        scorer = next(s for s in self.ctx.scorers if s.name == self.ctx.suite.primary_metric)
        answers = self.ctx.gateway.answer(backend, requests, what)
        values: list[float | None] = []
        for answer, case, meta in zip(answers, cases, metas or [CaseMeta()] * len(cases), strict=True):
            if answer.error is not None or answer.text is None:
                values.append(0.0)
                continue
            try:
                score = scorer.score_result(answer.text, case, meta)
                values.append(None if score is None else score.value)
            except Exception as exc:
                log.warning("scorer %s failed on dev case %s: %s", scorer.name, case.id, exc)
                values.append(None)
        scored = [v for v in values if v is not None]
        return DevScore(
            dev_score=sum(scored) / len(scored) if scored else None,
            dev_errors=sum(a.error is not None for a in answers),
            dev_unscored=len(values) - len(scored),
        )
