"""Local models' predicted time for `harness estimate`: this machine's calibrated speed (harness.costs.calibrate)
turned into seconds and dollars for each strategy's test answers, dev answers, training and indexing."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from harness.builtins import STRATEGIES
from harness.costs.pricing import Pricing
from harness.costs.tokens import MESSAGE_OVERHEAD_TOKENS, chars_to_tokens
from harness.strategy import StrategyPlan
from harness.suite.load import LoadedSuite
from harness.suite.schema import StrategySpec, curve_of

if TYPE_CHECKING:
    from harness.costs.estimate import StrategyEstimate, _PromptSizes


class LocalTime:
    """Local models' predicted time, from this machine's calibration (measured once per model and shape)."""

    def __init__(self, loaded: LoadedSuite, measure: bool = True):
        from harness.costs.calibrate import CalibrationStore

        self.loaded = loaded
        self.measure = measure
        self.store = CalibrationStore()
        self.backends: dict[str, Any] = {}

    def backend(self, name: str):
        from harness.builtins import BACKENDS

        if name not in self.backends:
            spec = next(b for b in self.loaded.suite.backends if b.name == name)
            backend = BACKENDS.get(spec.kind)(spec, self.loaded.config("backends", name))
            from harness.costs.calibrate import answer_precision

            answer_precision(backend, self.loaded, self.store, self.measure)  # predicted in the dtype it will use
            self.backends[name] = backend
        return self.backends[name]

    def strategy(self, spec: StrategySpec):
        from pathlib import Path

        from harness.strategy import StrategyContext

        suite = self.loaded.suite.for_strategy(spec)
        ctx = StrategyContext(
            suite, self.loaded.dataset, self.backend(suite.backend_for(spec).name), Path("."), suite.seed
        )
        return STRATEGIES.get(spec.kind)(spec, self.loaded.config("strategies", spec.name), ctx)

    def predict(
        self, spec: StrategySpec, est: StrategyEstimate, plan: StrategyPlan, prompts: _PromptSizes, pricing: Pricing
    ) -> None:
        from harness.costs import calibrate

        suite = self.loaded.suite.for_strategy(spec)
        backend_spec = suite.backend_for(spec)
        if backend_spec.kind != "hf":
            est.notes.append(f"no calibration for {backend_spec.kind} backends: its time is known after the run")
            return
        backend = self.backend(backend_spec.name)
        if backend.precision is not None and plan.training_chars and backend.precision.dtype != "float32":
            # a fine-tune's adapter answers in the configured precision on CPU (strategies/finetune: _serving_backend)
            key = f"{backend_spec.name} (adapter)"
            if key not in self.backends:
                self.backends[key] = type(backend)(backend.spec, backend.config.model_copy(update={"dtype": "auto"}))
            backend = self.backends[key]
        elif backend.precision is not None:
            est.notes.append(f"answers in {backend.precision.dtype}: {backend.precision.why}")
        speed = calibrate.generation_speed(backend, est.input_tokens, self.store, self.measure)
        if speed is None:
            return
        # the prefix every request shares (computed once): the system prompt, and fixed exemplars with their turns
        shared = chars_to_tokens(prompts.instructions_chars) + (
            MESSAGE_OVERHEAD_TOKENS if prompts.instructions_chars else 0
        )
        if plan.exemplars_shared:
            shared += chars_to_tokens(plan.exemplars_chars) + MESSAGE_OVERHEAD_TOKENS * 2 * plan.exemplars
        # A batch decodes until its longest answer ends: a model shown the answers' form (exemplars, training)
        # stops near the targets' length; one that is not may run on to max_new_tokens.
        shown = bool(plan.exemplars or plan.training_chars)
        steps = min(est.output_tokens + 1, est.output_tokens_max) if shown else est.output_tokens_max
        batch = backend.batch_size(round(est.input_tokens / max(est.requests, 1)) + steps)
        est.predicted_s["test"] = speed.answer_s(est.requests, est.input_tokens, shared, steps, batch)
        if plan.dev_requests:  # one round of the dev cases per candidate setting or checkpoint, each on its own
            per_round = len(self.loaded.dataset.dev) or plan.dev_requests
            rounds = max(round(plan.dev_requests / per_round), 1)
            est.predicted_s["dev"] = rounds * speed.answer_s(per_round, est.input_tokens, shared, steps, batch)
        if plan.training_chars:
            strategy = self.strategy(spec)
            training = calibrate.training_speed(strategy, self.store, self.measure)
            if training is not None:
                examples = len(strategy.examples(self.loaded.dataset.train))
                fraction = curve_of(spec.name) or 1.0
                steps_total = math.ceil(examples * fraction / training.batch) * plan.epochs
                est.predicted_s["training"] = steps_total * training.step_s
            else:
                est.notes.append("training time: not calibrated for this tuner (known after the run)")
        if plan.embedding_chars:
            strategy = self.strategy(spec)
            config = strategy.config
            if config.embedder.kind == "local":
                from harness.backends.embeddings import make_embedder

                size = config.chunking.size
                embedder = make_embedder(config.embedder, cache_queries=False)
                encoding = calibrate.embedding_speed(embedder, size, self.store, self.measure)
                if encoding is not None:
                    est.predicted_s["indexing"] = plan.embedding_chars / size / encoding.texts_per_s
        est.predicted_s = {k: round(v, 1) for k, v in est.predicted_s.items()}
        est.notes = [n for n in est.notes if "known after the run" not in n]
        if pricing.usd_per_hour is not None:
            rate = pricing.usd_per_hour / 3600
            est.predicted_usd = sum(est.predicted_s.values()) * rate
            # the phases' dollars, so a fine-tune's payback against the others can be worked out before the run
            est.inference_usd = est.predicted_s["test"] * rate
            longest = speed.answer_s(est.requests, est.input_tokens, shared, est.output_tokens_max, batch)
            est.inference_usd_max = max(longest * rate, est.inference_usd)
            if "dev" in est.predicted_s:
                est.dev_usd = est.predicted_s["dev"] * rate
            if "training" in est.predicted_s:
                est.training_usd = est.predicted_s["training"] * rate
        est.notes.append(
            f"time predicted from this machine's measured speed ({speed.prefill_tok_s:,.0f} prompt tokens/s, "
            f"{speed.step_s * 1000:.0f} ms a decode step at batch {speed.batch}); a warm cache makes it shorter"
        )

    def close(self) -> None:
        for backend in self.backends.values():
            backend.close()
