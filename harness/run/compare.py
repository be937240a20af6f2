"""`harness compare` as a sequence of phases over one run folder:

    plan -> (per strategy) prepare -> execute -> judge -> summarise -> decide -> write

Each finished (strategy, case, repeat) is appended to cases.jsonl at once, so an interrupted run loses nothing:
rerunning the same command skips finished cases and answers cached calls from the cache. Whatever happens, what
finished is summarised and written (status running, complete, incomplete, interrupted or failed).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from harness import __version__
from harness.backends.base import Backend
from harness.builtins import BACKENDS, SCORERS
from harness.costs.budget import Spend, SpendLedger
from harness.costs.calibrate import answer_precision
from harness.costs.prices import price_sheet
from harness.errors import HarnessError
from harness.home import harness_home
from harness.records.run import Counts, RunOptions, RunRecord, RunStatus, TimeCheck
from harness.records.setup import StrategySetup
from harness.records.summary import StrategySummary
from harness.run.cache import NoCache, ResponseCache
from harness.run.execute import PromptTokens, answer_test_cases
from harness.run.folder import CasesFile, open_run_folder, read_run, unlock_run_folder, write_json_atomic
from harness.run.gateway import Gateway
from harness.run.judging import judge_answers, warn_unjudged
from harness.run.manifest import build_manifest
from harness.run.plan import RunPlan
from harness.run.prepare import prepare_strategy
from harness.run.progress import Progress, QuietProgress
from harness.scoring.base import Scorer
from harness.strategy import Strategy
from harness.suite.load import LoadedSuite, load_suite
from harness.suite.schema import Suite, seed_of
from harness.verdict.decide import conclude
from harness.verdict.explain import render_markdown
from harness.verdict.learning import learning_curves, points_setups
from harness.verdict.summary import summarize_run, test_rows

log = logging.getLogger(__name__)


@dataclass
class CompareOptions:
    out: Path | None = None
    limit: int | None = None
    strategies: list[str] | None = None
    retry_errors: bool = False
    use_cache: bool = True
    overwrite: bool = False
    progress: Progress = field(default_factory=QuietProgress)


@dataclass
class Run:
    """What the phases of one `harness compare` share: the plan, the folder, the gateway and each strategy's setup."""

    loaded: LoadedSuite
    options: CompareOptions
    plan: RunPlan
    run_dir: Path
    cases: CasesFile
    gateway: Gateway
    scorers: list[Scorer]
    counts: Counts = field(default_factory=Counts)
    setups: dict[str, StrategySetup] = field(default_factory=dict)  # prepared by this invocation
    previous: dict[str, StrategySetup] = field(default_factory=dict)  # as an earlier invocation recorded them
    backends: dict[str, Backend] = field(default_factory=dict)
    extra_backends: list[Backend] = field(default_factory=list)  # served models a strategy made (fine-tunes)
    prepared: list[Strategy] = field(default_factory=list)  # closed at the end, whatever happens
    tokens: PromptTokens = field(default_factory=PromptTokens)
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    predicted: dict[str, dict[str, float]] = field(default_factory=dict)  # local time by strategy and phase

    @property
    def suite(self) -> Suite:
        return self.loaded.suite

    @property
    def progress(self) -> Progress:
        return self.options.progress

    def backend(self, name: str) -> Backend:
        if name not in self.backends:
            spec = next(b for b in self.suite.backends if b.name == name)
            backend = BACKENDS.get(spec.kind)(spec, self.loaded.config("backends", name))
            answer_precision(backend, self.loaded)  # `dtype: auto` on a CPU with bf16 instructions
            self.backends[name] = backend
        return self.backends[name]


def compare(suite_path: str | Path, options: CompareOptions | None = None) -> tuple[RunRecord, Run]:
    """Validate the suite, then run (or resume) the comparison. Returns the record and the run (for its counts)."""
    return run_compare(load_suite(suite_path), options or CompareOptions())


def run_compare(loaded: LoadedSuite, options: CompareOptions) -> tuple[RunRecord, Run]:
    run = open_run(loaded, options)
    status: RunStatus = "interrupted"
    try:
        for spec in run.plan.selected:
            with run.gateway.charging(spec.name):
                strategy = prepare_strategy(run, spec)
                if strategy is not None:
                    answer_test_cases(run, spec.name, strategy)
                    judge_answers(run, spec.name)
        for spec in run.plan.selected:  # pairwise judges wait for the answers they compare with
            with run.gateway.charging(spec.name):
                judge_answers(run, spec.name)
        warn_unjudged(run)
        status = "complete"
    except KeyboardInterrupt:
        raise
    except Exception:  # a harness error or a crash: record what finished, then let the caller report it
        status = "failed"
        raise
    finally:
        try:
            record = finish(run, status)
        finally:
            unlock_run_folder(run.run_dir)
    return record, run


