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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.backends.base import GenRequest
from harness.backends.hf import HFBackend, HFConfig
from harness.builtins import TUNERS
from harness.costs.prices import device_cost
from harness.errors import ConfigError, HarnessError
from harness.home import harness_home, move_aside, tree_fingerprint
from harness.records.setup import (
    ChosenCheckpoint,
    DataUsed,
    DevScore,
    EarlyStopping,
    EpochScore,
    FineTuneGiven,
    ForgettingCheck,
    MergeInfo,
    Preflight,
    SearchCandidate,
    SetupCost,
    TunerStats,
)
from harness.run.folder import write_json_atomic
from harness.strategy import Strategy, StrategyPlan, StrategyRequest, reference_problem
from harness.suite.data import Case, curve_subset
from harness.suite.prompts import build_messages, prompt_parts
from harness.tuner import Checkpoint, TrainExample, TuneContext, Tuner, TuneResult
from strategies.finetune.config import FineTuneConfig, config_problems, parse, training_examples
from strategies.finetune.preflight import structural_problems
from strategies.finetune.search import (
    Candidate,
    EarlyStop,
    Search,
    grid_edges,
    locate,
    patience_exhausted,
)

log = logging.getLogger(__name__)


# Bump when a change to the tuners would train a different model from the same inputs: finished fine-tunes made
# by older code are then not reused.
TUNING_CODE_VERSION = 2


@dataclass
class Trained:
    """One candidate of the search, trained (or reused) and scored on dev epoch by epoch."""

    candidate: Candidate
    tuner: Tuner
    pre: Preflight
    result: TuneResult
    reused: bool
    epochs: list[EpochScore] = field(default_factory=list)

    @property
    def best(self) -> EpochScore:
        scored = [e for e in self.epochs if e.dev_score is not None]
        if not scored:  # no dev split: the last checkpoint, and the report says it was not chosen on dev
            return self.epochs[-1]
        return max(scored, key=lambda e: (e.dev_score or 0.0, -e.index))  # ties go to the earlier epoch


