"""The suite file: a strict pydantic schema, validated in two stages (envelope, then each component's Config).

`load_suite` checks everything, data files included, before any model is touched.
"""

from __future__ import annotations

import string
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=64)]
MAX_SEEDS = 20
SEED_MARK = "@seed"  # a strategy's extra seeds run as `name@seed2`, ...: '@' is not allowed in a name
CURVE_MARK = "@curve"  # a fine-tune's learning-curve subsets run as `name@curve0.25`, ...


def seed_variant(name: str, number: int) -> str:
    """The name seed `number` (1-based) of strategy `name` runs under; seed 1 is the strategy itself."""
    return name if number == 1 else f"{name}{SEED_MARK}{number}"


def seed_of(name: str) -> tuple[str, int]:
    """(the strategy's own name, its seed number) of a name `seed_variant` or `curve_variant` made (a
    learning-curve subset is seed 1)."""
    base, mark, rest = name.partition("@")
    if not mark:
        return name, 1
    number = rest.removeprefix(SEED_MARK[1:])
    return (base, int(number)) if rest.startswith(SEED_MARK[1:]) and number.isdigit() else (base, 1)


def curve_variant(name: str, fraction: float) -> str:
    """The name strategy `name` trained on `fraction` of its train split runs under."""
    return f"{name}{CURVE_MARK}{fraction:g}"


def curve_of(name: str) -> float | None:
    """The train-split fraction of a name `curve_variant` made; None for any other name."""
    _, mark, rest = name.partition(CURVE_MARK)
    try:
        return float(rest) if mark else None
    except ValueError:
        return None


class StrictModel(BaseModel):
    """Every model of the suite file refuses unknown keys."""

    model_config = ConfigDict(extra="forbid")


def check_template(text: str | None) -> str | None:
    """A prompt template whose braces name data fields (ValueError with the fix otherwise)."""
    if text is None:
        return text
    try:
        names = [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
    except ValueError as exc:
        raise ValueError(
            f"{exc}. Fix: close each '{{' with '}}', and write a literal brace as '{{{{' or '}}}}'"
        ) from None
    if any(name == "" or name.isdigit() for name in names):
        raise ValueError(
            "'{}' or '{0}' names no data field. Fix: put the field's name in the braces, e.g. "
            "'{text}', and write a literal brace as '{{' or '}}'"
        )
    return text


class TaskSpec(StrictModel):
    instructions: str | None = Field(
        None,
        description="System instructions. `{labels}` is replaced by the comma-separated label set. Required, "
        "except with data.format openai_chat, whose lines' shared system turn is the default.",
    )
    input_field: str = Field("input", description="Data field holding the case input (text or chat messages).")
    target_field: str = Field("target", description="Data field holding the expected answer.")
    id_field: str = Field("id", description="Data field holding a unique case id; generated from the line when absent.")
    prompt_template: str | None = Field(
        None,
        description="Optional template for the user turn, e.g. 'Utterance: {text}'. Fields in braces come from the data.",
    )
    labels: list[str] | None = Field(None, min_length=2, description="Closed label set for classification tasks.")

    @field_validator("prompt_template")
    @classmethod
    def _template_parses(cls, text: str | None) -> str | None:
        return check_template(text)

    @field_validator("labels")
    @classmethod
    def _distinct_labels(cls, labels: list[str] | None) -> list[str] | None:
        from harness.scoring.normalise import normalise

        seen: dict[str, str] = {}
        for label in labels or []:
            key = normalise(label)
            if not key:
                raise ValueError(f"label {label!r} is empty once case and punctuation are ignored")
            if key in seen:
                raise ValueError(
                    f"labels {seen[key]!r} and {label!r} are the same once case and punctuation are ignored; "
                    "scorers could not tell them apart. Fix: rename one"
                )
            seen[key] = label
        return labels

    def template_fields(self) -> list[str]:
        fields: list[str] = []
        for text in (self.prompt_template,):
            if text:
                fields += [f for _, f, _, _ in string.Formatter().parse(text) if f]
        return fields


class SplitFractions(StrictModel):
    train: float = Field(ge=0, le=1)
    dev: float = Field(0.0, ge=0, le=1)
    test: float = Field(gt=0, le=1)

    @model_validator(mode="after")
    def _sum_to_one(self) -> SplitFractions:
        total = self.train + self.dev + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + dev + test must add up to 1 (they add up to {total:g})")
        return self


class HFDataSpec(StrictModel):
    """A Hugging Face dataset: a hub id (obeys HF_HUB_OFFLINE; pin `revision`), a local loading script or data
    folder, or a folder written by `Dataset.save_to_disk` / `DatasetDict.save_to_disk`."""

    path: str = Field(
        description="Hub id (e.g. rajpurkar/squad) or a folder, relative to the suite file (a `save_to_disk` "
        "folder, or data files `datasets.load_dataset` reads)."
    )
    name: str | None = Field(None, description="The dataset's configuration (subset), e.g. plain_text.")
    revision: str | None = Field(
        None, description="Hub commit, tag or branch; pin it so a rerun reads the same rows (it joins the fingerprint)."
    )
    split: str | None = Field(
        None, description="One split to cut into train/dev/test by data.split fractions (e.g. validation)."
    )
    splits: dict[Literal["train", "dev", "test"], str] | None = Field(
        None,
        description="The dataset's split for each of ours, e.g. {train: train, dev: validation}; default: its "
        "train, validation (or dev) and test. Missing ones are cut from train by data.split fractions.",
    )
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="Fields made from columns: field name -> column, with dots and [i] into nested values, "
        "e.g. {target: 'answers.text[0]'}. The task's fields then name them.",
    )
    max_rows: int | None = Field(
        None, ge=1, description="Keep at most this many rows of each split, drawn by the suite seed."
    )


