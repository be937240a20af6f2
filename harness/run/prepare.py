"""The prepare phase: build each strategy and let it set itself up once (pick exemplars, build an index,
fine-tune and choose a checkpoint on dev), timed, with what it was given and what it cost recorded as its setup."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

from harness.builtins import STRATEGIES
from harness.errors import BudgetReached
from harness.records.setup import (
    AnyGiven,
    BuiltInGiven,
    FewShotGiven,
    FineTuneGiven,
    Given,
    PluginGiven,
    RagGiven,
    StrategySetup,
    ZeroShotGiven,
)
from harness.strategy import Strategy, StrategyContext
from harness.suite.data import curve_subset
from harness.suite.schema import StrategySpec, curve_of, seed_of, seed_variant

if TYPE_CHECKING:
    from harness.run.compare import Run

log = logging.getLogger(__name__)


def as_given(kind: str, given: Given | dict[str, Any] | None) -> BuiltInGiven | PluginGiven:
    """What prepare() returned, as a record: a built-in kind's own record as it is (a strategy may still add to it
    when it closes), anything else (a plugin's `Given`, or a plain dict) as a `PluginGiven`."""
    if isinstance(given, (ZeroShotGiven, FewShotGiven, RagGiven, FineTuneGiven)):
        return given
    data = given.model_dump() if isinstance(given, Given) else dict(given or {})
    record: BuiltInGiven | PluginGiven = TypeAdapter(AnyGiven).validate_python({"kind": kind, **data})
    return record


def prepare_strategy(run: Run, spec: StrategySpec) -> Strategy | None:
    """The strategy, prepared and recorded in `run.setups`; None when budget_usd ran out while preparing it (its
    answers are then held back, and a rerun with a larger budget prepares it)."""
    backend = run.backend(spec.backend or run.suite.backends[0].name)
    number = seed_of(spec.name)[1]

    def prepared(name: str) -> Strategy | None:  # seed i of a strategy is served by seed i of the one it names
        found = {s.spec.name: s for s in run.prepared}
        return found.get(seed_variant(name, number)) or found.get(name)

    dataset = run.loaded.dataset
    fraction = curve_of(spec.name)
    if fraction is not None:  # a learning-curve point: trained on a nested, seeded subset of train
        dataset = replace(dataset, train=curve_subset(dataset.train, fraction, run.suite.seed))
    ctx = StrategyContext(
        run.suite.for_strategy(spec),
        dataset,
        backend,
        run.run_dir,
        run.suite.seed + number - 1,
        scorers=run.scorers,
        gateway=run.gateway,
        use_cache=run.options.use_cache,
        prepared=prepared,
        progress=run.progress,
    )
    strategy: Strategy = STRATEGIES.get(spec.kind)(spec, run.loaded.config("strategies", spec.name), ctx)
    setup = run.setups[spec.name] = StrategySetup(backend=backend.spec.name, serving=backend.identity())
    started = time.perf_counter()
    try:
        given = as_given(spec.kind, strategy.prepare())
    except BudgetReached as exc:
        log.warning("%s: not prepared: %s", spec.name, exc)
        setup.skipped = f"budget_usd reached while preparing: {exc}"
        setup.dev = run.gateway.dev.get(spec.name)
        run.gateway.spend.hold_back(spec.name, len(run.plan.test) * run.plan.repeats)
        return None
    if given.data_used is None:  # what economics.data charges it for, as its class says
        given.data_used = type(strategy).data_used(strategy.config, dataset, run.suite.for_strategy(spec))
    strategy.given = setup.given = given
    setup.prepare_s = round(time.perf_counter() - started, 3)
    setup.serving, setup.dev = strategy.backend.identity(), run.gateway.dev.get(spec.name)
    if given.paid_usd:  # e.g. a provider's training job, an index embedded through an API
        run.gateway.charge("setup", given.paid_usd)
    earlier = run.previous.get(spec.name)
    if earlier is not None and earlier.evaluation:  # judge work paid for by earlier invocations stays on record
        setup.evaluation = dict(earlier.evaluation)
    run.prepared.append(strategy)
    if strategy.backend is not backend and all(strategy.backend is not b for b in run.extra_backends):
        run.extra_backends.append(strategy.backend)
    return strategy
