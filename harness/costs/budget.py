"""budget_usd: what was paid so far, the run folder's ledger of provider charges, and which calls still fit.

Paid dollars are those of token-priced calls (providers bill them). Local busy time is priced at the device's
$/hour (economics.usd_per_hour) and counts against budget_usd too, and against budget_hours as time.
Every call is counted at its most before it is sent, for every attempt a provider might bill, so the cap holds
even when answers are lost on the way back.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

from harness.backends.base import Backend, GenRequest
from harness.costs.pricing import Pricing
from harness.records.run import BudgetRecord

T = TypeVar("T")

log = logging.getLogger(__name__)


@dataclass
class Spend:
    """Dollars so far against the suite's budget_usd (token-priced calls, and local answers at the device's
    $/hour), and local busy time against budget_hours."""

    budget_usd: float | None = None
    paid_usd: float = 0.0
    skipped: dict[str, int] = field(default_factory=dict)  # strategy (or "<strategy>: <scorer>") -> calls not made
    budget_hours: float | None = None  # local compute hours
    busy_s: float = 0.0  # local devices' busy time so far (answers of local models)
    local_usd: float = 0.0  # that busy time at the device's $/hour, where economics gives one

    def room(self) -> float:
        return math.inf if self.budget_usd is None else self.budget_usd - self.paid_usd - self.local_usd

    def local_exhausted(self) -> str | None:
        """Why local answering must stop now (budget_hours or budget_usd reached), or None."""
        if self.hours_left() <= 0:
            return f"budget_hours {self.budget_hours:g} reached ({self.busy_s / 3600:.2f} h of local compute)"
        if self.room() <= 0:
            return (
                f"budget_usd ${self.budget_usd:g} reached (${self.paid_usd:.4f} paid to providers, "
                f"${self.local_usd:.4f} of local compute)"
            )
        return None

    def hours_left(self) -> float:
        return math.inf if self.budget_hours is None else self.budget_hours - self.busy_s / 3600

    def hold_back(self, what: str, n: int) -> None:
        self.skipped[what] = self.skipped.get(what, 0) + n

    def as_record(self) -> BudgetRecord:
        return BudgetRecord(
            budget_usd=self.budget_usd,
            paid_usd=round(self.paid_usd, 12),
            local_usd=round(self.local_usd, 12),
            skipped=dict(self.skipped),
        )


class SpendLedger:
    """`spend.jsonl` in the run folder: every provider charge that is not an answer line (answers on dev, judge
    calls, a training job, an index), appended at once, so a kill or a resume never forgets what was paid."""

    def __init__(self, path: Path):
        self.path = path

    def total(self) -> float:
        """What the ledger says was paid. A damaged line is never dropped from the count: its `usd` is read from
        what is left of it, or, when that is gone too, it counts as the largest charge in the ledger (a warning
        says how many)."""
        if not self.path.exists():
            return 0.0
        amounts: list[float] = []
        damaged: list[str] = []
        for line in self.path.read_bytes().decode("utf-8", "replace").split("\n"):
            if not line.strip():
                continue
            try:
                amounts.append(float(json.loads(line)["usd"]))
            except (ValueError, KeyError, TypeError):
                damaged.append(line)
        total = sum(amounts)
        if damaged:
            largest = max(amounts, default=0.0)
            for line in damaged:
                found = re.search(r'"usd":\s*([0-9.eE+-]+)', line)
                try:
                    total += float(found.group(1)) if found else largest
                except ValueError:
                    total += largest
            log.warning(
                "%s: %d damaged line(s) counted at what is left of their amount, or the largest charge ($%.4g)",
                self.path,
                len(damaged),
                largest,
            )
        return total

    def add(self, strategy: str, what: str, usd: float) -> None:
        if usd <= 0:
            return
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(
                json.dumps(
                    {"at": datetime.now(timezone.utc).isoformat(), "strategy": strategy, "what": what, "usd": usd}
                )
                + "\n"
            )


def upper_usd(backend: Backend, pricing: Pricing, request: GenRequest) -> float:
    """The most one call can cost: its whole prompt and max_new_tokens of answer at the model's prices."""
    prompt = backend.count_tokens_upper(request.messages)
    return pricing.call_usd(prompt, request.params.max_new_tokens) or 0.0


def affordable(items: Sequence[T], spend: Spend, upper: Callable[[T], float], *, paid: bool) -> tuple[list[T], list[T]]:
    """The items (calls) that can be sent without passing budget_usd even if each costs its most, and the rest."""
    if not paid or spend.budget_usd is None:
        return list(items), []
    room = spend.room()
    for i, item in enumerate(items):
        room -= upper(item)
        if room < 0:
            return list(items[:i]), list(items[i:])
    return list(items), []
