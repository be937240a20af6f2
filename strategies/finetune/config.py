"""A finetune strategy's config: the tuner and its options (candidate lists for a search), merging, the forgetting
check, and training with retrieved context; how a config becomes a tuner class and a search, and what is wrong
with one candidate's tuner config."""

from __future__ import annotations

import itertools
from typing import Any

from pydantic import Field, field_validator

from harness.builtins import TUNERS
from harness.suite.messages import explain_errors
from harness.suite.prompts import build_messages
from harness.suite.schema import StrictModel
from harness.tuner import TrainExample, Tuner
from strategies.finetune.search import Search, parse_search


class TunerSpec(StrictModel):
    kind: str = Field("local", description="Tuner: local (trl + peft), unsloth (GPU), autotrain, openai, azure.")
    config: dict[str, Any] = Field(default_factory=dict, description="Options of that tuner (see `harness schema`).")


class FineTuneConfig(StrictModel):
    tuner: TunerSpec = Field(default_factory=TunerSpec)
    merge: bool = Field(False, description="Merge the chosen adapter into the base weights and serve the merged model.")
    merge_parity_cases: int = Field(
        8, ge=1, le=1000, description="Dev cases whose greedy answers must match after merging."
    )
    forgetting_check: bool = Field(
        False,
        description="Score base and fine-tuned model on a small general task with lm-eval (needs the eval extra).",
    )
    context_from: str | None = Field(
        None,
        description="Train and serve with context retrieved by this rag strategy (its corpus, retriever and chosen "
        "top_k; listed before this one): every training, dev and test prompt carries its passages, so training and "
        "serving match. Its indexing counts in this strategy's setup too.",
    )
    learning_curve: list[float] | None = Field(
        None,
        min_length=1,
        max_length=8,
        description="Also train on these fractions of the train split (nested, seeded subsets; each with its own "
        "checkpoint choice on dev), score each on test, and fit a learning curve: what more labelled data would "
        "bring. E.g. [0.25, 0.5, 1.0]; the full split is always a point.",
    )

    @field_validator("learning_curve")
    @classmethod
    def _fractions(cls, fractions: list[float] | None) -> list[float] | None:
        if fractions is None:
            return None
        for f in fractions:
            if not 0 < f <= 1:
                raise ValueError(
                    f"fraction {f:g} is outside (0, 1]. Fix: give shares of the train split, e.g. [0.25, 0.5, 1.0]"
                )
        if any(b <= a for a, b in itertools.pairwise(fractions)):
            raise ValueError(
                f"fractions {fractions} are not increasing. Fix: list them from smallest to largest, each once, "
                "e.g. [0.25, 0.5, 1.0]"
            )
        return fractions

    @property
    def curve_fractions(self) -> list[float]:
        """The learning curve's subsets below the full split (which the strategy itself trains on)."""
        return [f for f in self.learning_curve or [] if f < 1]


def training_examples(task, cases) -> list[TrainExample]:
    return [TrainExample(id=c.id, prompt=build_messages(task, c), completion=c.target) for c in cases]


def parse(config: FineTuneConfig, has_dev: bool) -> tuple[type[Tuner], Search, list[tuple[tuple[str | int, ...], str]]]:
    """The tuner class and the search a finetune strategy's config asks for (see strategies.finetune.search)."""
    cls = TUNERS.get(config.tuner.kind)
    search, problems = parse_search(
        config.tuner.config,
        has_dev=has_dev,
        provider_auto=cls.provider_auto_epochs,
        has_epochs="epochs" in getattr(cls.Config, "model_fields", {}),
    )
    return cls, search, problems


def config_problems(tuner_cls: type[Tuner], raw: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    """What is wrong with one candidate's tuner config: its schema, then the tuner's own checks."""
    from pydantic import ValidationError

    try:
        tuner_config = tuner_cls.Config.model_validate(raw)
    except ValidationError as exc:
        return list(explain_errors(exc, tuner_cls.Config))
    return list(tuner_cls.check(tuner_config))