class FineTune(Strategy):
    kind = "finetune"
    Config = FineTuneConfig

    @classmethod
    def check(cls, config: FineTuneConfig, dataset, suite):
        try:
            tuner_cls, search, problems = parse(config, bool(dataset.dev))
        except HarnessError as exc:
            yield ("tuner", "kind"), str(exc)
            return
        if problems:
            yield from problems
            return
        seen: set[tuple[tuple[str | int, ...], str]] = set()
        for candidate in search.candidates:
            for loc, msg in config_problems(tuner_cls, candidate.config):
                problem = (("tuner", "config", *locate(loc, candidate, search.grid)), msg)
                if problem not in seen:
                    seen.add(problem)
                    yield problem
        for problem in structural_problems(training_examples(suite.task, dataset.train))[:5]:
            yield ("tuner",), problem
        if config.curve_fractions:  # the smallest subset must be trainable too
            smallest = curve_subset(dataset.train, config.curve_fractions[0], suite.seed)
            for problem in structural_problems(training_examples(suite.task, smallest))[:1]:
                yield (
                    ("learning_curve", 0),
                    (
                        f"{config.curve_fractions[0]:g} of the train split is {len(smallest)} examples: "
                        + problem.replace("Fix: add train cases.", "Fix: use a larger fraction, or add train cases.")
                    ),
                )
        if config.context_from is not None:
            problem = reference_problem(suite, config.context_from, "rag", " (its corpus and retriever are used)")
            if problem:
                yield ("context_from",), problem

    @classmethod
    def machine_check(cls, config: FineTuneConfig):
        try:
            tuner_cls, search, _ = parse(config, True)
            tuner_config = tuner_cls.Config.model_validate(search.candidates[0].config)
        except Exception:
            return
        for loc, msg in tuner_cls.machine_check(tuner_config):
            yield ("tuner", *loc), msg

    @classmethod
    def data_used(cls, config: FineTuneConfig, dataset, suite):
        """The train split, dev (where it chooses its checkpoint), and the corpus of the rag it takes context from."""
        return DataUsed(train=len(dataset.train), dev=len(dataset.dev), corpus=config.context_from is not None)

    @classmethod
    def plan(cls, config: FineTuneConfig, dataset, suite):
        tuner, search, _ = parse(config, bool(dataset.dev))
        epochs = 0
        for candidate in search.candidates:
            epochs += getattr(tuner.Config.model_validate(candidate.config), "epochs", 1) or 1
        text = sum(len(m["content"]) for e in training_examples(suite.task, dataset.train) for m in e.prompt)
        text += sum(len(c.target) for c in dataset.train)
        notes = []
        rag = next((x for x in suite.strategies if x.name == config.context_from and x.kind == "rag"), None)
        if rag is not None:  # every training prompt carries retrieved passages, at most the rag's own context
            from harness.builtins import STRATEGIES

            rag_cls = STRATEGIES.get("rag")
            context = rag_cls.plan(rag_cls.Config.model_validate(rag.config), dataset, suite).context_chars
            text += context * len(dataset.train)
            notes.append(f"trained with context retrieved by {rag.name}: training tokens counted at its top_k, at most")
        if len(search.candidates) > 1:
            notes.append(f"a search over {len(search.candidates)} trainings, each scored on dev every epoch")
        if search.early_stop is not None:
            notes.append(
                f"epochs: auto: at most {search.early_stop.max_epochs} epochs per training, usually fewer "
                f"(stops after {search.early_stop.patience} without gain on dev): training and dev are upper bounds"
            )
        return StrategyPlan(
            training_chars=text * epochs, epochs=epochs, dev_requests=len(dataset.dev) * epochs, notes=notes
        )

    def search(self) -> Search:
        _, search, problems = parse(self.config, bool(self.ctx.dataset.dev))
        if problems:  # validate refuses these first; a direct caller gets the same words
            raise ConfigError("; ".join(f"{'.'.join(map(str, loc))}: {msg}" for loc, msg in problems))
        return search

    def _workdir_key(self, examples: list[TrainExample], tuner_kind: str, tuner_config, stop: EarlyStop | None) -> str:
        from harness.run.manifest import package_versions

        versions = package_versions()
        payload: dict[str, Any] = {
            "code": TUNING_CODE_VERSION,
            "libraries": {k: versions.get(k) for k in ("torch", "transformers", "peft", "trl", "accelerate")},
            "base": self.ctx.backend.identity(),
            "examples": [(e.prompt, e.completion) for e in examples],
            "tuner": tuner_kind,
            "config": tuner_config.model_dump(mode="json"),
            "seed": self.ctx.seed,
        }
        if stop is not None:  # where training stops depends on the dev cases and the metric that scores them
            payload["early_stop"] = {
                "patience": stop.patience,
                "dev": [(c.id, c.input, c.target) for c in self.ctx.dataset.dev],
                "metric": self.ctx.suite.primary_metric,
                "generation": self.ctx.backend.spec.generation.model_dump(mode="json"),
            }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:20]

    def prompt(self, case: Case) -> StrategyRequest:
        """The prompt this fine-tune trains and answers with: the task's messages, with the passages `context_from`
        retrieves for the case when it names a rag strategy."""
        task = self.ctx.suite.task
        retrieval = self._retrieval()
        if retrieval is None:
            return StrategyRequest(build_messages(task, case), parts=prompt_parts(task, case))
        # retrieved once per case: every candidate of a search and every checkpoint's dev score use the same prompt
        memo = self.__dict__.setdefault("_with_context", {})
        if case.id not in memo:
            memo[case.id] = retrieval.with_context(case, task)
        return memo[case.id]

    def examples(self, cases: list[Case]) -> list[TrainExample]:
        return [TrainExample(id=c.id, prompt=self.prompt(c).messages, completion=c.target) for c in cases]

    def _retrieval(self) -> Any:
        """The prepared rag strategy `context_from` names (None without it); refused when it is not prepared yet."""
        name = self.config.context_from
        if name is None:
            return None
        if "_context_source" not in self.__dict__:
            self._context_source = self.prepared_strategy(name, "context_from")
        return self._context_source

    def make_tuner(self, candidate: Candidate | None = None, stop: EarlyStop | None = None):
        """The tuner for one candidate of this strategy's search (default: the first), working in the HARNESS_HOME
        folder keyed by its inputs."""
        examples = self.examples(self.ctx.dataset.train)
        cls = TUNERS.get(self.config.tuner.kind)
        if candidate is None:
            search = self.search()
            candidate, stop = search.candidates[0], search.early_stop
        tuner_config = cls.Config.model_validate(candidate.config)
        base = self.ctx.backend
        workdir = harness_home() / "tuning" / self._workdir_key(examples, cls.kind, tuner_config, stop)
        workdir.mkdir(parents=True, exist_ok=True)
        tuner = cls(
            tuner_config,
            TuneContext(
                base=base.spec,
                base_source=base.source() if hasattr(base, "source") else base.spec.model,
                workdir=workdir,
                seed=self.ctx.seed,
                base_config=base.config.model_dump(mode="json"),
                validation=self.examples(self.ctx.dataset.dev),
                progress=self.ctx.progress,
                name=self.spec.name,
            ),
        )
        return tuner, examples

    def train_or_reuse(self, candidate: Candidate | None = None, stop: EarlyStop | None = None) -> Trained:
        """Train one candidate (or reuse the finished training of the same inputs). With `epochs: auto` and a scorer
        at hand, each checkpoint is scored on dev as it is saved and training stops once dev stops improving."""
        tuner, examples = self.make_tuner(candidate, stop)
        if candidate is None:
            search = self.search()
            candidate, stop = search.candidates[0], search.early_stop
        pre = tuner.validate(examples)
        for warning in pre.warnings:
            log.warning("%s: %s", self.spec.name, warning)
        trained = Trained(candidate, tuner, pre, TuneResult([], [], TunerStats(wall_s=0, device="")), False)
        if stop is not None and self.ctx.scorers:
            tuner.ctx.on_checkpoint = lambda found: patience_exhausted(
                [self._dev_score(tuner, c).dev_score for c in found], stop.patience
            )
        done = tuner.ctx.workdir / "result.json"
        finished = finished_training(tuner.ctx.workdir)
        shown = tuner.ctx.workdir / "examples.jsonl"  # what it was trained on, exactly, for anyone to read
        if not shown.exists():
            rows = [{"id": e.id, "prompt": e.prompt, "completion": e.completion} for e in examples]
            write_json_atomic(shown, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        trained.reused = finished is not None
        if finished is not None:
            trained.result = finished
            log.info("%s: reusing the finished fine-tune in %s (no training)", self.spec.name, tuner.ctx.workdir)
        else:
            log.info("%s: fine-tuning %s (%s) ...", self.spec.name, candidate.label, tuner.estimate(pre))
            trained.result = tuner.train(examples, pre)
            record = trained.result.to_json()
            record["sha256"] = checkpoint_digests(tuner.ctx.workdir, trained.result)
            write_json_atomic(done, json.dumps(record, indent=1))
        return trained

    def prepare(self) -> FineTuneGiven:
        base = self.ctx.backend
        search = self.search()
        runs = []
        for i, candidate in enumerate(search.candidates):
            if len(search.candidates) > 1:
                log.info("%s: search %d/%d: %s", self.spec.name, i + 1, len(search.candidates), candidate.label)
            run = self.train_or_reuse(candidate, search.early_stop)
            run.epochs = self._score_checkpoints(run.tuner, run.result.checkpoints, search.early_stop)
            runs.append(run)
        chosen_run = max(
            runs, key=lambda r: (r.best.dev_score is not None, r.best.dev_score or 0.0, -runs.index(r))
        )  # ties go to the earlier candidate
        tuner, result, best = chosen_run.tuner, chosen_run.result, chosen_run.best
        self._tuner_obj = tuner
        chosen = result.checkpoints[best.index]
        self._chosen = chosen
        self.ctx.backend = self._serving_backend(chosen, tuner.serve(chosen))
        self._write_logs(chosen_run, runs)
        given = self._given(search, runs, chosen_run)
        # a deployment billed by the hour while it exists (Azure)
        given.hosting_usd_per_hour = tuner.hosting_usd_per_hour()
        self._given = given
        workdir = tuner.ctx.workdir
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

    def export_for_serving(
        self,
        out: Path,
        fmt: str,
        suite_path: str,
        *,
        workdir: Path | None = None,
        step: int | None = None,
        chosen_how: str = "",
    ):
        """Write a finished fine-tune for a serving engine (see strategies/finetune/export.py): the checkpoint a run
        chose on dev (`workdir` and `step` from its run.json), or else the last checkpoint of this suite's training,
        trained first when it is not finished."""
        from strategies.finetune.export import export

        if workdir is None:
            search = self.search()
            if len(search.candidates) > 1:
                raise ConfigError(
                    f"strategy '{self.spec.name}' searches {len(search.candidates)} candidate settings, chosen on dev "
                    "during a run. Fix: run `harness compare` first and pass --run RUN_DIR to export the one it chose."
                )
            run = self.train_or_reuse(search.candidates[0], search.early_stop)
            checkpoint = run.result.checkpoints[-1]
            chosen_how = (
                f"the last checkpoint (epoch {checkpoint.epoch:g}): outside a run nothing is scored on dev; "
                "--run RUN_DIR exports the checkpoint a compare chose on dev"
            )
        else:
            result = finished_training(workdir)
            found = [c for c in (result.checkpoints if result else []) if c.step == step]
            if not found:
                raise ConfigError(
                    f"{workdir}: the fine-tune the run chose (step {step}) is no longer there or was damaged. "
                    "Fix: rerun `harness compare` on the suite (it trains again), then export."
                )
            checkpoint = found[0]
        return export(self, checkpoint, chosen_how, out, fmt, suite_path=suite_path)  # type: ignore[arg-type]

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
        requests = [GenRequest(self.prompt(c).messages, params) for c in cases]
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
        values = {**base.config.model_dump(), "adapter": checkpoint.adapter}
        if checkpoint.adapter and getattr(base, "precision", None) is not None and base.config.device != "cuda":
            # bf16 settled for the base on a CPU: an unmerged adapter answers faster in fp32 there (the default
            # suite's LoRA: 10.0 s of test answers in fp32, 14.7 s in bf16), so it keeps the configured `auto`
            values["dtype"] = "auto"
        return HFBackend(spec, HFConfig.model_validate(values))

    def _dev_score(self, tuner: Tuner, ckpt: Checkpoint) -> DevScore:
        """One checkpoint's dev score, computed once per run (also when early stopping asked for it already)."""
        memo = self.__dict__.setdefault("_dev_memo", {})
        key = (str(tuner.ctx.workdir), ckpt.step)
        if key not in memo:
            dev = self.ctx.dataset.dev
            backend = self._serving_backend(ckpt, tuner.serve(ckpt))
            params = self.ctx.backend.spec.generation
            try:
                built = [self.prompt(c) for c in dev]
                memo[key] = self.dev_score(
                    backend,
                    [GenRequest(r.messages, params) for r in built],
                    dev,
                    [r.meta for r in built],
                    f"checkpoint at epoch {ckpt.epoch:g} on dev",
                )
            finally:
                backend.close()
                tuner.release(ckpt)
        return memo[key]

    def _score_checkpoints(
        self, tuner: Tuner, checkpoints: list[Checkpoint], stop: EarlyStop | None
    ) -> list[EpochScore]:
        """Every checkpoint's dev score in training order; with `epochs: auto`, none after dev stopped improving
        (a tuner that could not stop mid-training trained them; they are kept unscored)."""
        rows = []
        for i, ckpt in enumerate(checkpoints):
            score = DevScore(dev_score=None)
            done = stop is not None and patience_exhausted([r.dev_score for r in rows], stop.patience)
            if self.ctx.dataset.dev and not done:
                score = self._dev_score(tuner, ckpt)
            rows.append(EpochScore(index=i, epoch=ckpt.epoch, step=ckpt.step, **score.model_dump()))
        return rows

    def _write_logs(self, chosen: Trained, runs: list[Trained]) -> None:
        folder = self.ctx.run_dir / "training" / self.spec.name
        folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(folder / "curve.jsonl", "".join(json.dumps(row) + "\n" for row in chosen.result.curve))
        write_json_atomic(folder / "epochs.jsonl", "".join(e.model_dump_json() + "\n" for e in chosen.epochs))
        if len(runs) > 1:  # every candidate's dev curve, so the choice can be checked
            lines = [
                json.dumps({"values": r.candidate.values, "epochs": [e.model_dump(mode="json") for e in r.epochs]})
                for r in runs
            ]
            write_json_atomic(folder / "search.jsonl", "".join(line + "\n" for line in lines))

    def _cost(self, run: Trained) -> tuple[float | None, str, float]:
        """A training's dollars, how they were got, and the part a provider billed during this run."""
        stats = run.result.stats
        if stats.device == "api":  # a provider's bill (trained tokens x price), not device time
            cost, basis = stats.cost_usd, stats.cost_basis or ""
        else:
            hours = stats.device_hours if stats.device_hours is not None else stats.wall_s / 3600
            cost, basis = device_cost(self.ctx.suite, stats.device, hours)
        # billed by the provider this run (a reused job was paid for when it ran): counts against budget_usd
        paid = 0.0 if run.reused or stats.device != "api" else (cost or 0.0)
        return cost, basis, paid

    def _given(self, search: Search, runs: list[Trained], chosen: Trained) -> FineTuneGiven:
        best = chosen.best
        scored = [e for e in chosen.epochs if e.dev_score is not None]
        if len(scored) < 2 or scored[-1].index != len(chosen.epochs) - 1:
            rising = None  # unknown: one epoch, or no dev split, or stopped scoring before the last
        else:
            rising = best.index == len(chosen.epochs) - 1 and (scored[-1].dev_score or 0.0) > (
                scored[-2].dev_score or 0.0
            )
        cost, basis, paid = self._cost(chosen)
        setup = [SetupCost(what="training", usd=cost, basis=basis, paid_usd=paid)]
        retrieval = self._retrieval()
        if retrieval is not None and retrieval.given is not None:  # the index its prompts are retrieved from
            setup += [
                c.model_copy(
                    update={
                        "what": f"indexing (the corpus of {self.config.context_from}, which retrieves "
                        "this strategy's context)",
                        "paid_usd": 0.0,
                    }
                )
                for c in retrieval.given.setup_costs
                if c.what == "indexing"
            ]
        others = [self._cost(r) for r in runs if r is not chosen]
        if others:
            usd = None if any(c is None for c, _, _ in others) else sum(c or 0.0 for c, _, _ in others)
            setup.append(
                SetupCost(
                    what="search",
                    usd=usd,
                    basis=f"the {len(others)} other candidate training(s) of the search, priced like the chosen one",
                    paid_usd=sum(p for _, _, p in others),
                )
            )
        searched = len(runs) > 1 or search.early_stop is not None
        return FineTuneGiven(
            tuner=self.config.tuner.kind,
            hyperparameters=chosen.tuner.config.model_dump(mode="json"),
            preflight=chosen.pre,
            epochs_trained=len(chosen.epochs),
            dev_scores=[e.dev_score for e in chosen.epochs],
            chosen=ChosenCheckpoint(
                epoch=best.epoch,
                step=best.step,
                dev_score=best.dev_score,
                on="dev" if best.dev_score is not None else "last epoch (no dev split)",
            ),
            dev_still_rising_at_last_epoch=rising,
            training=chosen.result.stats,
            setup_costs=setup,
            reused_from_cache=chosen.reused,
            workdir=str(chosen.tuner.ctx.workdir),
            search=[self._candidate_record(r, r is chosen, search.early_stop) for r in runs] if searched else [],
            early_stopping=None
            if search.early_stop is None
            else EarlyStopping(patience=search.early_stop.patience, max_epochs=search.early_stop.max_epochs),
            grid_edge=grid_edges(
                search.grid,
                chosen.candidate,
                [(r.candidate, r.best.dev_score) for r in runs if r.best.dev_score is not None],
            ),
        )

    def _candidate_record(self, run: Trained, chosen: bool, stop: EarlyStop | None) -> SearchCandidate:
        scores = [e.dev_score for e in run.epochs]
        return SearchCandidate(
            values=run.candidate.values,
            epochs_trained=len(run.epochs),
            dev_scores=scores,
            best_dev_score=run.best.dev_score,
            stopped_early=stop is not None and len(run.epochs) < stop.max_epochs,
            training_s=run.result.stats.wall_s,
            training_usd=self._cost(run)[0],
            chosen=chosen,
            reused_from_cache=run.reused,
        )

    def close(self) -> None:
        tuner, chosen = getattr(self, "_tuner_obj", None), getattr(self, "_chosen", None)
        if tuner is not None and chosen is not None:
            tuner.release(chosen, final=True)
        hosting = tuner.hosting() if tuner is not None else None
        if hosting is not None and getattr(self, "_given", None) is not None:
            self._given.deployment = hosting

    def request(self, case):
        return self.prompt(case)


# ---- a finished training, checked before it is reused ----------------------------------------------------------


def _local_folders(workdir: Path, result: TuneResult) -> list[Path]:
    """The checkpoint folders a finished training keeps under its workdir (adapters, or full models)."""
    found = []
    root = workdir.resolve()
    for c in result.checkpoints:
        for place in (c.adapter, c.model):
            if place and Path(place).resolve().is_relative_to(root) and Path(place) not in found:
                found.append(Path(place))
    return found


def checkpoint_digests(workdir: Path, result: TuneResult) -> dict[str, str]:
    """sha256 of each checkpoint folder kept under the workdir, recorded beside the result."""
    root = workdir.resolve()
    return {str(f.resolve().relative_to(root)): tree_fingerprint(f) for f in _local_folders(workdir, result)}


def finished_training(workdir: Path) -> TuneResult | None:
    """The finished training in `workdir`, or None when there is none. One that is there but damaged (result.json
    unreadable, a checkpoint missing or changed since it was written) is moved aside with a warning, so it is
    trained again rather than served half-written."""
    done = workdir / "result.json"
    if not done.exists():
        return None
    try:
        data = json.loads(done.read_text())
        result = TuneResult.from_json(data)
        for folder in _local_folders(workdir, result):
            if not folder.is_dir():
                raise ValueError(f"checkpoint {folder.name} is missing")
        root = workdir.resolve()
        for rel, digest in data.get("sha256", {}).items():
            if not (root / rel).is_dir() or tree_fingerprint(root / rel) != digest:
                raise ValueError(f"{rel} does not match the sha256 recorded when training finished")
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        move_aside(workdir, "the fine-tune", why=str(exc)[:200], then="training it again")
        workdir.mkdir(parents=True)
        return None
    return result
