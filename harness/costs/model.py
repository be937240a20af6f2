"""Monthly cost, payback and break-even: plain arithmetic over plain numbers, so the decision and the report's
what-if use one copy of each formula.

- Monthly cost at a volume: per-request cost x volume, fixed hosting, and one-off setup spread over the horizon.
- Payback: the requests after which a cheaper-per-request strategy has paid back its extra setup cost; the monthly
  volume at which two strategies cost the same; the value of outcomes when the suite prices right and wrong answers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from harness.records.summary import StrategyCost
from harness.suite.schema import ValueSpec

HOURS_PER_MONTH = 730.0  # 365 x 24 / 12
MAX_VOLUME = 1e12  # monthly requests searched for a break-even; beyond it we say "never"


@dataclass
class CostModel:
    """What one strategy costs: per request, one-off setup, and fixed hosting; plain numbers the report can change."""

    per_request_usd: float | None  # variable cost of one production request (tokens, or busy time)
    setup_usd: float = 0.0  # one-off: training, indexing, choosing settings on dev
    hosting_usd_per_hour: float = 0.0  # fixed while deployed (a fine-tuned Azure deployment)
    busy_s_per_request: float | None = None  # local models: device time per request
    device_usd_per_hour: float | None = None  # local models: what a dedicated machine costs

    def monthly_usd(self, volume: float, horizon_months: int, *, dedicated: bool = False) -> float | None:
        """Monthly cost at `volume` requests: setup spread over the horizon, hosting, and the requests.

        With dedicated hosting a local model runs on whole machines kept up all month: at least one, more when the
        volume needs more busy time than one machine has (at the measured busy time per request)."""
        if self.per_request_usd is None:
            return None
        fixed = self.hosting_usd_per_hour * HOURS_PER_MONTH + self.setup_usd / horizon_months
        if dedicated and self.busy_s_per_request is not None and self.device_usd_per_hour is not None:
            machines = max(1, math.ceil(volume * self.busy_s_per_request / 3600 / HOURS_PER_MONTH - 1e-9))
            return fixed + machines * self.device_usd_per_hour * HOURS_PER_MONTH
        return fixed + volume * self.per_request_usd

    def changed(
        self,
        recorded: StrategyCost,
        *,
        price_scale: float | None = None,
        usd_per_hour: float | None = None,
        training_usd: float | None = None,
    ) -> CostModel:
        """This cost with token prices scaled, local devices at another $/hour (setup measured in device time
        included), or another training cost; `recorded` is the run's cost summary it was made from."""
        cost = replace(self)
        kind = recorded.pricing.kind
        if price_scale is not None and kind == "tokens" and cost.per_request_usd is not None:
            cost.per_request_usd *= price_scale
        if usd_per_hour is not None and kind == "device_hours" and cost.busy_s_per_request is not None:
            old_rate = cost.device_usd_per_hour
            cost.per_request_usd = cost.busy_s_per_request / 3600 * usd_per_hour
            cost.device_usd_per_hour = usd_per_hour
            if old_rate:  # training, indexing and dev answers measured in device time, at the new rate too
                timed = recorded.setup_usd_where(basis_prefixes=("device hours", "busy time"))
                cost.setup_usd += timed * (usd_per_hour / old_rate - 1)
        if training_usd is not None and any(i.what == "training" for i in recorded.setup_items):
            cost.setup_usd = cost.setup_usd - recorded.setup_usd_where(what="training") + training_usd
        return cost


def payback_requests(extra_setup_usd: float, saving_per_request_usd: float) -> float | None:
    """Requests after which a strategy that costs `extra_setup_usd` more up front, and saves `saving_per_request_usd`
    on each request, has paid that back. None ("never") when it saves nothing per request; 0 when it costs no more
    up front."""
    if saving_per_request_usd <= 0:
        return None
    return max(extra_setup_usd, 0.0) / saving_per_request_usd


def break_even_volume(a: CostModel, b: CostModel, horizon_months: int, *, dedicated: bool = False) -> float | None:
    """The smallest monthly volume from which `a` costs no more than `b` (setup spread over the horizon, hosting
    included); None when `a` stays dearer up to MAX_VOLUME requests a month."""

    def gap(v: float) -> float:
        ca, cb = (
            a.monthly_usd(v, horizon_months, dedicated=dedicated),
            b.monthly_usd(v, horizon_months, dedicated=dedicated),
        )
        return math.inf if ca is None or cb is None else ca - cb

    if gap(1) <= 0:
        return 1.0
    grid = [10 ** (k / 8) for k in range(0, 12 * 8 + 1)]  # 1 .. 1e12, 8 points per decade
    low = 1.0
    for high in grid[1:]:
        if gap(high) <= 0:
            for _ in range(200):  # bisect to one request
                if high - low <= 1:
                    break
                mid = (low + high) / 2
                low, high = (low, mid) if gap(mid) <= 0 else (mid, high)
            volume = math.ceil(low)  # the smallest whole volume that is no dearer
            while gap(volume) > 0:
                volume += 1
            return float(volume)
        low = high
    return None


def net_value_per_request(accuracy: float, value: ValueSpec, cost_per_request_usd: float) -> float:
    """What one request is worth: accuracy x value of a right answer, less the expected cost of a wrong one and
    the request's own cost."""
    return accuracy * value.correct_usd - (1 - accuracy) * value.wrong_usd - cost_per_request_usd


def break_even_accuracy(value: ValueSpec, cost_per_request_usd: float) -> float | None:
    """The accuracy below which a request loses money; None when no accuracy pays (right and wrong worth nothing)."""
    spread = value.correct_usd + value.wrong_usd
    if spread <= 0:
        return None
    return (value.wrong_usd + cost_per_request_usd) / spread
