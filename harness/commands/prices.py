"""`harness prices [SUITE]`: the price sheet harness ships with (its date and age, every model's and device's
prices with their sources and retirement dates) and, for a suite, its overrides and what each backend will be
charged at. One report, printed as rich tables or as one JSON object (`--json`)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from harness.costs.prices import STALE_AFTER_DAYS, price_sheet, retirement, sheet_age_days, staleness
from harness.suite.schema import BackendSpec, ModelPrice, Suite

# the model table's price columns: (heading, ModelPrice field)
PRICE_COLUMNS = (
    ("input /1M", "input_per_1m_usd"),
    ("cached /1M", "cached_input_per_1m_usd"),
    ("output /1M", "output_per_1m_usd"),
    ("training /1M", "training_per_1m_usd"),
    ("ft input /1M", "finetuned_input_per_1m_usd"),
    ("ft output /1M", "finetuned_output_per_1m_usd"),
    ("hosting $/h", "hosting_usd_per_hour"),
)


def _model(name: str, price: ModelPrice, suite: Suite | None) -> dict[str, Any]:
    """An entry's own fields, and `retirement`: the date it stops being served with the entry that gives it (its
    own, or its same_as entry's), as `retirement()` resolves it."""
    retires = retirement(name, suite)
    return {
        **price.model_dump(mode="json", exclude={"finetuned"}),
        "retirement": {"date": retires[0].isoformat(), "entry": retires[1]} if retires else None,
    }


def _backend(suite: Suite, spec: BackendSpec, today: date) -> dict[str, Any]:
    """How one backend of the suite will be charged: its pricing (price sheet, override or device rate), the
    per-1M prices it pays (a fine-tuned model's finetuned_* prices), where they come from, and its retirement."""
    from harness.costs.pricing import pricing_of_spec

    pricing = pricing_of_spec(suite, spec)
    price = pricing.price
    retires = retirement(spec.model, suite) if spec.model else None
    return {
        "backend": spec.name,
        "kind": spec.kind,
        "model": spec.model,
        "charged_by": pricing.kind,
        "per_1m_usd": (
            {key: price.per_1m(key) for key in ("input", "cached_input", "output")} if price is not None else None
        ),
        "device": pricing.device,
        "usd_per_hour": pricing.usd_per_hour,
        "origin": price.origin if price is not None else pricing.basis,
        "basis": pricing.basis,
        "pricing": pricing.as_record().model_dump(mode="json"),
        "retires": retires[0].isoformat() if retires else None,
        "retires_from": retires[1] if retires else None,
        "retired": bool(retires and retires[0] <= today),
    }


def prices_report(suite: Suite | None = None, *, today: date | None = None) -> dict[str, Any]:
    """The sheet, its models and devices, and with a suite its overrides and each backend's resolved price, as one
    JSON-able object (what `harness prices --json` prints)."""
    today = today or date.today()
    sheet = price_sheet()
    report: dict[str, Any] = {
        "sheet": {
            "version": sheet.version,
            "date": sheet.date.isoformat(),
            "currency": sheet.currency,
            "age_days": sheet_age_days(today),
            "stale_after_days": STALE_AFTER_DAYS,
            "stale": staleness(today) is not None,
            "warning": staleness(today),
        },
        "models": {name: _model(name, price, None) for name, price in sheet.models.items()},
        "devices": {
            name: {
                "usd_per_hour": rate.usd_per_hour,
                "note": rate.note,
                "source": rate.source,
                "as_of": rate.as_of.isoformat() if rate.as_of else None,
            }
            for name, rate in sheet.devices.items()
        },
        "overrides": None,
        "backends": None,
    }
    if suite is not None:
        economics = suite.economics
        report["overrides"] = {
            "prices": {name: _model(name, p, suite) for name, p in economics.prices.items()} if economics else {},
            "usd_per_hour": dict(economics.usd_per_hour) if economics else {},
        }
        report["backends"] = [_backend(suite, spec, today) for spec in suite.backends]
    return report


# ---- the terminal view -------------------------------------------------------------------------------------------


def _num(value: Any) -> str:
    return "" if value is None else f"{value:g}" if isinstance(value, float | int) else str(value)


