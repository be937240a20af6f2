"""Per-strategy aggregates over the test cases: quality with intervals, latency, tokens, retrieval, and cost."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field

from harness.records.base import Record
from harness.records.setup import StrategySetup


class FieldScores(Record):
    """A structured-output metric's (key, value) pairs over the test set: precision, recall and F1 micro-averaged
    (pairs summed over cases), and F1 per key."""

    precision: float
    recall: float
    f1: float
    tp: int
    fp: int
    fn: int
    per_key_f1: dict[str, float] = Field(default_factory=dict)
    per_key_support: dict[str, int] = Field(default_factory=dict)  # cases whose target has the key


class JudgeTrust(Record):
    """How far a model judge can be trusted on this strategy's answers: its agreement with the human grades the
    cases carry, and (pairwise) how often it prefers whichever answer it saw first."""

    agreement: float | None = None  # Cohen's kappa (labels) or Spearman's rho (scales)
    agreement_kind: str | None = None  # "cohen_kappa" | "spearman"
    ci_low: float | None = None
    ci_high: float | None = None
    n_graded: int = 0  # cases with both a human grade and a judge score
    min_agreement: float | None = None
    position_first_share: float | None = None  # pairwise: share of decisive replies picking the first answer
    n_position: int = 0


class MetricSummary(Record):
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    ci_method: str
    n: int  # cases in the denominator (errors count as 0)
    n_scored: int
    n_unscored: int
    n_invalid: int
    fields: FieldScores | None = None  # json_match: micro precision / recall / F1 and per-key F1
    judge: JudgeTrust | None = None  # model-graded metrics: agreement with human grades, position bias


class LatencySummary(Record):
    n: int
    p50_s: float | None
    p95_s: float | None
    p99_s: float | None
    mean_s: float | None
    how: str
    ttft_p50_s: float | None = None  # time to first token, where answers were streamed
    ttft_p95_s: float | None = None


class PriceUsed(Record):
    """A model's prices as a run used them: the sheet entry under the suite's overrides, and where each came from."""

    model: str
    entry: str | None
    finetuned: bool
    origin: str
    input_per_1m_usd: float | None = None
    cached_input_per_1m_usd: float | None = None
    output_per_1m_usd: float | None = None
    training_per_1m_usd: float | None = None
    finetuned_input_per_1m_usd: float | None = None
    finetuned_cached_input_per_1m_usd: float | None = None
    finetuned_output_per_1m_usd: float | None = None
    hosting_usd_per_hour: float | None = None
    source: str | None = None
    as_of: date | None = None
    retires: date | None = None


class PricingUsed(Record):
    """How a strategy's calls were priced: tokens at a model's prices, or busy time at a device's $/hour."""

    kind: Literal["tokens", "device_hours", "unknown"]
    basis: str
    price: PriceUsed | None = None
    device: str | None = None
    usd_per_hour: float | None = None


class CostItem(Record):
    what: str
    usd: float
    basis: str = ""


class StrategyCost(Record):
    """What a strategy costs in production and what this run spent on it (see harness.costs)."""

    pricing: PricingUsed
    per_request_usd: float | None  # one production request (test-set mean)
    per_request_by_part_usd: dict[str, float] = Field(default_factory=dict)  # token-priced: what each part costs
    busy_s_per_request: float | None = None
    device_usd_per_hour: float | None = None
    hosting_usd_per_hour: float = 0.0
    setup_usd: float = 0.0  # one-off: training, indexing, dev selection
    setup_items: list[CostItem] = Field(default_factory=list)
    evaluation_usd: float = 0.0  # judges scoring this run's answers: not a production cost
    run_usd: float = 0.0  # what this run spent on the strategy: test answers + setup + evaluation
    notes: list[str] = Field(default_factory=list)

    def setup_usd_where(self, *, what: str | None = None, basis_prefixes: tuple[str, ...] = ()) -> float:
        """Setup dollars of the items named `what`, or whose basis starts with one of `basis_prefixes`."""
        return sum(
            i.usd
            for i in self.setup_items
            if (what is not None and i.what == what) or (basis_prefixes and i.basis.startswith(basis_prefixes))
        )


class RetrievalSummary(Record):
    """Retrieval apart from generation: its own latency, the context it put in prompts, what did not fit."""

    latency: LatencySummary
    context_tokens_mean: float | None
    contexts_used_mean: float | None
    contexts_dropped_total: int
    cases_with_dropped_contexts: int


class SeedResult(Record):
    """One seed of a strategy run with `seeds` (its own training, or exemplar draw) on its own."""

    name: str  # what its lines in cases.jsonl are named: the strategy for seed 1, `strategy@seedN` after
    seed: int  # the seed it was prepared with
    n_done: int
    metrics: dict[str, float | None]  # mean per metric over the test cases it answered
    setup: StrategySetup | None = None  # how it was prepared (seed 1's is the strategy's own `setup`)


class SeedSpread(Record):
    """How far a metric moves between seeds."""

    sd: float | None  # standard deviation of the per-seed means
    low: float | None
    high: float | None


class StrategySummary(Record):
    strategy: str
    backend: str
    n_planned: int
    n_done: int
    n_errors: int
    n_cache_hits: int
    metrics: dict[str, MetricSummary]
    latency: LatencySummary
    input_tokens_mean: float | None
    output_tokens_mean: float | None
    throughput_output_tok_s: float | None
    compute_s_total: float
    tokens_mean: dict[str, float] = Field(default_factory=dict)  # per request, by part (see costs.tokens.TOKEN_PARTS)
    setup: StrategySetup
    cost: StrategyCost | None = None
    retrieval: RetrievalSummary | None = None  # strategies that retrieve (rag)
    # a strategy run with `seeds`: each seed's scores, and per metric their spread (its metrics are over all seeds)
    seeds: list[SeedResult] = Field(default_factory=list)
    seed_spread: dict[str, SeedSpread] = Field(default_factory=dict)
