"""Cost arithmetic shared by strategies, the runner, the decision and the report: one copy of each formula.

- Prices: the price sheet shipped with harness (`harness/costs/prices.yaml`, dated, each entry with its source) under the
  suite's `economics.prices` and `economics.usd_per_hour` overrides.
- A call costs its tokens at the model's prices (API models, or any model the suite prices), or else its share of
  the device's busy time at the device's $/hour (local models).
- Monthly cost at a volume: per-request cost x volume, fixed hosting, and one-off setup spread over the horizon.
- Payback: the requests after which a cheaper-per-request strategy has paid back its extra setup cost; the monthly
  volume at which two strategies cost the same; the value of outcomes when the suite prices right and wrong answers.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from harness.suite.schema import ModelPrice, Suite, ValueSpec

HOURS_PER_MONTH = 730.0  # 365 x 24 / 12
MAX_VOLUME = 1e12  # monthly requests searched for a break-even; beyond it we say "never"
CHARS_PER_TOKEN = 4  # estimates before a tokenizer has counted
SNAPSHOT = re.compile(r"^(\d{4}-\d{2}-\d{2}|\d{4})$")  # a dated model snapshot's suffix


# ---- the price sheet -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceRate:
    usd_per_hour: float
    note: str = ""
    source: str = ""
    as_of: date | None = None


@dataclass(frozen=True)
class PriceSheet:
    version: str
    date: date
    currency: str
    models: dict[str, ModelPrice]
    devices: dict[str, DeviceRate]

    def lookup(self, model: str) -> tuple[str, ModelPrice] | None:
        """The sheet entry for `model`: exact, else the entry of which it is a dated snapshot
        (gpt-4o-mini-2024-07-18, gpt-3.5-turbo-0125); never a merely similar name."""
        if model in self.models:
            return model, self.models[model]
        found = [k for k in self.models if model.startswith(k + "-") and SNAPSHOT.match(model[len(k) + 1:])]
        if not found:
            return None
        key = max(found, key=len)
        return key, self.models[key]

    def info(self) -> dict[str, Any]:
        return {"version": self.version, "date": self.date.isoformat(), "currency": self.currency}


@functools.cache
def price_sheet() -> PriceSheet:
    from importlib.resources import files

    import yaml

    raw = yaml.safe_load(files("harness.costs").joinpath("prices.yaml").read_text(encoding="utf-8"))
    return PriceSheet(
        version=str(raw["version"]), date=raw["date"], currency=raw["currency"],
        models={k: ModelPrice.model_validate(v) for k, v in raw["models"].items()},
        devices={k: DeviceRate(**v) for k, v in raw["devices"].items()},
    )


# ---- resolving a model's price -------------------------------------------------------------------


@dataclass
class ResolvedPrice:
    """A model's prices after the suite's overrides, with where each came from."""

    model: str
    entry: str | None  # the price sheet entry used underneath, if any
    price: ModelPrice
    finetuned: bool  # priced at the entry's finetuned_* prices
    origin: str  # "price sheet <version>", "suite economics.prices", or both

    def per_1m(self, key: Literal["input", "cached_input", "output"]) -> float | None:
        if self.finetuned:
            value = getattr(self.price, f"finetuned_{key}_per_1m_usd")
            if value is not None:
                return value
            if key != "cached_input":
                return None
        value = getattr(self.price, f"{key}_per_1m_usd")
        if key == "cached_input" and value is None:  # no cache discount known: cached tokens at the input price
            return self.per_1m("input")
        return value

    def missing(self, keys: tuple[str, ...] = ("input", "output")) -> list[str]:
        return [(f"finetuned_{k}" if self.finetuned else k) + "_per_1m_usd" for k in keys if self.per_1m(k) is None]

    def as_dict(self) -> dict[str, Any]:
        used = {k: v for k, v in self.price.model_dump(mode="json").items()
                if v is not None and k not in ("same_as", "finetuned")}
        return {"model": self.model, "entry": self.entry, "finetuned": self.finetuned, "origin": self.origin, **used}


def _merge(base: ModelPrice | None, over: ModelPrice) -> ModelPrice:
    data = base.model_dump() if base else {}
    data.update({k: v for k, v in over.model_dump().items() if v is not None})
    return ModelPrice.model_validate(data)


def resolve_price(model: str, suite: Suite | None) -> ResolvedPrice | None:
    """The prices of `model`: the suite's `economics.prices` entry over the sheet's; None when neither prices it.

    `ft:BASE:...` names (OpenAI's fine-tuned models) are priced at BASE's finetuned_* prices."""
    sheet = price_sheet()
    overrides = suite.economics.prices if suite and suite.economics else {}
    finetuned = model.startswith("ft:")
    name = model.split(":")[1] if finetuned and model.count(":") >= 1 else model
    origin = []
    over = overrides.get(model) or overrides.get(name)
    price: ModelPrice | None = None
    entry = None
    target = (over.same_as if over else None) or name
    for _ in range(5):  # follow same_as links (override -> sheet, sheet -> sheet)
        found = sheet.lookup(target)
        if found is None:
            break
        entry, sheet_price = found
        price = _merge(sheet_price, price) if price else sheet_price
        if not sheet_price.same_as:
            break
        target = sheet_price.same_as
    if price is not None:
        origin.append(f"price sheet {sheet.version} ({sheet.date})")
    finetuned = finetuned or bool(over is not None and over.finetuned)
    if over is not None:
        if finetuned:  # prices given for a fine-tuned model's own name are that model's prices
            own = over.model_dump()
            for key in ("input", "cached_input", "output"):
                if own[f"{key}_per_1m_usd"] is not None and own[f"finetuned_{key}_per_1m_usd"] is None:
                    own[f"finetuned_{key}_per_1m_usd"] = own.pop(f"{key}_per_1m_usd")
                    own[f"{key}_per_1m_usd"] = None
            over = ModelPrice.model_validate(own)
        price = _merge(price, over)
        origin.append("suite economics.prices")
    if price is None:
        return None
    return ResolvedPrice(model=model, entry=entry, price=price, finetuned=finetuned, origin=" over ".join(reversed(origin)))


def device_rate(suite: Suite | None, device: str) -> tuple[float | None, str]:
    """$/hour of `device`: the suite's `economics.usd_per_hour`, else the price sheet's example rate."""
    rates = suite.economics.usd_per_hour if suite and suite.economics else {}
    if device in rates:
        return rates[device], f"economics.usd_per_hour.{device} ({rates[device]} $/h)"
    sheet = price_sheet()
    rate = sheet.devices.get(device)
    if rate is None:
        return None, f"no $/hour for device '{device}': set economics.usd_per_hour.{device}"
    return rate.usd_per_hour, (f"price sheet {sheet.version} example rate for {device}: {rate.usd_per_hour} $/h "
                               f"({rate.note}; {rate.source}, {rate.as_of}); set economics.usd_per_hour.{device} for yours")


def device_cost(suite: Suite | None, device: str, hours: float) -> tuple[float | None, str]:
    """Dollars for `hours` of busy time on `device`, and how they were got."""
    rate, basis = device_rate(suite, device)
    if rate is None:
        return None, basis
    return round(hours * rate, 9), f"device hours x {basis}"


def embedding_price(model: str, configured: float | None, suite: Suite | None) -> tuple[float | None, str]:
    """$ per 1M embedded tokens of an API embedder: its config's `usd_per_1m_tokens`, else the model's input price."""
    if configured is not None:
        return configured, "embedded tokens x embedder.usd_per_1m_tokens"
    price = resolve_price(model, suite)
    if price is None or price.per_1m("input") is None:
        return None, f"no price for embedding model '{model}': set embedder.usd_per_1m_tokens"
    return price.per_1m("input"), f"embedded tokens x {model} input price ({price.origin})"


# ---- pricing calls -------------------------------------------------------------------------------


@dataclass
class Pricing:
    """How one backend's calls are priced: by tokens (paid per call, counts against budget_usd) or by busy time."""

    kind: Literal["tokens", "device_hours", "unknown"]
    basis: str
    price: ResolvedPrice | None = None
    device: str | None = None
    usd_per_hour: float | None = None

    @property
    def paid(self) -> bool:
        return self.kind == "tokens"

    def call_usd(self, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0, compute_s: float = 0.0
                 ) -> float | None:
        if self.kind == "tokens":
            assert self.price is not None
            return token_cost(self.price, input_tokens, output_tokens, cached_input_tokens)
        if self.kind == "device_hours" and self.usd_per_hour is not None:
            return compute_s / 3600 * self.usd_per_hour
        return None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "basis": self.basis}
        if self.price:
            out["price"] = self.price.as_dict()
        if self.device:
            out.update(device=self.device, usd_per_hour=self.usd_per_hour)
        return out