def _retires(retirement: dict[str, str] | None, own: str, today: date) -> str:
    """'2027-01-14', '2026-10-23 (retired)', or '2027-01-14 (from gpt-4o-mini)' when the date comes from an entry
    other than `own`."""
    if retirement is None:
        return ""
    notes = ["retired"] if date.fromisoformat(retirement["date"]) <= today else []
    if retirement["entry"] != own:
        notes.append(f"from {retirement['entry']}")
    return retirement["date"] + (f" ({'; '.join(notes)})" if notes else "")


def _table(*columns: str, right: tuple[str, ...] = (), fold: tuple[str, ...] = ()) -> Any:
    from rich.table import Table

    table = Table()
    for column in columns:
        table.add_column(
            column,
            justify="right" if column in right else "left",
            no_wrap=column not in fold,
            overflow="fold" if column in fold else "ellipsis",
        )
    return table


def _print_models(console: Any, heading: str, models: dict[str, dict[str, Any]], today: date, *, prefix: str) -> None:
    """Two tables: the prices, then each entry's source, date and retirement (narrow enough for a terminal)."""
    prices = _table("model", *(h for h, _ in PRICE_COLUMNS), "same_as", right=tuple(h for h, _ in PRICE_COLUMNS))
    sources = _table("model", "source", "as_of", "retires", fold=("source",))
    for name, m in models.items():
        prices.add_row(name, *(_num(m.get(key)) for _, key in PRICE_COLUMNS), m.get("same_as") or "")
        retires = _retires(m.get("retirement"), prefix + name, today)
        sources.add_row(name, m.get("source") or "", m.get("as_of") or "", retires)
    _heading(console, f"{heading}: US$ per 1M tokens (hosting per hour)")
    console.print(prices)
    _heading(console, f"{heading}: sources and retirement dates")
    console.print(sources)


def _heading(console: Any, text: str) -> None:
    console.print(text, style="bold", highlight=False, markup=False)


def render(report: dict[str, Any], console: Any, *, suite_path: Path | None = None, today: date | None = None) -> None:
    """Print the report as tables on `console` (a rich Console)."""
    today = today or date.today()
    sheet = report["sheet"]
    _heading(
        console,
        f"price sheet {sheet['version']}, dated {sheet['date']} ({sheet['age_days']} days old), "
        f"prices in {sheet['currency']}",
    )
    if sheet["warning"]:
        console.print(f"warning: {sheet['warning']}", style="yellow", highlight=False, markup=False)
    _print_models(console, "models", report["models"], today, prefix="")

    devices = _table("device", "$/h", "note", "source", "as_of", right=("$/h",), fold=("note", "source"))
    for name, d in report["devices"].items():
        devices.add_row(name, _num(d["usd_per_hour"]), d["note"], d["source"], d["as_of"] or "")
    _heading(console, "devices: example $/hour for local backends")
    console.print(devices)

    overrides = report["overrides"]
    if overrides is None:
        return
    where = f" in {suite_path}" if suite_path else ""
    if overrides["prices"]:
        _print_models(
            console,
            f"overrides{where} (economics.prices, over the sheet)",
            overrides["prices"],
            today,
            prefix="economics.prices.",
        )
    if overrides["usd_per_hour"]:
        rates = _table("device", "$/h", "sheet $/h", right=("$/h", "sheet $/h"))
        for name, rate in overrides["usd_per_hour"].items():
            rates.add_row(name, _num(rate), _num(report["devices"].get(name, {}).get("usd_per_hour")))
        _heading(console, f"overrides{where} (economics.usd_per_hour, over the sheet)")
        console.print(rates)
    if not overrides["prices"] and not overrides["usd_per_hour"]:
        _heading(console, f"no overrides{where}: every price comes from the sheet")

    money = ("input /1M", "cached /1M", "output /1M", "$/h")
    backends = _table(
        "backend", "model", "charged by", *money, "retires", "origin", right=money, fold=("model", "origin")
    )
    for b in report["backends"]:
        per_1m = b["per_1m_usd"] or {}
        retirement = {"date": b["retires"], "entry": b["retires_from"]} if b["retires"] else None
        backends.add_row(
            b["backend"],
            b["model"],
            b["charged_by"] + (f" ({b['device']})" if b["device"] else ""),
            _num(per_1m.get("input")),
            _num(per_1m.get("cached_input")),
            _num(per_1m.get("output")),
            _num(b["usd_per_hour"]),
            _retires(retirement, b["model"], today),
            b["origin"],
        )
    _heading(console, f"backends{where}: what each will be charged")
    console.print(backends)
