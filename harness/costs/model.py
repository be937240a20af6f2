"""Monthly cost, payback and break-even: plain arithmetic over plain numbers, so the decision and the report's
what-if use one copy of each formula.

- Monthly cost at a volume: per-request cost x volume, fixed hosting, one-off setup spread over the horizon, and
  the part of it that recurs (retraining, re-indexing) as often as it does.
- `cost_model`: a strategy's cost model from its recorded cost, with what-if changes (prices, $/hour, training,
  data) applied item by item.
- Payback: the requests after which a cheaper-per-request strategy has paid back its extra setup cost; the monthly
  volume at which two strategies cost the same; the value of outcomes when the suite prices right and wrong answers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from harness.records.summary import CostItem, StrategyCost
from harness.suite.schema import ValueSpec

HOURS_PER_MONTH = 730.0  # 365 x 24 / 12
MAX_VOLUME = 1e12  # monthly requests searched for a break-even; beyond it we say "never"


@dataclass(frozen=True)
class Recurring:
    """A setup cost paid again every `every_months` (retraining, re-indexing)."""

    what: str
    usd: float  # each time
    every_months: float

    def extra_monthly_usd(self, horizon_months: int) -> float:
        """What repeating it adds to a month over the first time (which setup spreads over the horizon): nothing
        when it is repeated no sooner than the horizon ends."""
        return self.usd * max(0.0, 1 / self.every_months - 1 / horizon_months)


@dataclass
class CostModel:
    """What one strategy costs: per request, one-off setup, and fixed hosting; plain numbers the report can change."""

    per_request_usd: float | None  # variable cost of one production request (tokens, or busy time)
    setup_usd: float = 0.0  # one-off: training, indexing, choosing settings on dev, preparing data
    hosting_usd_per_hour: float = 0.0  # fixed while deployed (a fine-tuned Azure deployment)
    busy_s_per_request: float | None = None  # local models: device time per request
    device_usd_per_hour: float | None = None  # local models: what a dedicated machine costs
    recurring: list[Recurring] = field(default_factory=list)  # setup costs paid again (retraining, re-indexing)

    def recurring_monthly_usd(self, horizon_months: int) -> float:
        return sum(r.extra_monthly_usd(horizon_months) for r in self.recurring)

    def fixed_monthly_usd(self, horizon_months: int) -> float:
        """What a month costs before any request: hosting, setup spread over the horizon, and repeats of it."""
        return (
            self.hosting_usd_per_hour * HOURS_PER_MONTH
            + self.setup_usd / horizon_months
            + self.recurring_monthly_usd(horizon_months)
        )

    def monthly_usd(self, volume: float, horizon_months: int, *, dedicated: bool = False) -> float | None:
        """Monthly cost at `volume` requests: setup spread over the horizon (and repeated as often as it recurs),
        hosting, and the requests.

        With dedicated hosting a local model runs on whole machines kept up all month: at least one, more when the
        volume needs more busy time than one machine has (at the measured busy time per request)."""
        if self.per_request_usd is None:
            return None
        fixed = self.fixed_monthly_usd(horizon_months)
        if dedicated and self.busy_s_per_request is not None and self.device_usd_per_hour is not None:
            machines = max(1, math.ceil(volume * self.busy_s_per_request / 3600 / HOURS_PER_MONTH - 1e-9))
            return fixed + machines * self.device_usd_per_hour * HOURS_PER_MONTH
        return fixed + volume * self.per_request_usd


@dataclass(frozen=True)
class CostChange:
    """Changes to a recorded cost (the report's what-if, the tipping points); the defaults change nothing."""

    price_scale: float = 1.0  # token prices x this
    usd_per_hour: float | None = None  # local devices at this $/hour (setup measured in device time too)
    training_usd: float | None = None  # the training in place of what was measured
    training_scale: float = 1.0  # training (and a search's other trainings) x this
    data_scale: float = 1.0  # data preparation and corpus curation x this


# Setup items by what they are (CostItem.what starts with one of these)
TRAINING, SEARCH, INDEXING, DATA, CURATION = "training", "search", "indexing", "data preparation", "corpus curation"
TIMED_BASES = ("device hours", "busy time")  # setup measured in device time, priced at the device's $/hour


def item_usd(item: CostItem, recorded: StrategyCost, change: CostChange) -> float:
    """One setup item's dollars after `change`."""
    usd = item.usd
    old_rate = recorded.device_usd_per_hour
    if change.usd_per_hour is not None and old_rate and item.basis.startswith(TIMED_BASES):
        usd *= change.usd_per_hour / old_rate
    if item.what == TRAINING and change.training_usd is not None:
        usd = change.training_usd
    if item.what.startswith((TRAINING, SEARCH)):
        usd *= change.training_scale
    if item.what.startswith((DATA, CURATION)):
        usd *= change.data_scale
    return usd


def cost_model(
    recorded: StrategyCost,
    *,
    retrain_every_months: float | None = None,
    reindex_every_months: float | None = None,
    refresh_share: float = 0.0,
    change: CostChange | None = None,
) -> CostModel:
    """A strategy's cost model from its recorded cost: setup items as measured (or changed), training repeated
    every `retrain_every_months` (with `refresh_share` of its data labelled anew each time), indexing every
    `reindex_every_months`."""
    change = change or CostChange()
    per_request = recorded.per_request_usd
    rate = recorded.device_usd_per_hour
    kind = recorded.pricing.kind
    if per_request is not None and kind == "tokens":
        per_request *= change.price_scale
    if change.usd_per_hour is not None and kind == "device_hours" and recorded.busy_s_per_request is not None:
        per_request = recorded.busy_s_per_request / 3600 * change.usd_per_hour
        rate = change.usd_per_hour
    usd = {id(i): item_usd(i, recorded, change) for i in recorded.setup_items}

    def total(*prefixes: str) -> float:
        return sum(usd[id(i)] for i in recorded.setup_items if i.what.startswith(prefixes))

    recurring = []
    if retrain_every_months is not None and total(TRAINING):
        recurring.append(Recurring("retraining", total(TRAINING) + refresh_share * total(DATA), retrain_every_months))
    if reindex_every_months is not None and total(INDEXING):
        recurring.append(Recurring("re-indexing", total(INDEXING), reindex_every_months))
    return CostModel(
        per_request_usd=per_request,
        setup_usd=sum(usd.values()) if recorded.setup_items else recorded.setup_usd,
        hosting_usd_per_hour=recorded.hosting_usd_per_hour,
        busy_s_per_request=recorded.busy_s_per_request,
        device_usd_per_hour=rate,
        recurring=recurring,
    )


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