def token_cost(price: ResolvedPrice, input_tokens: float, output_tokens: float, cached_input_tokens: float = 0) -> float:
    """Dollars for one call: uncached input, cached input and output tokens at their per-1M prices."""
    fresh = max(input_tokens - cached_input_tokens, 0)
    return (fresh * (price.per_1m("input") or 0) + cached_input_tokens * (price.per_1m("cached_input") or 0)
            + output_tokens * (price.per_1m("output") or 0)) / 1e6


def pricing_for(suite: Suite | None, *, model: str, device: str, api: bool) -> Pricing:
    """API models are priced by tokens (the sheet or the suite must know them); local models by busy time, unless
    the suite gives their model token prices."""
    price = resolve_price(model, suite)
    if api or (price is not None and "suite" in price.origin):
        if price is None or price.missing():
            return Pricing("unknown", f"no token prices for model '{model}'")
        return Pricing("tokens", f"tokens x {price.model} prices ({price.origin})", price=price)
    rate, basis = device_rate(suite, device)
    if rate is None:
        return Pricing("unknown", basis, device=device)
    return Pricing("device_hours", f"busy time x {basis}", device=device, usd_per_hour=rate)


# ---- monthly cost, payback, break-even ----------------------------------------------------------


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
        ca, cb = a.monthly_usd(v, horizon_months, dedicated=dedicated), b.monthly_usd(v, horizon_months, dedicated=dedicated)
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


# ---- one strategy's costs from its results -------------------------------------------------------


TOKEN_PARTS = ("instructions", "exemplars", "context", "input", "template", "output")


@dataclass
class Spend:
    """Paid dollars so far (token-priced calls), against the suite's budget_usd."""

    budget_usd: float | None = None
    paid_usd: float = 0.0
    skipped: dict[str, int] = field(default_factory=dict)  # strategy (or "<strategy>: <scorer>") -> calls not made

    def room(self) -> float:
        return math.inf if self.budget_usd is None else self.budget_usd - self.paid_usd

    def as_dict(self) -> dict[str, Any]:
        return {"budget_usd": self.budget_usd, "paid_usd": round(self.paid_usd, 12), "skipped": dict(self.skipped)}
