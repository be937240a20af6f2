"""The report's what-if: a finished run's decision recomputed from its run.json alone with another volume, horizon,
token prices, device $/hour or training cost, by the very functions the run decided with."""

from __future__ import annotations

from dataclasses import dataclass

from harness.costs.model import CostChange
from harness.records.decision import Decision
from harness.records.run import RunRecord
from harness.suite.schema import DecisionSpec
from harness.verdict.decide import Option, decide, options_from_summaries


@dataclass
class WhatIf:
    """Changes to a finished run's economics; None keeps the run's own figure."""

    monthly_requests: int | tuple[int, int] | None = None
    horizon_months: int | None = None
    price_scale: float | None = None  # token prices x this (e.g. 0.5 for a provider's price cut)
    usd_per_hour: float | None = None  # local devices' $/hour, in place of what the run used
    training_usd: float | None = None  # each fine-tune's training cost, in place of what the run measured


def what_if(record: RunRecord, change: WhatIf | None = None) -> tuple[Decision, list[Option]]:
    """The run's decision recomputed from its run.json with changed volume, prices, $/hour, training cost or
    horizon: the same functions the run used, over the same paired comparisons. Returns the decision and the
    options (strategies with their changed costs) it was made from."""
    change = change or WhatIf()
    suite = record.suite
    policy = suite.decision or DecisionSpec()
    updates = {
        k: v
        for k, v in (("monthly_requests", change.monthly_requests), ("horizon_months", change.horizon_months))
        if v is not None
    }
    if updates:
        policy = DecisionSpec.model_validate({**policy.model_dump(), **updates})
    options = options_from_summaries(
        record.strategies,
        {s.name: s.kind for s in suite.strategies},
        record.primary_metric,
        policy=policy,
        data=suite.economics.data if suite.economics else None,
        change=CostChange(
            price_scale=1.0 if change.price_scale is None else change.price_scale,
            usd_per_hour=change.usd_per_hour,
            training_usd=change.training_usd,
        ),
    )
    value = suite.economics.value if suite.economics else None
    pairs = record.decision.pairs if record.decision else []
    return decide(options, pairs, policy, metric=record.primary_metric, value=value, prices=record.prices), options
