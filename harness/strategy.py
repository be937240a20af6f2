"""What every strategy provides: `prepare` once (pick exemplars, build an index, fine-tune), then `request` per case.

The runner owns batching, caching and timing; a strategy only says what to send for each case.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel

from harness.backends.base import Backend, GenRequest, GenResult
from harness.suite.data import Case, Dataset
from harness.suite.schema import StrategySpec, StrictModel, Suite

log = logging.getLogger(__name__)

Problem = tuple[tuple[str | int, ...], str]  # (location inside the strategy's config, message with the fix)


def _uncached(backend: Backend, requests: list[GenRequest]) -> list[GenResult]:
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
    # Generation for a strategy's own needs (e.g. scoring checkpoints on dev), through the run's response cache.
    answer: Callable[[Backend, list[GenRequest]], list[GenResult]] = _uncached


@dataclass
class StrategyRequest:
    messages: list[dict[str, str]]
    meta: dict[str, Any] = field(default_factory=dict)  # kept in the case's result line (e.g. exemplar ids)
    # The prompt's texts by part (harness.suite.prompts.prompt_parts), so its tokens can be attributed; None: all input.
    parts: dict[str, str] | None = None


class Strategy:
    kind: ClassVar[str]
    Config: ClassVar[type[BaseModel]] = StrictModel

    def __init__(self, spec: StrategySpec, config: BaseModel, ctx: StrategyContext):
        self.spec = spec
        self.config = config
        self.ctx = ctx

    @classmethod
    def check(cls, config: BaseModel, dataset: Dataset, suite: Suite) -> Iterable[Problem]:
        """Problems visible from config and data alone, reported before any model call."""
        return ()

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
    def plan(cls, config: BaseModel, dataset: Dataset, suite: Suite) -> dict[str, Any]:
        """What the strategy adds to the plan before any call, for `harness estimate` (in characters; the estimate
        turns them into tokens): `exemplars_chars` and `context_chars` per request, `dev_requests` (answers on dev
        to choose a setting), `training_chars` (examples x epochs), `embedding_chars` (indexing)."""
        return {}

    @property
    def backend(self) -> Backend:
        return self.ctx.backend

    def prepare(self) -> dict[str, Any]:
        """One-off work; returns what the strategy was given (recorded in run.json for fairness)."""
        return {}

    def request(self, case: Case) -> StrategyRequest:
        raise NotImplementedError

    def close(self) -> None:
        """Release what prepare() holds outside this process (e.g. a model deployment), also after an error or
        Ctrl-C. May add to what prepare() returned (e.g. the hosting time it cost)."""

    def dev_score(self, backend: Backend, requests: list[GenRequest], cases: list[Case],
                  metas: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Mean of the suite's primary metric over dev answers (through the run's cache; failed answers count as
        wrong, unscored ones are left out and counted), for choosing a setting on dev, never on test."""
        scorer = next(s for s in self.ctx.scorers if s.name == self.ctx.suite.primary_metric)
        answers = self.ctx.answer(backend, requests)
        values = []
        for answer, case, meta in zip(answers, cases, metas or [{}] * len(cases), strict=True):
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
        return {"dev_score": sum(scored) / len(scored) if scored else None,
                "dev_errors": sum(a.error is not None for a in answers), "dev_unscored": len(values) - len(scored)}
