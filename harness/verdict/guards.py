"""Guards: floors and ceilings a strategy must meet to win (`decision.guards`, with `latency_slo_p95_s` as one).

A quality metric's guard is met only when its whole interval clears the bound (the lower end for `min`, the upper
end for `max`); a latency or cost guard by the measured value. A value that was not measured (every answer from the
cache, a metric that does not apply) does not exclude a strategy: it is said as unknown.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from harness.records.summary import StrategySummary
from harness.suite.schema import COST_GUARDS, LATENCY_GUARDS, Guard

if TYPE_CHECKING:
    from harness.verdict.decide import Option

Bounds = tuple[float | None, float | None]  # (the value a `min` is checked against, the one a `max` is)


def guard_values(s: StrategySummary) -> dict[str, Bounds]:
    """What a strategy's guards are checked against: each metric's interval ends (its mean when it has no
    interval), and each latency percentile."""
    out: dict[str, Bounds] = {}
    for name, m in s.metrics.items():
        low = m.ci_low if m.ci_low is not None else m.mean
        high = m.ci_high if m.ci_high is not None else m.mean
        out[name] = (low, high)
    for guard, field in LATENCY_GUARDS.items():
        value = getattr(s.latency, field)
        out[guard] = (value, value)
    return out


def _value(o: Option, guard: Guard, monthly_usd: float | None) -> Bounds:
    if guard.metric == "per_request_usd":
        return (o.cost.per_request_usd, o.cost.per_request_usd)
    if guard.metric == "monthly_usd":
        return (monthly_usd, monthly_usd)
    if guard.metric == "p95_latency_s" and guard.metric not in o.guard_values:
        return (o.p95_s, o.p95_s)
    return o.guard_values.get(guard.metric, (None, None))


def missed(o: Option, guards: Sequence[Guard], monthly_usd: float | None) -> list[str]:
    """The guards `o` misses, each as 'faithfulness >= 0.8 (interval low end 0.74)'."""
    out = []
    for guard in guards:
        low, high = _value(o, guard, monthly_usd)
        interval = guard.metric not in LATENCY_GUARDS and guard.metric not in COST_GUARDS
        if guard.min is not None and low is not None and low < guard.min:
            out.append(f"{guard.metric} >= {guard.min:g} ({'interval low end' if interval else 'measured'} {low:.3g})")
        if guard.max is not None and high is not None and high > guard.max:
            out.append(
                f"{guard.metric} <= {guard.max:g} ({'interval high end' if interval else 'measured'} {high:.3g})"
            )
    return out


def unknown(o: Option, guards: Sequence[Guard]) -> list[str]:
    """Guards that could not be checked for `o` (no measured value)."""
    return [g.metric for g in guards if _value(o, g, 0.0) == (None, None)]
