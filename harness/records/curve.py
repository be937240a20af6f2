"""A fine-tune's learning curve: the same strategy trained on nested subsets of its train split (say 25%, 50% and
100%), each scored on the same test cases, the saturating curve fitted through them (harness.verdict.curve) and
what labelling more examples is expected to buy."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from harness.records.base import Record
from harness.records.setup import StrategySetup


class CurvePoint(Record):
    """One measured point: a training subset's score on the test cases."""

    fraction: float  # share of the train split the model was trained on
    n_examples: int
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    n_cases: int
    training_usd: float | None = None
    epochs: int | None = None
    name: str  # the run variant that produced it, e.g. "lora@curve0.25" or "lora"
    setup: StrategySetup | None = None  # how a subset was trained (the full split's is the strategy's own setup)


class CurvePrediction(Record):
    """The fitted curve's score at a number of training examples, with its bootstrap interval."""

    n_examples: int
    factor: float  # n_examples / the largest measured n
    mean: float
    low: float
    high: float


class CurveFit(Record):
    """The fit of q(n) = a - b * n^(-c) through the points, or why there is none to extrapolate from."""

    status: Literal["extrapolated", "flat", "cannot_extrapolate"]
    reason: str  # one plain sentence
    form: str = "q(n) = a - b * n^(-c)"
    params: dict[str, float] | None  # a, b, c of the point fit
    asymptote: float | None
    predictions: list[CurvePrediction] = Field(default_factory=list)
    resamples: int = 0
    supported_share: float | None  # share of bootstrap refits that also level off


class MoreData(Record):
    """What labelling `factor` times the examples costs and is expected to gain."""

    factor: float
    more_examples: int
    labelling_usd: float | None
    extra_training_usd: float | None
    expected_gain: float | None
    gain_low: float | None
    gain_high: float | None
    worth_it: bool | None  # at every volume of the suite (None: it depends on the volume, or is not known)
    sentence: str
    pays_from_monthly_requests: float | None = None  # with economics.value: the volume from which labelling pays


class LearningCurve(Record):
    """A strategy's measured points on one metric, the curve through them and the more-data estimate."""

    strategy: str
    metric: str
    points: list[CurvePoint]
    fit: CurveFit
    more_data: MoreData | None = None
