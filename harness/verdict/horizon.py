"""What may change before the decision's horizon ends: a provider retiring the model a fine-tune was tuned from
(the price sheet's `retires`), and prices older than the sheet's shelf life."""

from __future__ import annotations

from datetime import date

from harness.costs.prices import retirement, staleness
from harness.suite.schema import DecisionSpec, Suite

DAYS_PER_MONTH = 365 / 12


def horizon_lines(suite: Suite, today: date | None = None) -> list[str]:
    """Uncertainty lines: each fine-tune whose base model retires within the horizon, and a stale price sheet."""
    today = today or date.today()
    policy = suite.decision or DecisionSpec()
    months = policy.horizon_months
    out = []
    for spec in suite.strategies:
        if spec.kind != "finetune":
            continue
        model = suite.backend_for(spec).model
        found = retirement(model, suite)
        if found is None:
            continue
        retires, entry = found
        left = (retires - today).days / DAYS_PER_MONTH
        if left >= months:
            continue
        when = "has already retired" if left <= 0 else f"retires on {retires.isoformat()}, {left:.1f} months from now"
        every = policy.every_months("retrain", spec.name)
        plan = (
            f" (retrain_every_months is {every:g})"
            if every is not None
            else " (set decision.retrain_every_months to price retraining)"
        )
        out.append(
            f"{spec.name}: its base model {model} {when} ({entry}), within the {months}-month horizon: a fine-tune "
            f"stops serving with its base, so it must be trained again on a successor model by then{plan}"
        )
    stale = staleness(today)
    if stale:
        out.append(stale)
    return out
