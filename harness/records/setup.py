"""What each strategy was given and what setting it up cost: the fairness record a reader checks ("few-shot had 14
exemplars from train, RAG k=2 chosen on dev, the fine-tune 3 epochs with epoch 2 chosen on dev").

`Given` is what `Strategy.prepare()` returns. Built-in strategies have their own typed kind (`ZeroShotGiven`,
`FewShotGiven`, `RagGiven`, `FineTuneGiven`); a plugin strategy may return a plain `Given` with its own keys, which
are kept as they are. One-off costs travel in `setup_costs`, so the summary prices every kind the same way.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag

from harness.records.base import OpenRecord, Record

# ---- costs of setting a strategy up ------------------------------------------------------------------------------


class SetupCost(Record):
    """One one-off cost of preparing a strategy (training, indexing)."""

    what: str
    usd: float | None  # None: it could not be priced (the basis says why)
    basis: str = ""  # how the dollars were got, e.g. "device hours x ..." or "trained tokens x ... price"
    paid_usd: float = 0.0  # the part a provider billed during this run (counts against budget_usd)


class DataUsed(Record):
    """The labelled examples a strategy used (what economics.data charges it for), and whether it needs a corpus."""

    train: int = 0  # train examples it learned or drew exemplars from
    dev: int = 0  # dev examples it chose a setting on
    corpus: bool = False  # it retrieves from a corpus (economics.data.corpus_curation_usd)

    @property
    def examples(self) -> int:
        return self.train + self.dev


class Deployment(Record):
    """Deployments a fine-tune held while it was scored (a provider's hosted model, billed by the hour)."""

    hosted_s: float
    usd_per_hour: float | None
    usd: float | None
    kept: list[str] = Field(default_factory=list)  # deployments left running on purpose


class Given(OpenRecord):
    """What a strategy was given (recorded for fairness) and its one-off costs. Plugins may add keys."""

    kind: str
    setup_costs: list[SetupCost] = Field(default_factory=list)
    hosting_usd_per_hour: float | None = None  # fixed cost while deployed (a provider's fine-tuned deployment)
    deployment: Deployment | None = None
    data_used: DataUsed | None = None  # None: not known (a plugin that does not say)

    @property
    def paid_usd(self) -> float:
        return sum(c.paid_usd for c in self.setup_costs)


class ZeroShotGiven(Given):
    model_config = Record.model_config
    kind: Literal["zero_shot"] = "zero_shot"
    exemplars: int = 0


class FewShotGiven(Given):
    model_config = Record.model_config
    kind: Literal["few_shot"] = "few_shot"
    k: int
    selection: str
    pool: str  # the split exemplars come from: always train
    pool_size: int
    exemplar_ids: list[str] | None = None  # fixed exemplars; `similar` chooses per case (see each case's meta)


# ---- retrieval ---------------------------------------------------------------------------------------------------


class CorpusInfo(Record):
    files: list[str]
    documents: int
    chunks: int
    resplit_for_embedder: int  # chunks split again because they were longer than the embedder takes


class IndexInfo(Record):
    key: str
    reused_from_cache: bool
    build_s: float
    chunk_s: float
    embed_s: float
    embedder: dict[str, Any]  # the embedder's identity (kind, model, and what changes its vectors)
    device: str
    embedding_calls_this_run: int
    embedded_texts: int
    load_s: float


class RetrieverSettings(Record):
    kind: str
    top_k: int | None
    mmr: bool
    fetch_k: int
    hybrid_weights: list[float] | None = None


class DevScore(Record):
    """A setting's score on dev (the suite's primary metric; failed answers count as wrong)."""

    dev_score: float | None
    dev_errors: int = 0
    dev_unscored: int = 0


class TopKCandidate(DevScore):
    top_k: int


class TopKChoice(Record):
    candidates: list[TopKCandidate]
    chosen: int
    on: str
    metric: str
    reused_from_cache: bool = False


class RagGiven(Given):
    model_config = Record.model_config
    kind: Literal["rag"] = "rag"
    corpus: CorpusInfo
    index: IndexInfo
    exemplar_ids: list[str] = Field(default_factory=list)
    retriever: RetrieverSettings
    top_k_selection: TopKChoice | None = None  # None: one top_k was given, nothing chosen


# ---- fine-tuning -------------------------------------------------------------------------------------------------


class TokenLengths(Record):
    min: int
    p50: float
    p95: float
    max: int


class Preflight(Record):
    """What the data check found before any training (in the spirit of OpenAI's data-preparation cookbook)."""

    n_examples: int
    n_duplicates: int
    token_lengths: TokenLengths  # of prompt + answer
    max_length: int
    n_truncated: int
    total_tokens: int = 0  # prompt + answer tokens of all examples: what one epoch trains on
    warnings: list[str] = Field(default_factory=list)


class TunerStats(Record):
    """What a training run measured; one shape for every tuner (local, unsloth, autotrain, openai, azure)."""

    device: str  # cpu, cuda, mps, or api (a provider trained it)
    wall_s: float
    wall_s_basis: str | None = None  # what the wall time covers (training only, or model loading too)
    device_hours: float | None = None  # busy device time billed at $/hour (several GPUs count several hours)
    steps: int | None = None
    epochs: float | None = None
    trained_tokens: int | None = None
    train_tokens_per_s: float | None = None
    peak_memory_mb: float | None = None
    peak_memory_kind: str | None = None
    resumed: bool = False
    processes: int | None = None
    engine: str | None = None  # e.g. "unsloth 2025.3", "autotrain-advanced"
    precision: str | None = None  # fp32, bf16 (mixed precision), as the tuner chose it
    precision_why: str | None = None
    # how the local tuner fit a step in memory, and the speed-ups it used (None: not that tuner, or not recorded)
    micro_batch: int | None = None
    gradient_checkpointing: bool | None = None
    memory_why: str | None = None
    padding_free: bool | None = None
    padding_free_why: str | None = None
    fused_kernels: bool | None = None
    gpu: str | None = None
    provider: str | None = None  # a cloud tuner's provider and job
    job_id: str | None = None
    status: str | None = None
    fine_tuned_model: str | None = None
    cost_usd: float | None = None  # a provider's bill for the training (trained tokens x price)
    cost_basis: str | None = None


class EpochScore(DevScore):
    """One checkpoint scored on dev (a line of training/<strategy>/epochs.jsonl)."""

    index: int
    epoch: float
    step: int


class ChosenCheckpoint(Record):
    epoch: float
    step: int
    dev_score: float | None
    on: str  # "dev", or "last epoch (no dev split)"


class SearchCandidate(Record):
    """One training of a fine-tune's search (tuner config lists, `epochs: auto`), scored on dev epoch by epoch."""

    values: dict[str, Any]  # the searched keys' values for this candidate (empty: no grid, only epochs: auto)
    epochs_trained: int
    dev_scores: list[float | None]  # per checkpoint, in training order
    best_dev_score: float | None
    stopped_early: bool = False  # epochs: auto stopped it before max_epochs
    training_s: float
    training_usd: float | None
    chosen: bool = False
    reused_from_cache: bool = False


class EarlyStopping(Record):
    """`epochs: auto`: training stopped once dev had not improved for `patience` epochs (at most `max_epochs`)."""

    patience: int
    max_epochs: int


class MergeInfo(Record):
    used: bool
    path: str | None = None
    parity_cases: int | None = None
    identical: int | None = None
    why: str | None = None


class ForgettingCheck(Record):
    task: str
    n: int
    before: float
    after: float
    delta: float
    stderr: dict[str, float]


class FineTuneGiven(Given):
    model_config = Record.model_config
    kind: Literal["finetune"] = "finetune"
    tuner: str
    hyperparameters: dict[str, Any]  # the tuner's config with its defaults filled in (its keys depend on the tuner)
    preflight: Preflight
    epochs_trained: int
    dev_scores: list[float | None]  # per checkpoint, in training order
    chosen: ChosenCheckpoint
    dev_still_rising_at_last_epoch: bool | None  # None: unknown (one epoch, or no dev split)
    training: TunerStats
    reused_from_cache: bool
    workdir: str
    merged: MergeInfo | None = None
    forgetting: ForgettingCheck | None = None
    # the search, when the tuner config listed candidates or asked for epochs: auto (its cost is in setup_costs)
    search: list[SearchCandidate] = Field(default_factory=list)
    early_stopping: EarlyStopping | None = None
    # searched keys whose best value sits on the grid's edge with the dev trend pointing outside it
    grid_edge: list[str] = Field(default_factory=list)


BUILT_IN = {"zero_shot": ZeroShotGiven, "few_shot": FewShotGiven, "rag": RagGiven, "finetune": FineTuneGiven}
BuiltInGiven = ZeroShotGiven | FewShotGiven | RagGiven | FineTuneGiven


class PluginGiven(Given):
    """What a plugin strategy (any kind but the built-in ones) was given: its own keys, kept as they are."""

    kind: str = Field(json_schema_extra={"not": {"enum": list(BUILT_IN)}})


def _given_kind(value: Any) -> str:
    kind = value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)
    return kind if kind in BUILT_IN else "other"


