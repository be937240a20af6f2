"""How calls are priced, and what a strategy costs per request and to set up, from its results: the one home of
"where does the cost of one request come from?".

- A call costs its tokens at the model's prices (API models, or any model the suite prices), or else its share of
  the device's busy time at the device's $/hour (local models): `Pricing.call_usd`, used alike by the run (each
  answer's cost_usd), the budget, the estimate and the summary.
- `strategy_cost`: per-request cost over the test answers, one-off setup items, hosting, evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from harness.costs.model import CURATION, DATA
from harness.costs.prices import ResolvedPrice, device_rate, resolve_price
from harness.records.cases import CaseResult
from harness.records.setup import StrategySetup
from harness.records.summary import CostItem, PricingUsed, StrategyCost
from harness.suite.schema import BackendSpec, DataPrepSpec, Suite


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

    def call_usd(
        self, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0, compute_s: float = 0.0
    ) -> float | None:
        if self.kind == "tokens":
            assert self.price is not None
            return token_cost(self.price, input_tokens, output_tokens, cached_input_tokens)
        if self.kind == "device_hours" and self.usd_per_hour is not None:
            return compute_s / 3600 * self.usd_per_hour
        return None

    def as_record(self) -> PricingUsed:
        return PricingUsed(
            kind=self.kind,
            basis=self.basis,
            price=self.price.as_record() if self.price else None,
            device=self.device or None,
            usd_per_hour=self.usd_per_hour if self.device else None,
        )


def token_cost(
    price: ResolvedPrice, input_tokens: float, output_tokens: float, cached_input_tokens: float = 0
) -> float:
    """Dollars for one call: uncached input, cached input and output tokens at their per-1M prices."""
    fresh = max(input_tokens - cached_input_tokens, 0)
    return (
        fresh * (price.per_1m("input") or 0)
        + cached_input_tokens * (price.per_1m("cached_input") or 0)
        + output_tokens * (price.per_1m("output") or 0)
    ) / 1e6


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


def pricing_of(suite: Suite | None, identity: dict[str, Any]) -> Pricing:
    """How calls to the backend with this identity are priced (tokens for API models, busy time for local ones)."""
    from harness.builtins import BACKENDS

    cls = BACKENDS.get(identity["kind"])
    return pricing_for(
        suite,
        model=str(identity.get("price_as") or identity.get("model", "")),
        device=str(identity.get("device") or cls.device),
        api=cls.device == "api",
    )


# ---- one strategy's costs from its results -----------------------------------------------------------------------


def _per_request(
    ok: list[CaseResult], pricing: Pricing, tokens: dict[str, float], notes: list[str]
) -> tuple[float | None, float | None, dict[str, float]]:
    """Production cost of one request over the answers (cache hits included: production pays every request), its
    busy time, and what each prompt part costs."""
    per_request = busy = None
    by_part: dict[str, float] = {}
    if pricing.kind == "tokens" and ok:
        price = pricing.price
        assert price is not None  # a tokens pricing always has its price
        per_request = float(
            np.mean([token_cost(price, r.input_tokens, r.output_tokens, r.cached_input_tokens) for r in ok])
        )
        in_price, out_price = (price.per_1m("input") or 0) / 1e6, (price.per_1m("output") or 0) / 1e6
        by_part = {k: v * (out_price if k == "output" else in_price) for k, v in tokens.items()}
    elif pricing.kind == "device_hours" and ok:
        timed = [r.compute_s for r in ok if r.compute_s > 0]
        if timed and pricing.usd_per_hour is not None:
            busy = float(np.mean(timed))
            per_request = busy / 3600 * pricing.usd_per_hour
        else:
            notes.append("no busy time measured for these answers")
    elif pricing.kind == "unknown":
        notes.append(pricing.basis)
    queries = [
        r.meta.retrieval.query_embedding_usd
        for r in ok
        if r.meta.retrieval is not None and r.meta.retrieval.query_embedding_usd is not None
    ]
    if queries and per_request is not None:  # an API embedder's charge for embedding each query
        per_request += float(np.mean(queries))
        by_part["query_embedding"] = float(np.mean(queries))
    return per_request, busy, by_part


def _setup_items(setup: StrategySetup, notes: list[str]) -> list[CostItem]:
    """One-off costs: what the strategy's own setup cost (training, indexing), dev answers, deployments."""
    given = setup.given
    items = []
    for cost in given.setup_costs if given else []:
        if cost.usd is not None:
            items.append(CostItem(what=cost.what, usd=cost.usd, basis=cost.basis))
        else:
            notes.append(f"{cost.what} cost unknown: {cost.basis}")
    dev = setup.dev
    if dev and dev.cost_usd:
        items.append(
            CostItem(
                what=f"dev answers ({dev.answers or dev.calls}: choosing settings on dev)",
                usd=dev.cost_usd,
                basis=dev.cost_basis,
            )
        )
    deployment = given.deployment if given else None
    if deployment and deployment.usd:
        items.append(
            CostItem(
                what=f"deployment hosting during the run ({deployment.hosted_s:.0f} s)",
                usd=deployment.usd,
                basis=f"hosted time x {deployment.usd_per_hour} $/h",
            )
        )
    return items