def open_run(loaded: LoadedSuite, options: CompareOptions) -> Run:
    """Plan, open (or resume) the run folder, refuse a plan the budget cannot pay, and write a first run.json."""
    plan = RunPlan.make(loaded, names=options.strategies, limit=options.limit, retry_errors=options.retry_errors)
    run_dir = options.out or Path("runs") / loaded.suite.name
    cases = open_run_folder(run_dir, plan.fingerprint, overwrite=options.overwrite)
    try:
        return _open_locked(loaded, options, plan, run_dir, cases)
    except BaseException:
        unlock_run_folder(run_dir)
        raise


def _open_locked(loaded: LoadedSuite, options: CompareOptions, plan: RunPlan, run_dir: Path, cases: CasesFile) -> Run:
    plan.done = dict(cases.load())
    ledger = SpendLedger(run_dir / "spend.jsonl")
    spend = Spend(
        budget_usd=loaded.suite.budget_usd,
        paid_usd=sum(r.paid_usd for r in plan.done.values()) + ledger.total(),
        budget_hours=loaded.suite.budget_hours,
        busy_s=sum(r.compute_s or 0.0 for r in plan.done.values() if not r.paid_usd),
        local_usd=sum(r.cost_usd or 0.0 for r in plan.done.values() if not r.paid_usd),
    )
    previous = _previous_setups(run_dir)
    if loaded.suite.budget_usd is not None or loaded.suite.budget_hours is not None:  # refuse before any call
        from harness.costs.estimate import check_budget, estimate

        finished = {k for k in plan.done if plan.finished(k)}
        prepared = {name for name, setup in previous.items() if setup.given is not None}
        check_budget(
            loaded,
            estimate(
                loaded,
                limit=options.limit,
                done=finished,
                prepared=prepared,
                strategies=[s.name for s in plan.selected],
                # budget_hours needs the local prediction; budget_usd counts it where this machine is calibrated
                calibrate=True if loaded.suite.budget_hours is not None else "cached",
            ),
            spend.paid_usd,
            spend.busy_s,
            spend.local_usd,
        )
    scorers = [
        SCORERS.get(s.kind)(s, loaded.config("scorers", s.label), loaded.suite.task) for s in loaded.suite.scorers
    ]
    cache = ResponseCache(harness_home() / "cache" / "responses.sqlite") if options.use_cache else NoCache()
    counts = Counts()
    run = Run(
        loaded,
        options,
        plan,
        run_dir,
        cases,
        Gateway(loaded.suite, cache, spend, ledger, counts),
        scorers,
        counts=counts,
        previous=previous,
    )
    run.gateway.progress = run.progress  # answering on dev (choosing settings, scoring checkpoints) shows progress
    run.predicted = _predicted(loaded, options, plan)
    write(run, "running")  # a run.json exists from the start, even if this process is killed
    return run


def _predicted(loaded: LoadedSuite, options: CompareOptions, plan: RunPlan) -> dict[str, dict[str, float]]:
    """Local time per strategy and phase from the calibration this machine already has (nothing is measured here;
    `harness estimate` measures), to set beside what the run measures. Never a reason to stop a run."""
    from harness.costs.estimate import estimate

    if not any(b.kind == "hf" for b in loaded.suite.backends) or not (harness_home() / "calibration.json").exists():
        return {}  # nothing calibrated to predict from: no work spent on it
    try:
        est = estimate(loaded, limit=options.limit, strategies=[s.name for s in plan.selected], calibrate="cached")
    except Exception as exc:
        log.debug("no time prediction for this run: %s", exc)
        return {}
    return {s.strategy: s.predicted_s for s in est.strategies if s.predicted_s}


def time_checks(
    predicted: dict[str, dict[str, float]], summaries: dict[str, StrategySummary]
) -> dict[str, dict[str, TimeCheck]]:
    """What each predicted phase measured: test answers' busy time, dev answers', the training's wall time (not when
    a finished training was reused), the index build (not when reused)."""
    out: dict[str, dict[str, TimeCheck]] = {}
    for name, phases in predicted.items():
        summary = summaries.get(name)
        if summary is None:
            continue
        given = summary.setup.given
        training = getattr(given, "training", None)
        index = getattr(given, "index", None)
        measured = {
            "test": summary.compute_s_total if summary.n_done == summary.n_planned else None,
            "dev": summary.setup.dev.compute_s if summary.setup.dev is not None else None,
            "training": None if training is None or getattr(given, "reused_from_cache", False) else training.wall_s,
            "indexing": None if index is None or index.reused_from_cache else index.build_s,
        }
        out[name] = {
            phase: TimeCheck(predicted_s=seconds, measured_s=measured.get(phase)) for phase, seconds in phases.items()
        }
    return out


