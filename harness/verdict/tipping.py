"""Where the decision tips: for each input of the decision (monthly volume, token prices, a device's $/hour, training
cost, data preparation cost, the value of a right answer), the value at which the winner at a volume changes, on
each side of its current value, or "does not flip within" the searched range.

Every candidate value is put through the decision's own functions (options rebuilt by `options_from_summaries` with
a `CostChange`, ranked by `rank_at`), so a tipping point is exactly where the verdict itself would change: the
value found flips it, and a value 1% back towards the current one does not.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from harness.costs.model import DATA, TRAINING, CostChange
from harness.costs.money import usd
from harness.records.decision import Decision, PairedComparison, TippingPoint
from harness.records.summary import StrategySummary
from harness.suite.schema import DecisionSpec, Suite, ValueSpec
from harness.verdict.decide import options_from_summaries, rank_at
from harness.verdict.explain import plural, requests

GRID = 48  # values tried on each side before bisecting
BISECT = 60  # halvings of the bracket (far below 1% of the value)
SPAN = 100.0  # factors searched: current / SPAN to current x SPAN
MAX_VOLUME = 1e9


@dataclass
class Input:
    name: str
    label: str
    current: float
    searched: tuple[float, float]
    winner_at: Callable[[float], str | None]  # the winner with this input at a value
    show: Callable[[float], str]


def _factor(dollars: float) -> Callable[[float], str]:
    return lambda x: f"{x:.3g}x ({usd(x * dollars)})" if dollars else f"{x:.3g}x"


def _inputs(suite: Suite, summaries: dict[str, StrategySummary], pairs: list[PairedComparison], volume: int):
    policy = suite.decision or DecisionSpec()
    kinds = {s.name: s.kind for s in suite.strategies}
    data = suite.economics.data if suite.economics else None
    value = suite.economics.value if suite.economics else None

    def winner(change: CostChange | None = None, at: float = volume, worth: ValueSpec | None = value) -> str | None:
        options = options_from_summaries(
            summaries, kinds, suite.primary_metric, policy=policy, data=data, change=change
        )
        return rank_at(options, pairs, policy, worth, round(at)).winner

    costs = [s.cost for s in summaries.values() if s.cost is not None]
    found = [
        Input(
            "monthly_requests",
            "monthly volume",
            float(volume),
            (1.0, MAX_VOLUME),
            lambda x: winner(at=x),
            lambda x: f"{requests(x)} request{plural(x)} a month",
        )
    ]
    if any(c.pricing.kind == "tokens" for c in costs):
        found.append(
            Input(
                "token_price_factor",
                "token prices",
                1.0,
                (1 / SPAN, SPAN),
                lambda x: winner(CostChange(price_scale=x)),
                lambda x: f"{x:.3g}x today's",
            )
        )
    rates = [c.device_usd_per_hour for c in costs if c.pricing.kind == "device_hours" and c.device_usd_per_hour]
    if rates:
        rate = max(rates)
        found.append(
            Input(
                "usd_per_hour",
                "the device's $/hour",
                rate,
                (rate / SPAN, rate * SPAN),
                lambda x: winner(CostChange(usd_per_hour=x)),
                lambda x: f"{usd(x)}/hour",
            )
        )
    for prefix, name, label, field in (
        (TRAINING, "training_usd", "training cost", "training_scale"),
        (DATA, "data_usd", "data preparation cost", "data_scale"),
    ):
        dollars = max((sum(i.usd for i in c.setup_items if i.what.startswith(prefix)) for c in costs), default=0.0)
        if dollars > 0:
            found.append(
                Input(
                    name,
                    label,
                    1.0,
                    (0.0, SPAN),
                    lambda x, f=field: winner(CostChange(**{f: x})),  # type: ignore[misc]
                    _factor(dollars),
                )
            )
    if value is not None:
        top = max(value.correct_usd * SPAN, 1.0)
        found.append(
            Input(
                "correct_usd",
                "the value of a right answer",
                value.correct_usd,
                (0.0, top),
                lambda x: winner(worth=value.model_copy(update={"correct_usd": x})),
                lambda x: usd(x),
            )
        )
    return found


def _grid(current: float, edge: float) -> list[float]:
    """Values from next to `current` out to `edge`: log-spaced where both are positive, else even."""
    if current > 0 and edge > 0:
        return [float(x) for x in np.geomspace(current, edge, GRID + 1)[1:]]
    return [float(x) for x in np.linspace(current, edge, GRID + 1)[1:]]


def flip(winner_at: Callable[[float], str | None], current: float, edge: float) -> tuple[float | None, str | None]:
    """The value between `current` and `edge` nearest `current` at which the winner changes (the value itself
    flips it), and the new winner; (None, None) when it does not change out to `edge`."""
    base = winner_at(current)
    inside = current
    for x in _grid(current, edge):
        other = winner_at(x)
        if other != base:
            outside = x
            for _ in range(BISECT):  # keep `outside` on the flipped side
                mid = math.sqrt(inside * outside) if inside > 0 and outside > 0 else (inside + outside) / 2
                if mid in (inside, outside):
                    break
                if winner_at(mid) == base:
                    inside = mid
                else:
                    outside, other = mid, winner_at(mid)
                if abs(outside - inside) <= 1e-6 * max(abs(outside), 1e-12):
                    break
            return outside, other
        inside = x
    return None, None


def _sentence(i: Input, t: TippingPoint) -> str:
    now = f"now {i.show(i.current)}"
    if t.low is None and t.high is None:
        low, high = i.searched
        return (
            f"{t.winner} stays ahead with {i.label} anywhere from {i.show(low)} to {i.show(high)} ({now}): "
            "it does not flip within that range"
        )
    parts = []
    if t.low is not None:
        parts.append(f"{i.label} falls below {i.show(t.low)} ({t.low_winner or 'no strategy'} then wins)")
    if t.high is not None:
        parts.append(f"{i.label} rises above {i.show(t.high)} ({t.high_winner or 'no strategy'} then wins)")
    return f"{t.winner} stays ahead unless " + " or ".join(parts) + f"; {now}"


def tipping_points(
    suite: Suite, summaries: dict[str, StrategySummary], pairs: list[PairedComparison], decision: Decision
) -> list[TippingPoint]:
    """For the winner at each of the suite's volumes against the runner-up: where each input flips it."""
    out = []
    for verdict in decision.by_volume:
        if verdict.winner is None:
            continue
        runner_up = next(
            (r.strategy for r in verdict.ranking if r.strategy != verdict.winner and r.quality is not None), None
        )
        for i in _inputs(suite, summaries, pairs, verdict.volume):
            low, low_winner = flip(i.winner_at, i.current, i.searched[0])
            high, high_winner = flip(i.winner_at, i.current, i.searched[1])
            point = TippingPoint(
                input=i.name,
                label=i.label,
                current=i.current,
                volume=verdict.volume,
                winner=verdict.winner,
                runner_up=runner_up,
                low=low,
                low_winner=low_winner,
                high=high,
                high_winner=high_winner,
                searched=i.searched,
                sentence="",
            )
            point.sentence = f"At {verdict.volume:,} requests a month, " + _sentence(i, point)
            out.append(point)
    return out