class DataSpec(StrictModel):
    train: str | None = Field(None, description="Train split file (JSONL, CSV or Parquet), relative to the suite file.")
    dev: str | None = None
    test: str | None = None
    source: str | None = Field(None, description="One file to split by `split` fractions and the suite seed.")
    hf: HFDataSpec | None = Field(None, description="A Hugging Face dataset (hub or local) instead of files.")
    format: Literal["fields", "openai_chat"] = Field(
        "fields",
        description="fields: each row's fields (task.input_field, task.target_field); openai_chat: the OpenAI chat "
        'fine-tuning file, {"messages": [...]} per line: the last assistant turn is the target, the turns '
        "before it the input, a shared system turn the task's instructions.",
    )
    split: SplitFractions | None = None
    allow_overlap: bool = Field(False, description="Allow test inputs that also appear in train or dev (leakage).")
    max_field_chars: int = Field(
        1_000_000,
        ge=1,
        description="Longest field a case may have, in characters; a longer "
        "one is refused as a broken file (an unclosed quote, a pasted dump).",
    )

    @model_validator(mode="after")
    def _one_layout(self) -> DataSpec:
        if self.hf:
            if self.source or self.train or self.dev or self.test:
                raise ValueError("give either `hf` (a Hugging Face dataset) or data files, not both")
            if self.hf.split and self.split is None:
                raise ValueError(
                    f"`hf.split: {self.hf.split}` is cut into train/dev/test by `split` fractions; add e.g. "
                    "`split: {train: 0.7, dev: 0.1, test: 0.2}`"
                )
        elif self.source:
            if self.train or self.dev or self.test:
                raise ValueError("give either `source` with `split`, or `train`/`dev`/`test` files, not both")
            if self.split is None:
                raise ValueError("`source` needs `split` fractions, e.g. {train: 0.7, dev: 0.1, test: 0.2}")
        elif not self.test:
            raise ValueError(
                "name a `test` file (and usually `train`), one `source` file with `split` fractions, or an `hf` dataset"
            )
        return self


class GenerationParams(StrictModel):
    max_new_tokens: int = Field(64, ge=1, le=32768)
    temperature: float = Field(0.0, ge=0, le=5)
    top_p: float = Field(1.0, gt=0, le=1)
    stop: list[str] = Field(default_factory=list, description="Stop strings; the answer is cut before the first one.")


