"""The price sheet and what a model or a device costs: the sheet shipped with harness (`harness/costs/prices.yaml`,
dated, each entry with its source) under the suite's `economics.prices` and `economics.usd_per_hour` overrides.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import date
from typing import Literal

from harness.records.decision import PriceOverrides, PriceSheetInfo
from harness.records.summary import PriceUsed
from harness.suite.schema import ModelPrice, Suite

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
        found = [k for k in self.models if model.startswith(k + "-") and SNAPSHOT.match(model[len(k) + 1 :])]
        if not found:
            return None
        key = max(found, key=len)
        return key, self.models[key]

    def info(self, suite: Suite | None = None) -> PriceSheetInfo:
        """The sheet's version and date, with the suite's overrides, as run.json records them."""
        overrides = None
        if suite is not None and suite.economics is not None:
            overrides = PriceOverrides(prices=suite.economics.prices, usd_per_hour=suite.economics.usd_per_hour)
        return PriceSheetInfo(
            version=self.version, date=self.date.isoformat(), currency=self.currency, overrides=overrides
        )


@functools.cache
def price_sheet() -> PriceSheet:
    from importlib.resources import files

    import yaml

    raw = yaml.safe_load(files("harness.costs").joinpath("prices.yaml").read_text(encoding="utf-8"))
    return PriceSheet(
        version=str(raw["version"]),
        date=raw["date"],
        currency=raw["currency"],
        models={k: ModelPrice.model_validate(v) for k, v in raw["models"].items()},
        devices={k: DeviceRate(**v) for k, v in raw["devices"].items()},
    )


STALE_AFTER_DAYS = 120  # a sheet older than this is said to be stale: list prices change every few months


def sheet_age_days(today: date | None = None) -> int:
    """Days from the price sheet's date to `today` (default: today)."""
    return ((today or date.today()) - price_sheet().date).days


def staleness(today: date | None = None) -> str | None:
    """A sentence saying the price sheet is older than STALE_AFTER_DAYS days, or None while it is not."""
    age = sheet_age_days(today)
    if age <= STALE_AFTER_DAYS:
        return None
    return (
        f"The price sheet is dated {price_sheet().date.isoformat()}, {age} days before this run: prices may have "
        "changed; check them with `harness prices` and override in economics.prices."
    )


# ---- resolving a model's price -------------------------------------------------------------------


def _base_name(model: str) -> str:
    """The model an OpenAI fine-tuned name (`ft:BASE:org::id`) was tuned from; any other name unchanged."""
    return model.split(":")[1] if model.startswith("ft:") else model


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

    def missing(self, keys: tuple[Literal["input", "output"], ...] = ("input", "output")) -> list[str]:
        return [(f"finetuned_{k}" if self.finetuned else k) + "_per_1m_usd" for k in keys if self.per_1m(k) is None]

    def as_record(self) -> PriceUsed:
        used = {k: v for k, v in self.price.model_dump().items() if v is not None and k not in ("same_as", "finetuned")}
        return PriceUsed(model=self.model, entry=self.entry, finetuned=self.finetuned, origin=self.origin, **used)


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
    return ResolvedPrice(
        model=model, entry=entry, price=price, finetuned=finetuned, origin=" over ".join(reversed(origin))
    )


def retirement(model: str, suite: Suite | None) -> tuple[date, str] | None:
    """When the provider stops serving `model`, and the entry that says so; None when no entry gives a date.

    Resolved like `resolve_price`: the suite's `economics.prices` entry (returned as `economics.prices.<name>`) over
    the sheet's, following `same_as` links; `ft:BASE:...` names take BASE's date (a fine-tune stops with its base)."""
    sheet = price_sheet()
    overrides = suite.economics.prices if suite and suite.economics else {}
    name = _base_name(model)
    key = model if model in overrides else name if name in overrides else None
    over = overrides[key] if key is not None else None
    if over is not None and over.retires is not None:
        return over.retires, f"economics.prices.{key}"
    target = (over.same_as if over is not None else None) or name
    for _ in range(5):  # follow same_as links (override -> sheet, sheet -> sheet), as resolve_price does
        found = sheet.lookup(target)
        if found is None:
            return None
        entry, price = found
        if price.retires is not None:
            return price.retires, entry
        if not price.same_as:
            return None
        target = price.same_as
    return None


def device_rate(suite: Suite | None, device: str) -> tuple[float | None, str]:
    """$/hour of `device`: the suite's `economics.usd_per_hour`, else the price sheet's example rate."""
    rates = suite.economics.usd_per_hour if suite and suite.economics else {}
    if device in rates:
        return rates[device], f"economics.usd_per_hour.{device} ({rates[device]} $/h)"
    sheet = price_sheet()
    rate = sheet.devices.get(device)
    if rate is None:
        return None, f"no $/hour for device '{device}': set economics.usd_per_hour.{device}"
    return rate.usd_per_hour, (
        f"price sheet {sheet.version} example rate for {device}: {rate.usd_per_hour} $/h "
        f"({rate.note}; {rate.source}, {rate.as_of}); set economics.usd_per_hour.{device} for yours"
    )


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