def data_items(setup: StrategySetup, data: DataPrepSpec | None, notes: list[str]) -> list[CostItem]:
    """What preparing the strategy's labelled examples (and its corpus) cost, by economics.data: only what it used
    (the test split, labelled for every strategy alike, is not charged)."""
    if data is None:
        return []
    used = setup.given.data_used if setup.given else None
    if used is None:
        notes.append("economics.data not charged: the strategy does not say which labelled examples it used")
        return []
    items = []
    per = data.per_example_usd
    if per is not None and used.examples:
        split = " + ".join(f"{n} {name}" for name, n in (("train", used.train), ("dev", used.dev)) if n)
        items.append(
            CostItem(
                what=f"{DATA} ({used.examples:,} labelled examples: {split})",
                usd=round(used.examples * per, 9),
                basis=f"labelled examples x {data.basis}",
            )
        )
    if used.corpus and data.corpus_curation_usd:
        items.append(CostItem(what=CURATION, usd=data.corpus_curation_usd, basis="economics.data.corpus_curation_usd"))
    return items


def setup_usd(setup: StrategySetup) -> float:
    """What preparing a strategy cost, in dollars (its priced one-off items)."""
    return float(sum(i.usd for i in _setup_items(setup, [])))


def strategy_cost(
    rows: list[CaseResult],
    setup: StrategySetup,
    pricing: Pricing,
    *,
    tokens: dict[str, float],
    data: DataPrepSpec | None = None,
) -> StrategyCost:
    """A strategy's production cost per request, its one-off setup items, fixed hosting, evaluation (judge) cost,
    and what this run spent on it."""
    ok = [r for r in rows if r.error is None]
    notes: list[str] = []
    per_request, busy, by_part = _per_request(ok, pricing, tokens, notes)
    items = _setup_items(setup, notes) + data_items(setup, data, notes)
    hosting = float((setup.given.hosting_usd_per_hour if setup.given else None) or 0.0)
    if not hosting and pricing.price is not None and pricing.price.finetuned:
        hosting = float(pricing.price.price.hosting_usd_per_hour or 0.0)
    evaluation = sum(e.cost_usd or 0.0 for e in setup.evaluation.values())
    setup_usd = float(sum(i.usd for i in items))
    answered = sum(r.cost_usd or 0.0 for r in rows if not r.cache_hit)
    return StrategyCost(
        pricing=pricing.as_record(),
        per_request_usd=per_request,
        per_request_by_part_usd=by_part,
        busy_s_per_request=busy,
        device_usd_per_hour=pricing.usd_per_hour,
        hosting_usd_per_hour=hosting,
        setup_usd=setup_usd,
        setup_items=items,
        evaluation_usd=float(evaluation),
        run_usd=float(answered + setup_usd + evaluation),
        notes=notes,
    )


def pricing_of_spec(suite: Suite, spec: BackendSpec) -> Pricing:
    """How a suite's backend is priced before it runs (from its config; `device: auto` counts as the backend's own
    device)."""
    from harness.builtins import BACKENDS

    cls = BACKENDS.get(spec.kind)
    device = spec.config.get("device")
    device = cls.device if device in (None, "auto") else device
    return pricing_for(suite, model=spec.model, device=str(device), api=cls.device == "api")