class BackendSpec(StrictModel):
    name: Name
    kind: str
    model: str = Field("", description="Model path, hub id, or an embedded name such as smollm2-135m-instruct.")
    generation: GenerationParams = Field(default_factory=GenerationParams)
    config: dict[str, Any] = Field(
        default_factory=dict, description="Options of this backend kind (see `harness list`)."
    )


class StrategySpec(StrictModel):
    name: Name
    kind: str
    backend: str | None = Field(None, description="Backend name; may be left out when the suite has one backend.")
    instructions: str | None = Field(
        None,
        description="This strategy's own system instructions in place of task.instructions (e.g. a fine-tune served "
        "with one line, or '' for none); a fine-tune trains on exactly the prompt it is served with.",
    )
    prompt_template: str | None = Field(
        None, description="This strategy's own user-turn template in place of task.prompt_template."
    )
    seeds: int = Field(
        1,
        ge=1,
        le=MAX_SEEDS,
        description="Prepare and answer the strategy this many times, each with its own seed (the suite's seed, "
        "+1, +2, ...): N fine-tune trainings, or N exemplar draws. The summary shows each seed's score and the "
        "spread, and the intervals and paired tests resample seeds as well as cases.",
    )
    config: dict[str, Any] = Field(default_factory=dict)

    def variants(self) -> list[StrategySpec]:
        """The strategy once per seed: itself, then `name@seed2`, `name@seed3`, ... ('@' is never in a name)."""
        return [self] + [self.model_copy(update={"name": seed_variant(self.name, i)}) for i in range(2, self.seeds + 1)]

    def curve_fractions(self) -> list[float]:
        """A fine-tune's learning-curve subsets below the full train split (config.learning_curve)."""
        found = self.config.get("learning_curve") if self.kind == "finetune" else None
        return [float(f) for f in found if 0 < float(f) < 1] if isinstance(found, list) else []

    def run_variants(self) -> list[StrategySpec]:
        """What a run prepares and answers for this strategy: each seed, then each learning-curve subset."""
        return self.variants() + [
            self.model_copy(update={"name": curve_variant(self.name, f)}) for f in self.curve_fractions()
        ]

    @field_validator("prompt_template")
    @classmethod
    def _template_parses(cls, text: str | None) -> str | None:
        return check_template(text)


class ScorerSpec(StrictModel):
    kind: str
    name: Name | None = None
    config: dict[str, Any] = Field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.name or self.kind


class ModelPrice(StrictModel):
    """A model's prices (the price sheet's entries and the suite's overrides have the same keys)."""

    same_as: str | None = Field(
        None, description="Price this model like another entry (e.g. an Azure deployment name)."
    )
    finetuned: bool | None = Field(
        None,
        description="This name serves a fine-tuned model: its finetuned_* prices and "
        "hosting apply (OpenAI's ft:... names are recognised without it).",
    )
    input_per_1m_usd: float | None = Field(None, ge=0)
    cached_input_per_1m_usd: float | None = Field(
        None, ge=0, description="Prompt tokens served from the provider's cache."
    )
    output_per_1m_usd: float | None = Field(None, ge=0)
    training_per_1m_usd: float | None = Field(None, ge=0, description="Per training token (examples' tokens x epochs).")
    finetuned_input_per_1m_usd: float | None = Field(None, ge=0)
    finetuned_cached_input_per_1m_usd: float | None = Field(None, ge=0)
    finetuned_output_per_1m_usd: float | None = Field(None, ge=0)
    hosting_usd_per_hour: float | None = Field(None, ge=0, description="While a fine-tuned model is deployed (Azure).")
    source: str | None = None
    as_of: date | None = None
    retires: date | None = Field(
        None, description="When the provider retires this model (its fine-tunes stop serving then)."
    )


class OutcomeCost(StrictModel):
    name: str = Field(description="What happens, e.g. 'escalation to a person' or 'customer lost'.")
    cost_usd: float = Field(ge=0)
    probability: float = Field(1.0, ge=0, le=1, description="How often a wrong answer leads to it.")