AnyGiven = Annotated[
    Annotated[ZeroShotGiven, Tag("zero_shot")]
    | Annotated[FewShotGiven, Tag("few_shot")]
    | Annotated[RagGiven, Tag("rag")]
    | Annotated[FineTuneGiven, Tag("finetune")]
    | Annotated[PluginGiven, Tag("other")],
    Discriminator(_given_kind),
]


# ---- what preparing and judging used -----------------------------------------------------------------------------


class DevAnswers(Record):
    """Answers on dev made to choose a setting (epochs, top_k): part of the strategy's setup cost."""

    calls: int = 0  # sent to the model by this run (the rest came from the response cache)
    answers: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    compute_s: float = 0.0
    cost_usd: float = 0.0  # what those answers cost when they were made, cached or not
    cost_basis: str = ""


class JudgeCounts(Record):
    requests: int = 0  # asked for by the metrics (what a judge without cache or dedup would pay)
    calls: int = 0  # sent to the judge model
    cache_hits: int = 0
    parse_failures: int = 0
    failed_verdicts: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    compute_s: float = 0.0

    def add(self, other: JudgeCounts) -> None:
        for name in type(self).model_fields:
            setattr(self, name, getattr(self, name) + getattr(other, name))


class JudgeUsage(Record):
    """One model-judged scorer's work on a strategy's answers: evaluation cost, not a production cost."""

    judge: JudgeCounts
    judge_backend: str
    cost_usd: float | None
    cost_basis: str
    paid: bool
    skipped: str | None = None  # why some answers were not judged (budget_usd reached)


class StrategySetup(Record):
    """A strategy's preparation as run: its backend, what it was given, how long it took, what dev and judges used."""

    backend: str
    serving: dict[str, Any] | None = None  # identity of the backend that answered (e.g. a fine-tuned adapter's hash)
    given: AnyGiven | None = None
    prepare_s: float | None = None
    load_s: float | None = None  # loading the serving model before its first timed answer
    skipped: str | None = None  # why prepare() did not finish (budget_usd reached)
    dev: DevAnswers | None = None
    evaluation: dict[str, JudgeUsage] = Field(default_factory=dict)
