"""What a run will do before it does it: which strategies, which test cases and repeats are still to answer, and
one planned model call per (strategy, case, repeat) once its request is built.

The suite's fingerprint (what changes answers or their scores) keys the run folder, so a rerun resumes only
results of the same suite and data.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from harness.backends.base import GenRequest
from harness.errors import ConfigError, closest
from harness.records.cases import CaseMeta, CaseResult
from harness.suite.data import Case
from harness.suite.load import LoadedSuite
from harness.suite.schema import StrategySpec

# Parts of a suite that change the answers or their scores; editing the others (name, description,
# repeats, economics, decision) keeps a run folder resumable.
ANSWER_FIELDS = {"seed", "task", "data", "backends", "strategies", "scorers"}

Key = tuple[str, str, int]  # (strategy, case id, repeat)


def suite_fingerprint(loaded: LoadedSuite) -> str:
    payload = {"suite": loaded.suite.model_dump(mode="json", include=ANSWER_FIELDS), "data": loaded.dataset.hashes}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


@dataclass
class PlannedCall:
    """One answer to get: the case and repeat it is for, the request, its cache key, and the prompt's tokens by
    part (for cost attribution)."""

    case: Case
    repeat: int
    meta: CaseMeta
    request: GenRequest
    key: str
    parts: dict[str, int] = field(default_factory=dict)


@dataclass
class RunPlan:
    """The strategies and test cases of one invocation, and what the run folder already holds."""

    loaded: LoadedSuite
    selected: list[StrategySpec]
    test: list[Case]
    fingerprint: str
    done: dict[Key, CaseResult] = field(default_factory=dict)
    retry_errors: bool = False

    @classmethod
    def make(cls, loaded: LoadedSuite, *, names: list[str] | None, limit: int | None, retry_errors: bool) -> RunPlan:
        test = loaded.dataset.test[:limit] if limit else loaded.dataset.test
        return cls(loaded, select(loaded, names), test, suite_fingerprint(loaded), retry_errors=retry_errors)

    @property
    def repeats(self) -> int:
        return self.loaded.suite.repeats

    def finished(self, key: Key) -> bool:
        """A result that stays: a success, or an error when errors are not being retried."""
        prior = self.done.get(key)
        return prior is not None and (prior.error is None or not self.retry_errors)

    def todo(self, strategy: str) -> list[tuple[Case, int]]:
        """(case, repeat) pairs of `strategy` still to answer, in test order."""
        return [
            (case, r) for case in self.test for r in range(self.repeats) if not self.finished((strategy, case.id, r))
        ]


def select(loaded: LoadedSuite, names: list[str] | None) -> list[StrategySpec]:
    """The suite's strategies named by --strategies (all when None), in suite order, each once per seed and
    learning-curve subset."""
    specs = loaded.suite.strategies
    known = [s.name for s in specs]
    for name in names or []:
        if name not in known:
            raise ConfigError(
                f"--strategies: no strategy named '{name}'.{closest(name, known)} Strategies: {', '.join(known)}."
            )
    return [v for s in specs if not names or s.name in names for v in s.run_variants()]
