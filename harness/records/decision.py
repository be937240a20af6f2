"""Paired comparisons and the decision: which strategy wins at each volume, and fine-tuning against each
alternative (payback, break-even, or why not). Written once by `harness compare`, read by every view."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from harness.records.base import Record
from harness.records.curve import LearningCurve
from harness.suite.schema import DecisionSpec, ModelPrice

Relation = Literal["better", "worse", "equivalent", "inconclusive"]
Outcome = Literal[
    "pays_off",
    "better_at_a_price",
    "never",
    "not_needed",
    "worse_but_cheaper",
    "inconclusive",
    "unknown_cost",
    "under_trained",  # it lost or tied as trained, but its dev score was still rising at the last epoch
]
Status = Literal["decided", "inconclusive", "undecided"]
Pattern = Literal["knowledge", "format", "unclear", "none"]  # none: no fine-tune to diagnose


class PairedComparison(Record):
    """A against B on the cases both answered (harness.verdict.stats)."""

    a: str
    b: str
    n: int  # cases both strategies answered
    mean_a: float | None
    mean_b: float | None
    diff: float  # mean of A - B per case
    ci_low: float | None
    ci_high: float | None
    test: str
    p_value: float
    wins: int  # cases where A scored higher
    losses: int
    ties: int
    min_detectable_diff: float | None
    cases_needed: int | None  # to settle the observed difference (None when settled, or no difference at all)
    p_holm: float | None = None
    sd_diff: float = 0.0  # standard deviation of the per-case differences
    seed_var: float = (
        0.0  # variance of the difference from seed luck (strategies run with seeds): cases never shrink it
    )
    alpha: float = 0.05
    settled: bool = False  # p (Holm-corrected when there are several pairs) below alpha
    pairs: int = 1  # comparisons Holm's correction was over
    cases_to_decide: int | None = None  # total test cases that would decide it against the minimum gain

    def flipped(self) -> PairedComparison:
        """The same comparison read as B against A."""
        return self.model_copy(
            update={
                "a": self.b,
                "b": self.a,
                "diff": -self.diff,
                "mean_a": self.mean_b,
                "mean_b": self.mean_a,
                "wins": self.losses,
                "losses": self.wins,
                "ci_low": None if self.ci_high is None else -self.ci_high,
                "ci_high": None if self.ci_low is None else -self.ci_low,
            }
        )


class RankRow(Record):
    """One strategy at one monthly volume."""

    strategy: str
    quality: float | None
    ci_low: float | None
    ci_high: float | None
    monthly_usd: float | None
    per_request_usd: float | None
    setup_usd: float
    p95_s: float | None
    meets_slo: bool  # meets every guard (decision.guards, the p95 latency SLO among them)
    guards_missed: list[str] = Field(default_factory=list)  # each as 'metric >= bound (the value it has)'
    net_value_month_usd: float | None = None  # with economics.value: right answers' worth less costs
    net_value_per_request_usd: float | None = None
    net_value_ci_usd: list[float | None] | None = None
    break_even_accuracy: float | None = None


class VolumeVerdict(Record):
    """Winner and ranking at one monthly volume."""

    volume: int
    winner: str | None
    status: Status
    ranking: list[RankRow]
    why: str
    against: str | None = None  # inconclusive: the strategy it could not be told apart from
    more_cases: int | None = None


class FinetuneAtVolume(Record):
    volume: int
    finetune_monthly_usd: float | None
    alternative_monthly_usd: float | None
    monthly_saving_usd: float | None
    payback_months: float | None


class FinetuneVerdict(Record):
    """A fine-tune against one alternative: is it better, cheaper, and when does it pay back its setup?"""

    strategy: str
    against: str
    relation: Relation
    pair: PairedComparison | None
    saving_per_request_usd: float | None
    extra_setup_usd: float
    payback_requests: int | None  # whole requests (rounded up once, here); None: never
    break_even_monthly_volume: int | None  # None: dearer at every volume up to 1e12 a month
    at_volume: list[FinetuneAtVolume]
    more_cases_needed: int | None = None
    outcome: Outcome
    reason: str
    under_trained: bool = False  # the chosen checkpoint was the last and dev was still rising there
    more_training_usd: float | None = None  # what training as long again would cost (under_trained)
    grid_edge: list[str] = Field(default_factory=list)  # under_trained because the search's best sat on its edge


class PriceOverrides(Record):
    """The suite's `economics.prices` and `economics.usd_per_hour`."""

    prices: dict[str, ModelPrice] = Field(default_factory=dict)
    usd_per_hour: dict[str, float] = Field(default_factory=dict)


class PriceSheetInfo(Record):
    """The price sheet a run used, and the suite's overrides (None: the suite has no economics section)."""

    version: str
    date: str
    currency: str
    overrides: PriceOverrides | None = None


class TippingPoint(Record):
    """Where one input of the decision flips its winner, searched on both sides of its current value with the
    decision's own functions (harness.verdict.tipping)."""

    input: str  # monthly_requests, token_price_factor, usd_per_hour, training_usd, data_usd, correct_usd
    label: str  # what a reader calls it: "monthly volume", "GPU/CPU $/hour", ...
    current: float  # its value in this run
    volume: int  # the monthly volume the winner was decided at
    winner: str
    runner_up: str | None
    low: float | None  # below this the winner changes (None: it does not, down to searched[0])
    low_winner: str | None = None
    high: float | None  # above this the winner changes (None: it does not, up to searched[1])
    high_winner: str | None = None
    searched: tuple[float, float]
    sentence: str


class Decision(Record):
    status: Status
    verdict: str
    winner: str | None
    metric: str
    policy: DecisionSpec
    by_volume: list[VolumeVerdict] = Field(default_factory=list)
    finetune: list[FinetuneVerdict] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list)
    uncertainty: list[str] = Field(default_factory=list)
    prices: PriceSheetInfo | None = None
    pairs: list[PairedComparison] = Field(default_factory=list)
    provisional: bool = False  # a fine-tune that did not win was still improving when its training ended
    learning_curves: list[LearningCurve] = Field(default_factory=list)  # fine-tunes run with config.learning_curve
    tipping: list[TippingPoint] = Field(default_factory=list)  # where each input flips the winner


class Gain(Record):
    """A strategy's paired gain over zero-shot on the primary metric (what fine-tuning or retrieval adds)."""

    strategy: str
    kind: str
    over: str
    pair: PairedComparison  # strategy against `over`, on the primary metric


class FailureMix(Record):
    """Why a strategy's answers failed: the form (invalid, empty, cut at the token limit), the content, or an error."""

    strategy: str
    answers: int
    failed: int  # scored 0 (0/1 metrics) or below 0.5 (others), or an error
    format: int
    content: int
    errors: int

    @property
    def format_share(self) -> float | None:
        wrong = self.format + self.content
        return None if wrong == 0 else self.format / wrong


class Diagnosis(Record):
    """Why the verdict came out as it did: what retrieval and fine-tuning each add over zero-shot, how answers fail,
    the pattern when the numbers settle it, and cautions about what the primary metric rewards."""

    gains: list[Gain] = Field(default_factory=list)
    hit_rate: dict[str, float] = Field(default_factory=dict)  # strategies that retrieve, where gold is known
    failures: list[FailureMix] = Field(default_factory=list)
    pattern: Pattern = "none"
    sentence: str = ""
    cautions: list[str] = Field(default_factory=list)