class ValueSpec(StrictModel):
    """What outcomes are worth, so quality becomes dollars (treats the primary metric as the rate of correct answers)."""

    correct_usd: float = Field(0.0, ge=0, description="What a correct answer is worth.")
    wrong: list[OutcomeCost] = Field(
        default_factory=list, description="What a wrong answer costs, each with its probability."
    )

    @property
    def wrong_usd(self) -> float:
        return sum(o.cost_usd * o.probability for o in self.wrong)


class DataPrepSpec(StrictModel):
    """What labelled examples cost to prepare: per example, or as effort (hours per 100 examples x $/hour)."""

    usd_per_example: float | None = Field(None, ge=0, description="Dollars per labelled example.")
    hours_per_100_examples: float | None = Field(
        None, ge=0, description="Hours of labelling work per 100 examples (with usd_per_hour)."
    )
    usd_per_hour: float | None = Field(None, ge=0, description="What an hour of labelling work costs.")
    corpus_curation_usd: float = Field(
        0.0,
        ge=0,
        description="One-off cost of collecting and cleaning a RAG corpus (charged to strategies that use one).",
    )
    refresh_share: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Share of a fine-tune's labelled examples labelled anew at each retraining "
        "(decision.retrain_every_months), e.g. 0.2 for a fifth of the data refreshed against drift.",
    )

    @model_validator(mode="after")
    def _one_basis(self) -> DataPrepSpec:
        effort = self.hours_per_100_examples is not None or self.usd_per_hour is not None
        if self.usd_per_example is not None and effort:
            raise ValueError(
                "give usd_per_example, or hours_per_100_examples with usd_per_hour, not both. Fix: keep one basis"
            )
        if effort and (self.hours_per_100_examples is None or self.usd_per_hour is None):
            raise ValueError(
                "labelling effort needs both hours_per_100_examples and usd_per_hour. Fix: add the missing one, "
                "or give usd_per_example instead"
            )
        return self

    @property
    def per_example_usd(self) -> float | None:
        """Dollars per labelled example, or None when no labelling cost is given."""
        if self.usd_per_example is not None:
            return self.usd_per_example
        if self.hours_per_100_examples is not None and self.usd_per_hour is not None:
            return self.hours_per_100_examples / 100 * self.usd_per_hour
        return None

    @property
    def basis(self) -> str:
        if self.usd_per_example is not None:
            return f"economics.data.usd_per_example ({self.usd_per_example:g} $)"
        return (
            f"economics.data: {self.hours_per_100_examples:g} h per 100 examples x {self.usd_per_hour:g} $/h"
            if self.per_example_usd is not None
            else "economics.data"
        )


class EconomicsSpec(StrictModel):
    usd_per_hour: dict[str, Annotated[float, Field(ge=0)]] = Field(
        default_factory=dict,
        description="Device -> $/hour for local backends and tuners, e.g. {cpu: 0.10, cuda: 2.5}; "
        "devices not named here use the price sheet's example rate.",
    )
    prices: dict[str, ModelPrice] = Field(default_factory=dict, description="Model -> prices, over the price sheet's.")
    value: ValueSpec | None = Field(None, description="What a correct answer is worth and a wrong one costs.")
    data: DataPrepSpec | None = Field(
        None, description="What labelled examples (and a RAG corpus) cost to prepare: charged as setup."
    )


LATENCY_GUARDS = {
    "p50_latency_s": "p50_s",
    "p95_latency_s": "p95_s",
    "p99_latency_s": "p99_s",
    "ttft_p95_s": "ttft_p95_s",
}
COST_GUARDS = ("per_request_usd", "monthly_usd")


