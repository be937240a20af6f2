"""What every tuner (fine-tuning engine) provides, local or cloud: validate, estimate, train (or submit and wait),
status, cancel, and a result whose checkpoints name the backend and model/adapter that serve them, with the
training's statistics in one shape for every tuner (`TunerStats`).

The strategy that uses a tuner (strategies/finetune) scores each checkpoint on dev and keeps the best, so a
tuner never needs to know about scorers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel

from harness.records.setup import Deployment, Preflight, TunerStats
from harness.suite.schema import BackendSpec, StrictModel


@dataclass
class TrainExample:
    """One training conversation: the prompt exactly as inference sends it, and the answer to learn."""

    id: str
    prompt: list[dict[str, str]]
    completion: str


@dataclass
class Checkpoint:
    epoch: float
    step: int
    backend_kind: str  # the backend that serves it, e.g. "hf"
    model: str  # base model (or a full fine-tuned folder)
    adapter: str | None  # adapter folder, when the method trains one


@dataclass
class TuneResult:
    checkpoints: list[Checkpoint]
    curve: list[dict[str, Any]]  # one row per logged step: step, epoch, loss, learning_rate, ... (as the trainer logs)
    stats: TunerStats

    def to_json(self) -> dict[str, Any]:
        return {
            "checkpoints": [asdict(c) for c in self.checkpoints],
            "curve": self.curve,
            "stats": self.stats.model_dump(mode="json", exclude_none=True),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TuneResult:
        return cls(
            [Checkpoint(**c) for c in data["checkpoints"]], data["curve"], TunerStats.model_validate(data["stats"])
        )


@dataclass
class TuneContext:
    base: BackendSpec  # the backend whose model is fine-tuned (and serves the result)
    base_source: str  # resolved path or hub id of its model
    workdir: Path  # checkpoints and logs; a rerun resumes here
    seed: int
    base_config: dict[str, Any] | None = None  # the base backend's config (cloud tuners reach the same endpoint)
    validation: list[TrainExample] = field(default_factory=list)  # dev examples, for tuners that take a validation file
    # Called with every checkpoint so far after each one is saved; True: stop training there (`epochs: auto`).
    # Tuners that cannot stop mid-training ignore it and the strategy stops scoring at the same point instead.
    on_checkpoint: Callable[[list[Checkpoint]], bool] | None = None
    progress: Any = None  # harness.run.progress.Progress: training shows steps, loss and tokens/s (None: log lines)
    name: str = "training"  # who trains, in progress lines (the strategy's name)


class Tuner:
    kind: ClassVar[str]
    Config: ClassVar[type[BaseModel]] = StrictModel
    # The tuner's own `epochs: auto` means the provider chooses (OpenAI); otherwise the finetune strategy's
    # `epochs: auto` trains until dev stops improving.
    provider_auto_epochs: ClassVar[bool] = False

    def __init__(self, config: BaseModel, ctx: TuneContext):
        self.config = config
        self.ctx = ctx

    @classmethod
    def check(cls, config: BaseModel) -> list[tuple[tuple[str | int, ...], str]]:
        """Problems visible from the config alone (e.g. a method this machine cannot run)."""
        return []

    @classmethod
    def machine_check(cls, config: BaseModel) -> list[tuple[tuple[str | int, ...], str]]:
        """What this machine lacks to run the config (e.g. a GPU). Shown by `harness validate` as a note and
        refused by `harness compare` before any model call. Locations are relative to the tuner's spec
        (("kind",) or ("config", key))."""
        return []

    def validate(self, examples: list[TrainExample]) -> Preflight:
        raise NotImplementedError

    def estimate(self, preflight: Preflight) -> dict[str, Any]:
        raise NotImplementedError

    def train(self, examples: list[TrainExample], preflight: Preflight) -> TuneResult:
        """Train (or submit and follow a job) to the end; resumes from the workdir when it holds a partial run."""
        raise NotImplementedError

    def status(self) -> str:
        """One of: not_started, running_or_interrupted, succeeded, failed, cancelled (cloud jobs say more)."""
        return "unknown"

    def events(self) -> list[dict[str, Any]]:
        """What the job reported so far (loss per step, provider messages), oldest first."""
        return []

    def cancel(self) -> None:
        """Stop a running job (cloud tuners); local training stops with the process."""

    def serve(self, checkpoint: Checkpoint) -> str:
        """The model name that serves `checkpoint` (a cloud tuner may deploy it first); release() undoes it."""
        return checkpoint.model

    def release(self, checkpoint: Checkpoint, *, final: bool = False) -> None:
        """Stop serving `checkpoint` (e.g. delete its deployment); `final`: the run is over (a tuner may keep the
        chosen deployment when asked to)."""

    def hosting_usd_per_hour(self) -> float | None:
        """What serving the fine-tuned model costs per hour while it is deployed (None: nothing fixed)."""
        return None

    def hosting(self) -> Deployment | None:
        """The deployments this run held: time, rate, dollars, what was kept (None: no deployments)."""
        return None
