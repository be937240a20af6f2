"""The `finetune` strategy: train on the train split with a tuner, score every epoch's checkpoint on dev with
the suite's primary scorer, keep the best, and answer the test cases with it.

The prompt is built by the same function as inference (harness.suite.prompts.build_messages), so the model is
trained on exactly what it will be served. A finished training is reused from HARNESS_HOME/tuning, keyed by
base model, data and hyperparameters; an unfinished one resumes from its last checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from pydantic import Field

from harness.backends.base import GenRequest
from harness.backends.hf import HFBackend, HFConfig
from harness.builtins import TUNERS
from harness.costs.prices import device_cost
from harness.errors import HarnessError
from harness.home import harness_home
from harness.records.setup import (
    ChosenCheckpoint,
    DevScore,
    EpochScore,
    FineTuneGiven,
    ForgettingCheck,
    MergeInfo,
    Preflight,
    SetupCost,
)
from harness.run.folder import write_json_atomic
from harness.strategy import Strategy, StrategyPlan, StrategyRequest
from harness.suite.prompts import build_messages, prompt_parts
from harness.suite.schema import StrictModel, explain_errors
from harness.tuner import Checkpoint, TrainExample, TuneContext, TuneResult
from strategies.finetune.preflight import structural_problems

log = logging.getLogger(__name__)


# Bump when a change to the tuners would train a different model from the same inputs: finished fine-tunes made
# by older code are then not reused.
TUNING_CODE_VERSION = 2


class TunerSpec(StrictModel):
    kind: str = Field("local", description="Tuner: local (trl + peft), unsloth (GPU), autotrain, openai, azure.")
    config: dict[str, Any] = Field(default_factory=dict, description="Options of that tuner (see `harness schema`).")


class FineTuneConfig(StrictModel):
    tuner: TunerSpec = Field(default_factory=TunerSpec)
    merge: bool = Field(False, description="Merge the chosen adapter into the base weights and serve the merged model.")
    merge_parity_cases: int = Field(
        8, ge=1, le=1000, description="Dev cases whose greedy answers must match after merging."
    )
    forgetting_check: bool = Field(
        False,
        description="Score base and fine-tuned model on a small general task with lm-eval (needs the eval extra).",
    )


def training_examples(task, cases) -> list[TrainExample]:
    return [TrainExample(id=c.id, prompt=build_messages(task, c), completion=c.target) for c in cases]


class FineTune(Strategy):
    kind = "finetune"
    Config = FineTuneConfig

    @classmethod
    def check(cls, config: FineTuneConfig, dataset, suite):
        from pydantic import ValidationError

        try:
            tuner_cls = TUNERS.get(config.tuner.kind)
        except HarnessError as exc:
            yield ("tuner", "kind"), str(exc)
            return
        try:
            tuner_config = tuner_cls.Config.model_validate(config.tuner.config)
        except ValidationError as exc:
            for loc, msg in explain_errors(exc, tuner_cls.Config):
                yield ("tuner", "config", *loc), msg
            return
        yield from ((("tuner", "config", *loc), msg) for loc, msg in tuner_cls.check(tuner_config))
        for problem in structural_problems(training_examples(suite.task, dataset.train))[:5]:
            yield ("tuner",), problem

    @classmethod
    def machine_check(cls, config: FineTuneConfig):
        try:
            tuner_cls = TUNERS.get(config.tuner.kind)
            tuner_config = tuner_cls.Config.model_validate(config.tuner.config)
        except Exception:
            return
        for loc, msg in tuner_cls.machine_check(tuner_config):
            yield ("tuner", *loc), msg

    @classmethod
    def plan(cls, config: FineTuneConfig, dataset, suite):
        tuner = TUNERS.get(config.tuner.kind)
        tuner_config = tuner.Config.model_validate(config.tuner.config)
        epochs = getattr(tuner_config, "epochs", 1) or 1
        text = sum(len(m["content"]) for e in training_examples(suite.task, dataset.train) for m in e.prompt)
        text += sum(len(c.target) for c in dataset.train)
        return StrategyPlan(training_chars=text * epochs, epochs=epochs, dev_requests=len(dataset.dev) * epochs)

    def _tuner(self):
        cls = TUNERS.get(self.config.tuner.kind)
        return cls, cls.Config.model_validate(self.config.tuner.config)

    def _workdir_key(self, examples: list[TrainExample], tuner_kind: str, tuner_config) -> str:
        from harness.run.manifest import package_versions

        versions = package_versions()
        payload = {
            "code": TUNING_CODE_VERSION,
            "libraries": {k: versions.get(k) for k in ("torch", "transformers", "peft", "trl", "accelerate")},
            "base": self.ctx.backend.identity(),
            "examples": [(e.prompt, e.completion) for e in examples],
            "tuner": tuner_kind,
            "config": tuner_config.model_dump(mode="json"),
            "seed": self.ctx.seed,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]

    def make_tuner(self):
        """The tuner for this strategy's config, working in the HARNESS_HOME folder keyed by its inputs."""
        examples = training_examples(self.ctx.suite.task, self.ctx.dataset.train)
        cls, tuner_config = self._tuner()
        base = self.ctx.backend
        workdir = harness_home() / "tuning" / self._workdir_key(examples, cls.kind, tuner_config)
        workdir.mkdir(parents=True, exist_ok=True)
        tuner = cls(
            tuner_config,
            TuneContext(
                base=base.spec,
                base_source=base.source() if hasattr(base, "source") else base.spec.model,
                workdir=workdir,
                seed=self.ctx.seed,
                base_config=base.config.model_dump(mode="json"),
                validation=training_examples(self.ctx.suite.task, self.ctx.dataset.dev),
            ),
        )
        return tuner, examples

    def train_or_reuse(self):
        """Train (or reuse the finished training of the same inputs); returns (tuner, preflight, result, reused)."""
        tuner, examples = self.make_tuner()
        pre = tuner.validate(examples)
        for warning in pre.warnings:
            log.warning("%s: %s", self.spec.name, warning)
        done = tuner.ctx.workdir / "result.json"
        reused = done.exists()
        if reused:
            result = TuneResult.from_json(json.loads(done.read_text()))
            log.info("%s: reusing the finished fine-tune in %s (no training)", self.spec.name, tuner.ctx.workdir)
        else:
            log.info("%s: fine-tuning (%s) ...", self.spec.name, tuner.estimate(pre))
            result = tuner.train(examples, pre)
            write_json_atomic(done, json.dumps(result.to_json(), indent=1))
        return tuner, pre, result, reused

    def prepare(self) -> FineTuneGiven:
        base = self.ctx.backend
        tuner, pre, result, reused = self.train_or_reuse()
        workdir = tuner.ctx.workdir
        self._tuner_obj = tuner
        epochs = self._score_checkpoints(result.checkpoints)
        best = self._choose(epochs)
        chosen = result.checkpoints[best.index]
        self._chosen = chosen
        self.ctx.backend = self._serving_backend(chosen, tuner.serve(chosen))
        self._write_logs(result, epochs)
        given = self._given(tuner.config, pre, result, epochs, best, reused, workdir)
        # a deployment billed by the hour while it exists (Azure)
        given.hosting_usd_per_hour = tuner.hosting_usd_per_hour()
        self._given = given
        if self.config.merge:
            given.merged = (
                self._merge(chosen, workdir)
                if chosen.adapter
                else MergeInfo(used=False, why="no adapter: full fine-tune")
            )
        if self.config.forgetting_check:
            from strategies.finetune.forgetting import forgetting_check

            given.forgetting = ForgettingCheck.model_validate(
                forgetting_check(
                    base.source(),
                    chosen.adapter,
                    None if chosen.adapter else chosen.model,
                    result.stats.device,
                    workdir / f"forgetting-step{chosen.step}.json",
                )
            )
        return given

    def _merge(self, chosen: Checkpoint, workdir) -> MergeInfo:
        """Fold the adapter into the base weights, check greedy answers are unchanged on dev, serve the merge."""
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        target = workdir / f"merged-step{chosen.step}"
        if not (target / "config.json").exists():
            adapter_backend = self.ctx.backend
            plain = AutoModelForCausalLM.from_pretrained(adapter_backend.source(), dtype="auto")
            merged = PeftModel.from_pretrained(plain, chosen.adapter).merge_and_unload()
            tmp = target.with_name(target.name + ".tmp")
            merged.save_pretrained(tmp)
            adapter_backend.tokenizer().save_pretrained(tmp)
            tmp.replace(target)  # a half-written merge is never mistaken for a finished one
        merged_backend = self._serving_backend(Checkpoint(chosen.epoch, chosen.step, "hf", str(target), None))
        cases = (self.ctx.dataset.dev or self.ctx.dataset.train)[: self.config.merge_parity_cases]
        params = self.ctx.backend.spec.generation.model_copy(update={"temperature": 0.0})
        requests = [GenRequest(build_messages(self.ctx.suite.task, c), params) for c in cases]
        before = [r.text for r in self.ctx.gateway.answer(self.ctx.backend, requests)]
        after = [r.text for r in self.ctx.gateway.answer(merged_backend, requests)]
        same = sum(a == b for a, b in zip(before, after, strict=True))
        info = MergeInfo(path=str(target), parity_cases=len(cases), identical=same, used=same == len(cases))
        if same < len(cases):
            log.warning(
                "%s: the merged model answers %d of %d dev cases differently from the adapter (greedy); "
                "serving the adapter instead",
                self.spec.name,
                len(cases) - same,
                len(cases),
            )
            merged_backend.close()
            return info
        self.ctx.backend.close()
        self.ctx.backend = merged_backend
        return info

    # ---- dev selection ---------------------------------------------------------------------------

    def _serving_backend(self, checkpoint: Checkpoint, model: str | None = None):
        base = self.ctx.backend
        spec = base.spec.model_copy(update={"model": model or checkpoint.model})
        if checkpoint.backend_kind != "hf":  # a provider's fine-tuned model, served like its base
            config = base.config.model_copy(update={"price_as": checkpoint.model}) if model else base.config
            return type(base)(spec, config)
        config = HFConfig.model_validate({**base.config.model_dump(), "adapter": checkpoint.adapter})
        return HFBackend(spec, config)

    def _score_checkpoints(self, checkpoints: list[Checkpoint]) -> list[EpochScore]:
        dev = self.ctx.dataset.dev
        rows = []
        for i, ckpt in enumerate(checkpoints):
            score = DevScore(dev_score=None)
            if dev:
                tuner = getattr(self, "_tuner_obj", None)
                backend = self._serving_backend(ckpt, tuner.serve(ckpt) if tuner else None)
                params = self.ctx.backend.spec.generation
                try:
                    score = self.dev_score(
                        backend, [GenRequest(build_messages(self.ctx.suite.task, c), params) for c in dev], dev
                    )
                finally:
                    backend.close()
                    if tuner:
                        tuner.release(ckpt)
            rows.append(EpochScore(index=i, epoch=ckpt.epoch, step=ckpt.step, **score.model_dump()))
        return rows

    @staticmethod
    def _choose(epochs: list[EpochScore]) -> EpochScore:
        scored = [e for e in epochs if e.dev_score is not None]
        if not scored:  # no dev split: the last checkpoint, and the report says it was not chosen on dev
            return epochs[-1]
        return max(scored, key=lambda e: (e.dev_score or 0.0, -e.index))  # ties go to the earlier epoch

    def _write_logs(self, result: TuneResult, epochs: list[EpochScore]) -> None:
        folder = self.ctx.run_dir / "training" / self.spec.name
        folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(folder / "curve.jsonl", "".join(json.dumps(row) + "\n" for row in result.curve))
        write_json_atomic(folder / "epochs.jsonl", "".join(e.model_dump_json() + "\n" for e in epochs))

    def _given(
        self,
        config,
        pre: Preflight,
        result: TuneResult,
        epochs: list[EpochScore],
        best: EpochScore,
        reused: bool,
        workdir,
    ) -> FineTuneGiven:
        scores = [e.dev_score for e in epochs]
        if len(scores) < 2 or None in scores[-2:]:
            rising = None  # unknown: one epoch, or no dev split
        else:
            rising = best.index == len(epochs) - 1 and (scores[-1] or 0.0) > (scores[-2] or 0.0)
        stats = result.stats
        if stats.device == "api":  # a provider's bill (trained tokens x price), not device time
            cost, basis = stats.cost_usd, stats.cost_basis or ""
        else:
            hours = stats.device_hours if stats.device_hours is not None else stats.wall_s / 3600
            cost, basis = device_cost(self.ctx.suite, stats.device, hours)
        # billed by the provider this run (a reused job was paid for when it ran): counts against budget_usd
        paid = 0.0 if reused or stats.device != "api" else (cost or 0.0)
        return FineTuneGiven(
            tuner=self.config.tuner.kind,
            hyperparameters=config.model_dump(mode="json"),
            preflight=pre,
            epochs_trained=len(epochs),
            dev_scores=scores,
            chosen=ChosenCheckpoint(
                epoch=best.epoch,
                step=best.step,
                dev_score=best.dev_score,
                on="dev" if best.dev_score is not None else "last epoch (no dev split)",
            ),
            dev_still_rising_at_last_epoch=rising,
            training=stats,
            setup_costs=[SetupCost(what="training", usd=cost, basis=basis, paid_usd=paid)],
            reused_from_cache=reused,
            workdir=str(workdir),
        )

    def close(self) -> None:
        tuner, chosen = getattr(self, "_tuner_obj", None), getattr(self, "_chosen", None)
        if tuner is not None and chosen is not None:
            tuner.release(chosen, final=True)
        hosting = tuner.hosting() if tuner is not None else None
        if hosting is not None and getattr(self, "_given", None) is not None:
            self._given.deployment = hosting

    def request(self, case):
        task = self.ctx.suite.task
        return StrategyRequest(build_messages(task, case), parts=prompt_parts(task, case))