class Guard(StrictModel):
    """A floor or ceiling a strategy must meet to win: a quality metric's interval end, a latency percentile, or a
    cost."""

    metric: str = Field(
        description="A scorer's name (its interval must clear the bound), or p50_latency_s, p95_latency_s, "
        "p99_latency_s, ttft_p95_s, per_request_usd, monthly_usd."
    )
    min: float | None = Field(None, description="The lower end of the metric's interval must be at least this.")
    max: float | None = Field(None, description="The upper end (or the measured value) must be at most this.")

    @model_validator(mode="after")
    def _one_bound(self) -> Guard:
        if self.min is None and self.max is None:
            raise ValueError("a guard needs `min` or `max`. Fix: e.g. {metric: faithfulness, min: 0.8}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min:g}) is above max ({self.max:g}). Fix: swap them")
        if self.metric in LATENCY_GUARDS or self.metric in COST_GUARDS:
            if self.min is not None:
                raise ValueError(f"{self.metric} takes a `max` (a ceiling), not a `min`. Fix: write max: ...")
            if self.max is not None and self.max <= 0:
                raise ValueError(f"{self.metric} max must be above 0. Fix: give a positive ceiling")
        return self

    @property
    def label(self) -> str:
        parts = [f"{self.metric} >= {self.min:g}" if self.min is not None else ""]
        parts.append(f"{self.metric} <= {self.max:g}" if self.max is not None else "")
        return " and ".join(p for p in parts if p)


Months = float  # months between repeats: above 0, at most 120 (DecisionSpec._months)


class DecisionSpec(StrictModel):
    primary_metric: str | None = Field(None, description="Scorer name that decides quality; default: the first scorer.")
    min_gain: float = Field(
        0.02, ge=0, description="Smallest quality gain worth paying for (absolute, in the metric's units)."
    )
    confidence: float = Field(0.95, gt=0.5, lt=1)
    latency_slo_p95_s: float | None = Field(None, gt=0, description="Strategies slower than this at p95 cannot win.")
    monthly_requests: int | tuple[int, int] = Field(
        100_000, description="Expected production volume per month: a number or [low, high]."
    )
    horizon_months: int = Field(12, ge=1, le=120, description="Months over which one-off setup costs are spread.")
    dedicated_hosting: bool = Field(
        False, description="Local models run on machines kept up all month (else: pay for busy time only)."
    )
    guards: list[Guard] = Field(
        default_factory=list,
        description="Floors and ceilings a strategy must meet to win, e.g. [{metric: faithfulness, min: 0.8}, "
        "{metric: p95_latency_s, max: 2}].",
    )
    retrain_every_months: Months | dict[str, Months] | None = Field(
        None,
        description="How often fine-tunes are retrained (data drift, a retired base model): every N months, or "
        "per strategy {name: N}. Training (and economics.data.refresh_share of its data) becomes a monthly cost.",
    )
    reindex_every_months: Months | dict[str, Months] | None = Field(
        None, description="How often a RAG index is rebuilt: every N months, or per strategy {name: N}."
    )

    @field_validator("retrain_every_months", "reindex_every_months", mode="before")
    @classmethod
    def _months(cls, value: Any) -> Any:
        found = value.values() if isinstance(value, dict) else [] if value is None else [value]
        for months in found:
            if isinstance(months, int | float) and not isinstance(months, bool) and not 0 < months <= 120:
                raise ValueError(
                    f"{months:g} months between repeats is not a period. Fix: give the months from one to the next, "
                    "above 0 and at most 120 (e.g. 6), or leave the key out for never"
                )
        return value

    def every_months(self, what: Literal["retrain", "reindex"], strategy: str) -> float | None:
        """How often `strategy` is retrained (or re-indexed), in months; None: never within the horizon."""
        found = self.retrain_every_months if what == "retrain" else self.reindex_every_months
        if isinstance(found, dict):
            return found.get(strategy)
        return found

    def all_guards(self) -> list[Guard]:
        """The guards, with latency_slo_p95_s as one of them."""
        extra = [Guard(metric="p95_latency_s", max=self.latency_slo_p95_s)] if self.latency_slo_p95_s else []
        return extra + list(self.guards)

    @field_validator("monthly_requests")
    @classmethod
    def _volume(cls, value: int | tuple[int, int]) -> int | tuple[int, int]:
        volumes = value if isinstance(value, tuple) else (value,)
        if any(v < 1 for v in volumes):
            raise ValueError(
                f"a volume of {min(volumes)} requests a month leaves nothing to decide. Fix: give the "
                "expected production volume, e.g. 100000, or a range such as [10000, 1000000]"
            )
        if isinstance(value, tuple) and value[0] > value[1]:
            raise ValueError(f"[low, high] has low ({value[0]}) above high ({value[1]}). Fix: swap them")
        return value

    @property
    def volumes(self) -> list[int]:
        v = self.monthly_requests
        return sorted(set(v)) if isinstance(v, tuple) else [v]


