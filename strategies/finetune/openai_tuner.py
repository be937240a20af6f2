"""`openai` tuner: fine-tuning through the OpenAI API (or any server that speaks its fine-tuning endpoints).

The train split (and dev, as the validation file) are written as chat JSONL, checked like OpenAI's data-prep
cookbook (roles, empty turns, answers, at least 10 examples, tokens per example), priced (tokens x epochs x the
base model's training price) and uploaded; the job is created and its id saved at once in the workdir, so a rerun
after a crash follows the same job and never creates a second one. The job is polled with backoff and its events
appended to `events.jsonl`. Each epoch checkpoint the provider keeps becomes a checkpoint served by the suite's
`openai` backend: the finetune strategy scores them on dev and keeps the best, at the fine-tuned model's prices.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from harness.costs.prices import resolve_price
from harness.costs.tokens import MESSAGE_OVERHEAD_TOKENS, approx_tokens
from harness.errors import ConfigError, HarnessError, provider_error, require
from harness.run.folder import write_json_atomic
from harness.suite.chat_format import chat_lines
from harness.suite.schema import StrictModel
from harness.tuner import Checkpoint, Preflight, TrainExample, Tuner, TuneResult, TunerStats
from strategies.finetune.preflight import preflight

log = logging.getLogger(__name__)
TERMINAL = ("succeeded", "failed", "cancelled")
MAX_TOKENS_PER_EXAMPLE = 65536  # the provider's limit per training example


class OpenAITunerConfig(StrictModel):
    epochs: int | Literal["auto"] = Field("auto", description="n_epochs, or auto (the provider chooses).")
    batch_size: int | Literal["auto"] = Field("auto")
    learning_rate_multiplier: float | Literal["auto"] = Field("auto")
    suffix: str | None = Field(None, max_length=64, description="Part of the fine-tuned model's name.")
    seed: int | None = Field(None, description="Default: the suite's seed.")
    validation: bool = Field(True, description="Upload the dev split as the validation file.")
    metadata: dict[str, str] = Field(default_factory=dict)
    max_tokens_per_example: int = Field(
        MAX_TOKENS_PER_EXAMPLE, ge=16, description="The provider's limit per training example."
    )
    poll_s: float = Field(10.0, gt=0, description="First wait between status checks (doubles up to poll_max_s).")
    poll_max_s: float = Field(60.0, gt=0)
    cancel_on_abort: bool = Field(False, description="Cancel the job on Ctrl-C (default: leave it running, resumable).")


def example_tokens(example: TrainExample) -> int:
    """Tokens of one training conversation, as the provider counts them (approximately)."""
    text = sum(len(m["content"]) for m in example.prompt) + len(example.completion)
    return approx_tokens(text) + MESSAGE_OVERHEAD_TOKENS * (len(example.prompt) + 1)


class OpenAITuner(Tuner):
    kind = "openai"
    Config = OpenAITunerConfig
    provider_auto_epochs = True

    def validate(self, examples: list[TrainExample]) -> Preflight:
        if self.ctx.base.kind != "openai":
            raise ConfigError(
                f"the openai tuner fine-tunes a model of an `openai` backend; '{self.ctx.base.name}' is "
                f"'{self.ctx.base.kind}'. Fix: use tuner kind local for local models."
            )
        return self.check_file(examples, cap=self.config.max_tokens_per_example)

    @staticmethod
    def check_file(examples: list[TrainExample], cap: int = MAX_TOKENS_PER_EXAMPLE) -> Preflight:
        """The checks an upload gets (after OpenAI's data-prep cookbook): roles, empty turns, answers, at least 10
        examples, tokens per example under the provider's limit."""
        return preflight(examples, example_tokens, max_length=None, cap=cap, max_truncated_fraction=0.0)

    def _epochs_for_estimate(self) -> int:
        return self.config.epochs if isinstance(self.config.epochs, int) else 3  # the provider's usual choice

    def estimate(self, pre: Preflight) -> dict[str, Any]:
        epochs = self._epochs_for_estimate()
        tokens = pre.total_tokens * epochs
        price = resolve_price(self.ctx.base.model, None)
        per_1m = price.price.training_per_1m_usd if price else None
        return {
            "trained_tokens": tokens,
            "epochs": epochs,
            "epochs_assumed": not isinstance(self.config.epochs, int),
            "usd": None if per_1m is None else tokens * per_1m / 1e6,
        }

    # ---- the API ------------------------------------------------------------------------------------

    def _api_config(self):
        from harness.backends.openai_api import OpenAIConfig

        return OpenAIConfig.model_validate(self.ctx.base_config or {})

    def _client(self):
        from harness.errors import api_key

        openai = require("openai", extra="openai", purpose="the openai tuner")
        config = self._api_config()
        key = api_key(config.api_key_env, who=f"tuner of backend '{self.ctx.base.name}'", setting="config.api_key_env")
        common = {"api_key": key, "timeout": config.timeout_s, "max_retries": config.max_retries}
        if config.azure_api_version:
            return openai.AzureOpenAI(azure_endpoint=config.base_url, api_version=config.azure_api_version, **common)
        return openai.OpenAI(base_url=config.base_url, **common)

    @property
    def _job_file(self) -> Path:
        return self.ctx.workdir / "job.json"

    def _saved_job(self) -> dict[str, Any] | None:
        return json.loads(self._job_file.read_text()) if self._job_file.exists() else None

    def _upload(self, client, name: str, examples: list[TrainExample]) -> str:
        path = self.ctx.workdir / name
        write_json_atomic(path, chat_lines([(e.prompt, e.completion) for e in examples]))
        with path.open("rb") as fh:
            return client.files.create(file=fh, purpose="fine-tune").id

    def _create(self, client, examples: list[TrainExample], validation: list[TrainExample]) -> dict[str, Any]:
        training_file = self._upload(client, "train.jsonl", examples)
        validation_file = self._upload(client, "validation.jsonl", validation) if validation else None
        hyper = {k: getattr(self.config, k) for k in ("batch_size", "learning_rate_multiplier")}
        hyper["n_epochs"] = self.config.epochs
        body: dict[str, Any] = {
            "model": self.ctx.base.model,
            "training_file": training_file,
            "method": {"type": "supervised", "supervised": {"hyperparameters": hyper}},
            "seed": self.config.seed if self.config.seed is not None else self.ctx.seed,
        }
        if validation_file:
            body["validation_file"] = validation_file
        if self.config.suffix:
            body["suffix"] = self.config.suffix
        if self.config.metadata:
            body["metadata"] = self.config.metadata
        job = client.fine_tuning.jobs.create(**body)
        saved = {
            "job_id": job.id,
            "created_at": time.time(),
            "training_file": training_file,
            "validation_file": validation_file,
        }
        write_json_atomic(self._job_file, json.dumps(saved))  # before anything else can fail: never a second job
        log.info("openai tuner: created fine-tuning job %s", job.id)
        return saved

    def _events(self, client, job_id: str) -> None:
        """Append the job's new events to events.jsonl (oldest first)."""
        path = self.ctx.workdir / "events.jsonl"
        seen = set()
        if path.exists():
            seen = {json.loads(line)["id"] for line in path.read_text().splitlines() if line.strip()}
        fresh = [e for e in client.fine_tuning.jobs.list_events(job_id, limit=100).data if e.id not in seen]
        if fresh:
            with path.open("a", encoding="utf-8") as fh:
                for event in sorted(fresh, key=lambda e: e.created_at):
                    fh.write(json.dumps(event.model_dump(mode="json")) + "\n")

    def events(self) -> list[dict[str, Any]]:
        path = self.ctx.workdir / "events.jsonl"
        return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []

    @contextmanager
    def _api(self, doing: str):
        """A failed call to the provider's API becomes a user-facing error (any key its body quotes masked), not a
        traceback."""
        openai = require("openai", extra="openai", purpose="the openai tuner")
        try:
            yield
        except openai.APIError as exc:
            raise provider_error(
                exc,
                who=f"{self.kind} tuner of backend '{self.ctx.base.name}': {doing}",
                key_env=self._api_config().api_key_env,
            ) from None

    def status(self) -> str:
        saved = self._saved_job()
        if saved is None:
            return "not_started"
        with self._api("reading the job's status"):
            return self._client().fine_tuning.jobs.retrieve(saved["job_id"]).status

    def cancel(self) -> None:
        saved = self._saved_job()
        if saved is not None:
            with self._api("cancelling the job"):
                self._client().fine_tuning.jobs.cancel(saved["job_id"])

    def _cancel_on_abort(self, job_id: str) -> bool:
        """Cancel on Ctrl-C? The config or `harness compare --cancel-on-abort` say yes; at a terminal the user is
        asked (default: no, the job keeps running and a rerun follows it)."""
        if self.config.cancel_on_abort or os.environ.get("HARNESS_CANCEL_ON_ABORT") == "1":
            return True
        if sys.stdin.isatty() and sys.stderr.isatty():
            try:
                answer = input(
                    f"\ncancel fine-tuning job {job_id}? It keeps running (and billing) otherwise, and a "
                    "rerun follows it. [y/N] "
                )
            except (EOFError, KeyboardInterrupt):
                return False
            return answer.strip().lower() in ("y", "yes")
        return False

    def train(self, examples: list[TrainExample], pre: Preflight) -> TuneResult:
        with self._api("fine-tuning"):
            return self._train(examples, pre)

    def _train(self, examples: list[TrainExample], pre: Preflight) -> TuneResult:
        client = self._client()
        saved = self._saved_job()
        started = time.time()
        if saved is None:
            validation = self.ctx.validation if self.config.validation else []
            saved = self._create(client, examples, validation)
        else:
            log.info("openai tuner: following fine-tuning job %s (created by an earlier run)", saved["job_id"])
        job_id = saved["job_id"]
        job = self._follow(client, job_id)
        if job.status != "succeeded":
            message = (job.error.message if job.error else None) or job.status
            raise HarnessError(
                f"fine-tuning job {job_id} ended {job.status}: {message}. Its events are in "
                f"{self.ctx.workdir / 'events.jsonl'}. Fix: see the events; delete {self._job_file} to "
                "start a new job."
            )
        checkpoints, epochs = self._checkpoints(client, job)
        curve = [
            {"step": e["data"]["step"], "loss": e["data"].get("train_loss")}
            for e in self.events()
            if e.get("type") == "metrics" and e.get("data") and "step" in e["data"]
        ]
        price = resolve_price(self.ctx.base.model, None)
        per_1m = price.price.training_per_1m_usd if price else None
        trained = job.trained_tokens or 0
        stats = TunerStats(
            device="api",
            provider="openai",
            job_id=job_id,
            status=job.status,
            wall_s=round(time.time() - started, 3),
            trained_tokens=trained,
            epochs=epochs,
            fine_tuned_model=job.fine_tuned_model,
            cost_usd=None if per_1m is None else trained * per_1m / 1e6,
            cost_basis=f"trained tokens x {self.ctx.base.model} training price"
            if per_1m is not None
            else f"no training price for {self.ctx.base.model}",
        )
        return TuneResult(checkpoints=checkpoints, curve=curve, stats=stats)

    def _follow(self, client, job_id: str):
        """Poll the job (backing off) until it ends, keeping its events; on Ctrl-C cancel it or leave it running."""
        wait = self.config.poll_s
        try:
            while True:
                job = client.fine_tuning.jobs.retrieve(job_id)
                self._events(client, job_id)
                if job.status in TERMINAL:
                    return job
                time.sleep(wait)
                wait = min(wait * 2, self.config.poll_max_s)
        except KeyboardInterrupt:
            if self._cancel_on_abort(job_id):
                client.fine_tuning.jobs.cancel(job_id)
                log.warning("openai tuner: job %s cancelled", job_id)
            else:
                log.warning("openai tuner: job %s keeps running; rerun the same command to follow it", job_id)
            raise

    def _checkpoints(self, client, job) -> tuple[list[Checkpoint], int]:
        """The job's per-epoch checkpoints (the provider keeps the last few) and the final model, with the epochs."""
        checkpoints = sorted(client.fine_tuning.jobs.checkpoints.list(job.id).data, key=lambda c: c.step_number)
        epochs = int(job.hyperparameters.n_epochs) if str(job.hyperparameters.n_epochs).isdigit() else len(checkpoints)
        found = [
            Checkpoint(
                epoch=float(epochs - len(checkpoints) + i + 1),
                step=c.step_number,
                backend_kind="openai",
                model=c.fine_tuned_model_checkpoint,
                adapter=None,
            )
            for i, c in enumerate(checkpoints)
        ]
        if not found or found[-1].model != job.fine_tuned_model:
            step = (found[-1].step + 1) if found else 0
            found.append(
                Checkpoint(
                    epoch=float(epochs), step=step, backend_kind="openai", model=job.fine_tuned_model, adapter=None
                )
            )
        return found, epochs