def _previous_setups(run_dir: Path) -> dict[str, StrategySetup]:
    try:
        previous = read_run(run_dir)
    except HarnessError:
        return {}
    setups = {name: s.setup for name, s in previous.strategies.items()}
    for summary in previous.strategies.values():  # a strategy's other seeds, each prepared on its own
        setups.update({seed.name: seed.setup for seed in summary.seeds if seed.setup is not None})
    if previous.decision is not None:  # the subsets of learning curves
        setups.update(points_setups(previous.decision.learning_curves))
    return setups


def finish(run: Run, status: RunStatus) -> RunRecord:
    """Release what strategies hold (deployments first: their hosting time goes into the record), then summarise,
    decide and write, interrupted or not; close the cache and the models."""
    for strategy in run.prepared:
        try:
            strategy.close()
        except Exception as exc:  # never hide the run's own outcome; say what may still be running
            log.error("%s: could not release what it holds: %s", strategy.spec.name, exc)
    try:
        record = write(run, status)
        if status == "complete" and any(s.n_done < s.n_planned for s in record.strategies.values()):
            record = write(run, "incomplete")
    finally:
        run.gateway.cache.close()
        for backend in [*run.backends.values(), *run.extra_backends]:
            backend.close()
    return record


def write(run: Run, status: RunStatus) -> RunRecord:
    """Summarise the whole folder (every strategy with results, not only this invocation's) and decide; write
    run.json and decision.md."""
    run.cases.close()
    run.cases.compact()  # retried cases superseded their error lines: keep one line per key
    record = build_record(run, status)
    write_json_atomic(run.run_dir / "run.json", record.model_dump_json(indent=2))
    if record.decision and status != "running":
        write_json_atomic(
            run.run_dir / "decision.md",
            render_markdown(record.decision, suite_name=run.suite.name, diagnosis=record.diagnosis),
        )
    return record


def build_record(run: Run, status: RunStatus) -> RunRecord:
    suite = resolved_suite(run.loaded)
    # a strategy whose prepare() did not finish this time keeps what an earlier run recorded (its costs)
    setups = {name: s if s.given is not None else run.previous.get(name, s) for name, s in run.setups.items()}
    setups = {**run.previous, **setups}
    by_strategy = test_rows(
        suite,
        run.cases.rows.values(),
        test_ids={c.id for c in run.loaded.dataset.test},
        names=[s.name for s in run.plan.selected],
    )
    binary = {s.name: bool(s.binary) for s in run.scorers}
    conditional = {s.name for s in run.scorers if s.conditional}
    summaries = summarize_run(
        suite, by_strategy, setups, n_cases=len(run.loaded.dataset.test), binary=binary, conditional=conditional
    )
    prices = price_sheet().info(suite)
    comparisons, decision, diagnosis = conclude(
        suite, by_strategy, summaries, binary=binary, conditional=conditional, prices=prices
    )
    if decision is not None:
        decision.learning_curves = learning_curves(
            suite,
            run.cases.rows.values(),
            setups,
            test_ids={c.id for c in run.loaded.dataset.test},
            binary=binary.get(suite.primary_metric, False),
            decision=decision,
        )
        decision.reasons += [c.more_data.sentence for c in decision.learning_curves if c.more_data]
    return RunRecord(
        harness_version=__version__,
        status=status,
        suite_name=suite.name,
        suite_path=str(run.loaded.path),
        suite_sha256=run.plan.fingerprint,
        suite=suite,
        started_at=run.started_at,
        finished_at=datetime.now(timezone.utc),
        primary_metric=suite.primary_metric,
        strategies=summaries,
        comparisons=comparisons,
        prices=prices,
        decision=decision,
        diagnosis=diagnosis,
        budget=run.gateway.spend.as_record(),
        manifest=build_manifest(
            seed=suite.seed,
            data_hashes=run.loaded.dataset.hashes,
            models={name: b.identity() for name, b in run.backends.items()},
            precision={
                name: choice.model_dump(mode="json")
                for name, b in run.backends.items()
                if (choice := getattr(b, "precision", None)) is not None
            },
        ),
        options=RunOptions(
            limit=run.options.limit,
            strategies=[s.name for s in run.plan.selected if seed_of(s.name)[1] == 1],
            repeats=suite.repeats,
            counts=run.counts,
        ),
        time_checks=time_checks(run.predicted, summaries),
    )


def resolved_suite(loaded: LoadedSuite) -> Suite:
    """The suite as run: every component's config with its defaults filled in."""
    data = loaded.suite.model_dump(mode="json")
    for section in ("backends", "strategies", "scorers"):
        for item, spec in zip(data[section], getattr(loaded.suite, section), strict=True):
            key = spec.label if section == "scorers" else spec.name
            item["config"] = loaded.config(section, key).model_dump(mode="json")
    return Suite.model_validate(data)
