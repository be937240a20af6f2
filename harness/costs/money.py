"""Dollars as every view writes them (decision, terminal, estimate, report): one formatter."""

from __future__ import annotations


def usd(x: float | None, *, unknown: str = "unknown") -> str:
    """$1,241, $2.31, $0.024, $0.0000048 (two significant digits below a cent); `unknown` for None."""
    if x is None:
        return unknown
    if x == 0:
        return "$0"
    if abs(x) >= 100:
        return f"${x:,.0f}"
    if abs(x) >= 1:
        return f"${x:,.2f}"
    if abs(x) >= 0.01:
        return f"${x:.3f}"
    import numpy as np

    return "$" + np.format_float_positional(x, precision=2, unique=True, fractional=False, trim="-")