class Suite(StrictModel):
    """A comparison: one task, its data, the strategies to compare, how to score them."""

    name: Name
    description: str = ""
    seed: int = 0
    task: TaskSpec
    data: DataSpec
    backends: list[BackendSpec] = Field(min_length=1)
    strategies: list[StrategySpec] = Field(min_length=1)
    scorers: list[ScorerSpec] = Field(min_length=1)
    repeats: int = Field(1, ge=1, le=100)
    economics: EconomicsSpec | None = None
    decision: DecisionSpec | None = None
    budget_usd: float | None = Field(
        None,
        gt=0,
        description="Hard cap on spend: paid calls, plus local answering at economics.usd_per_hour for the "
        "device. A run whose estimate exceeds it does not start (local work counts where `harness estimate` has "
        "calibrated this machine), and calls stop when spend reaches it.",
    )
    budget_hours: float | None = Field(
        None,
        gt=0,
        description="Cap on local compute hours (answering, training, indexing on this machine's devices): a run "
        "whose calibrated estimate exceeds it does not start, and local answering stops when the measured busy "
        "time reaches it.",
    )

    def task_for(self, strategy: StrategySpec) -> TaskSpec:
        """The task as this strategy prompts it: its own instructions or template where it gives them."""
        own = {k: getattr(strategy, k) for k in ("instructions", "prompt_template") if getattr(strategy, k) is not None}
        return self.task.model_copy(update=own) if own else self.task

    def for_strategy(self, strategy: StrategySpec) -> Suite:
        """The suite as one strategy sees it: the task with its own prompt (what strategies build prompts from)."""
        task = self.task_for(strategy)
        return self if task is self.task else self.model_copy(update={"task": task})

    def run_strategies(self) -> list[StrategySpec]:
        """The strategies as a run prepares and answers them: each once per seed (and learning-curve subset), in
        suite order."""
        return [v for spec in self.strategies for v in spec.run_variants()]

    def backend_for(self, strategy: StrategySpec) -> BackendSpec:
        name = strategy.backend or self.backends[0].name
        return next(b for b in self.backends if b.name == name)

    @property
    def primary_metric(self) -> str:
        if self.decision and self.decision.primary_metric:
            return self.decision.primary_metric
        return self.scorers[0].label


def json_schema() -> dict[str, Any]:
    """JSON Schema of the suite file, for editor completion: the envelope plus, per component kind, its
    own `config` schema (an if/then rule on `kind`), so editors complete plugin options too."""
    from harness.builtins import BACKENDS, SCORERS, STRATEGIES

    schema = Suite.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "harness suite"
    defs = schema.setdefault("$defs", {})
    for spec_name, registry in (("BackendSpec", BACKENDS), ("StrategySpec", STRATEGIES), ("ScorerSpec", SCORERS)):
        rules = []
        kinds = registry.kinds()
        for kind in kinds:
            try:
                config = registry.get(kind).Config.model_json_schema(ref_template="#/$defs/{model}")
            except Exception:  # a broken plugin must not break the schema of the rest
                continue
            defs.update(config.pop("$defs", {}))
            config["description"] = registry.summary(kind) or config.get("description", "")
            rules.append({"if": {"properties": {"kind": {"const": kind}}}, "then": {"properties": {"config": config}}})
        spec = defs[spec_name]
        spec["properties"]["kind"]["enum"] = kinds
        spec["allOf"] = rules
    return schema
