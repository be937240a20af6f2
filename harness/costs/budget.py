"""What calls cost and what was paid: how a backend's calls are priced, the prompt's tokens by part, the run
folder's ledger of provider charges, and which calls still fit under budget_usd. The runner calls these; the
arithmetic itself is harness.costs.prices."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from harness.backends.base import Backend, GenRequest, GenResult
from harness.builtins import BACKENDS
from harness.costs.prices import Pricing, Spend, pricing_for

T = TypeVar("T")


def pricing_of(suite, identity: dict[str, Any]) -> Pricing:
    """How calls to the backend with this identity are priced (tokens for API models, busy time for local ones)."""
    cls = BACKENDS.get(identity["kind"])
    return pricing_for(suite, model=str(identity.get("price_as") or identity.get("model", "")),
                       device=str(identity.get("device") or cls.device),
                       api=cls.device == "api")


class SpendLedger:
    """`spend.jsonl` in the run folder: every provider charge that is not an answer line (answers on dev, judge
    calls, a training job, an index), appended at once, so a kill or a resume never forgets what was paid."""

    def __init__(self, path: Path):
        self.path = path

    def total(self) -> float:
        if not self.path.exists():
            return 0.0
        total = 0.0
        for line in self.path.read_text(encoding="utf-8").split("\n"):
            try:
                total += float(json.loads(line)["usd"])
            except (ValueError, KeyError, TypeError):
                continue  # an empty line, or one torn by a kill
        return total

    def add(self, strategy: str, what: str, usd: float) -> None:
        if usd <= 0:
            return
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"at": datetime.now(timezone.utc).isoformat(), "strategy": strategy, "what": what,
                                 "usd": usd}) + "\n")


def attribute_tokens(parts: dict[str, int], result: GenResult) -> dict[str, int]:
    """The prompt's measured tokens split by part; what the parts do not explain is the chat template's."""
    out = dict(parts)
    total = sum(parts.values())
    measured = result.input_tokens
    if measured and total > measured:  # counted apart, parts can tokenise a little longer than the whole prompt
        out = {k: round(v * measured / total) for k, v in parts.items()}
        total = sum(out.values())
    out["template"] = max(measured - total, 0) if measured else 0
    out["output"] = result.output_tokens
    return out


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
