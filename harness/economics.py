"""Cost arithmetic shared by strategies, the decision and the report: one copy of each formula."""

from __future__ import annotations

from harness.suite import Suite


def device_cost(suite: Suite, device: str, hours: float) -> tuple[float | None, str]:
    """Dollars for `hours` of busy time on `device` at the suite's `economics.usd_per_hour`, and how it was got."""
    rates = suite.economics.usd_per_hour if suite.economics else {}
    rate = rates.get(device)
    if rate is None:
        return None, f"no economics.usd_per_hour.{device} in the suite"
    return round(hours * rate, 9), f"device hours x economics.usd_per_hour.{device} ({rate} $/h)"
