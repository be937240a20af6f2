"""`harness estimate`: tokens and dollars per strategy before any call, and the budget check that runs before
`harness compare` spends anything.

Prompts are measured in characters and turned into tokens at about 4 characters a token (real tokenizers differ by
10-30%; the run measures exact counts). API models are priced by tokens. Local models are priced by their busy
time: with `calibrate`, this machine's speed for each local model is measured once (harness.costs.calibrate, cached)
and the estimate predicts the wall time and dollars of answering, choosing settings on dev, training and indexing;
without it their dollars are shown as "after the run". Each estimate gives an expected figure (answers as long as the targets) and an upper bound
(every answer `max_new_tokens` long); the budget check uses the expected figure, and the run itself never
lets the upper bound of the calls in flight pass the budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, computed_field

from harness.builtins import SCORERS, STRATEGIES
from harness.costs.local_time import LocalTime
from harness.costs.money import usd
from harness.costs.pricing import Pricing, pricing_for, pricing_of_spec
from harness.costs.tokens import CHARS_PER_TOKEN, MESSAGE_OVERHEAD_TOKENS, chars_to_tokens
from harness.records.base import Record
from harness.strategy import StrategyPlan
from harness.suite.data import Case
from harness.suite.load import LoadedSuite
from harness.suite.prompts import build_messages
from harness.suite.schema import DecisionSpec, StrategySpec, TaskSpec, curve_of, seed_of
from harness.verdict.stats import min_detectable_diff

# Judge calls per answer for each model-judged metric (ragas 0.4 prompts; k = passages given), and their size.
JUDGE_CALLS = {
    "faithfulness": lambda k: 2,
    "answer_relevancy": lambda k: 1,
    "context_precision": lambda k: k,
    "context_recall": lambda k: 1,
    "pairwise": lambda k: 2,  # both orders
}
JUDGE_PROMPT_TOKENS = 600  # a ragas prompt's instructions and examples, before the case's own text
JUDGE_OUTPUT_TOKENS = 200
# Planning assumption for the minimum detectable difference before any run: the per-case difference between two
# strategies has this standard deviation (0/1 scores: about a quarter of the cases disagree).
ASSUMED_SD = {True: 0.5, False: 0.3}


class StrategyEstimate(Record):
    strategy: str
    backend: str
    pricing: str  # how its calls are priced
    paid: bool
    requests: int  # test answers still to make
    input_tokens: float  # per request
    output_tokens: float  # per request, expected
    output_tokens_max: int
    inference_usd: float | None
    inference_usd_max: float | None
    dev_requests: int = 0
    dev_usd: float | None = None
    training_tokens: float = 0.0
    training_usd: float | None = None
    embedding_tokens: float = 0.0
    embedding_usd: float | None = None
    data_examples: int = 0  # labelled examples it uses (economics.data prices them; not paid to a provider)
    data_usd: float | None = None  # their preparation, and corpus curation
    judge_calls: int = 0
    judge_usd: float | None = None
    judge_paid: bool = False
    # Local work predicted from this machine's calibration, by phase (test, dev, training, indexing), in seconds
    predicted_s: dict[str, float] = Field(default_factory=dict)
    predicted_usd: float | None = None  # that time at the device's $/hour
    notes: list[str] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def predicted_total_s(self) -> float | None:
        return round(sum(self.predicted_s.values()), 1) if self.predicted_s else None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def paid_usd(self) -> float:
        """Expected dollars billed by providers (token-priced calls) for this strategy."""
        total = 0.0
        if self.paid:
            total += (self.inference_usd or 0) + (self.dev_usd or 0) + (self.training_usd or 0)
        if self.judge_paid:
            total += self.judge_usd or 0
        if self.embedding_usd:
            total += self.embedding_usd
        return total


class FinetuneEstimate(Record):
    """A fine-tune against another strategy before any run: what a request saves and when the setup pays back."""

    strategy: str
    against: str
    input_tokens_saved: float  # per request (the fine-tune's prompt may leave out instructions and exemplars)
    saving_per_request_usd: float | None  # None: a price is known only after the run (local models)
    extra_setup_usd: float | None
    payback_requests: int | None  # None: it never pays back (no saving) or the dollars are not known yet
    break_even_monthly_volume: int | None  # with setup spread over the decision's horizon


class Estimate(Record):
    suite: str
    test_cases: int
    repeats: int
    strategies: list[StrategyEstimate]
    finetune: list[FinetuneEstimate] = Field(default_factory=list)
    min_detectable_diff: float | None
    mdd_assumption: str
    budget_usd: float | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def paid_usd(self) -> float:
        return sum(s.paid_usd for s in self.strategies)


def _pricing(loaded: LoadedSuite, backend_name: str) -> Pricing:
    return pricing_of_spec(loaded.suite, next(b for b in loaded.suite.backends if b.name == backend_name))


def _usd(pricing: Pricing, input_tokens: float, output_tokens: float, *, training: bool = False) -> float | None:
    if pricing.kind != "tokens":
        return None
    if training:
        assert pricing.price is not None  # a tokens pricing always has its price
        price = pricing.price.price.training_per_1m_usd
        return None if price is None else input_tokens * price / 1e6
    return pricing.call_usd(round(input_tokens), round(output_tokens))


def estimate(
    loaded: LoadedSuite,
    *,
    limit: int | None = None,
    strategies: list[str] | None = None,
    done: set[tuple[str, str, int]] | None = None,
    prepared: frozenset[str] | set[str] = frozenset(),
    calibrate: bool | Literal["cached"] = False,
) -> Estimate:
    """The plan's tokens and dollars. `done`: answers already in the run folder; `prepared`: strategies whose
    setup (dev answers, training, index) an earlier run of the folder already paid for; `calibrate`: predict
    local models' time and dollars from this machine's measured speed."""
    suite = loaded.suite
    test = loaded.dataset.test[:limit] if limit else loaded.dataset.test
    sizes: dict[str, _PromptSizes] = {}  # by the prompt a strategy sends (a strategy may have its own)

    def prompts(spec: StrategySpec) -> _PromptSizes:
        task = suite.task_for(spec)
        key = task.model_dump_json()
        if key not in sizes:
            sizes[key] = _PromptSizes.of(task, test)
        return sizes[key]

    local = LocalTime(loaded, measure=calibrate is True) if calibrate else None
    out = [
        _strategy_estimate(loaded, spec, prompts(spec), test, done or set(), spec.name in prepared, local)
        for spec in suite.run_strategies()  # each seed is prepared and answered on its own
        if not strategies or spec.name in strategies
    ]
    if local is not None:
        local.close()
    primary = next(s for s in suite.scorers if s.label == suite.primary_metric)
    cls = SCORERS.get(primary.kind)  # `binary` may depend on the config (json_match's mode, a rubric's scale)
    binary = bool(cls(primary, loaded.config("scorers", primary.label), suite.task).binary)
    confidence = suite.decision.confidence if suite.decision else 0.95
    return Estimate(
        suite=suite.name,
        test_cases=len(test),
        repeats=suite.repeats,
        strategies=out,
        finetune=_finetune_against_others(loaded, out),
        min_detectable_diff=min_detectable_diff(len(test), ASSUMED_SD[binary], alpha=1 - confidence),
        mdd_assumption=f"paired test, {confidence:.0%} confidence, 80% power, per-case differences with sd "
        f"{ASSUMED_SD[binary]} ({'0/1 scores, about a quarter of cases disagreeing' if binary else 'continuous scores'})",
        budget_usd=suite.budget_usd,
    )


def _finetune_against_others(loaded: LoadedSuite, found: list[StrategyEstimate]) -> list[FinetuneEstimate]:
    """Each fine-tune (its first seed) against each other strategy: tokens and dollars a request saves, and after
    how many requests, or from which monthly volume, its extra setup pays back."""
    kinds = {s.name: s.kind for s in loaded.suite.strategies}
    horizon = (loaded.suite.decision or DecisionSpec()).horizon_months
    mine = [s for s in found if kinds.get(s.strategy) == "finetune"]
    others = [s for s in found if s.strategy in kinds and kinds[s.strategy] != "finetune"]
    out = []
    for f in mine:
        for o in others:
            per_f, per_o = _per_request(f), _per_request(o)
            saving = None if per_f is None or per_o is None else per_o - per_f
            setup_f, setup_o = _setup(f), _setup(o)
            extra = None if setup_f is None or setup_o is None else setup_f - setup_o
            payback = volume = None
            if saving is not None and extra is not None and saving > 0:
                payback = math.ceil(max(extra, 0.0) / saving)
                volume = math.ceil(max(extra, 0.0) / horizon / saving)
            out.append(
                FinetuneEstimate(
                    strategy=f.strategy,
                    against=o.strategy,
                    input_tokens_saved=o.input_tokens - f.input_tokens,
                    saving_per_request_usd=saving,
                    extra_setup_usd=extra,
                    payback_requests=payback,
                    break_even_monthly_volume=volume,
                )
            )
    return out


def _per_request(s: StrategyEstimate) -> float | None:
    return None if s.inference_usd is None or not s.requests else s.inference_usd / s.requests


def _setup(s: StrategyEstimate) -> float | None:
    """Its one-off dollars: training, dev answers, indexing (None when any of them is priced only after the run)."""
    parts = [
        (s.training_tokens, s.training_usd),
        (s.dev_requests, s.dev_usd),
        (s.embedding_tokens, s.embedding_usd),
    ]
    if any(amount and usd is None for amount, usd in parts):
        return None
    return sum(usd or 0.0 for _, usd in parts) + (s.data_usd or 0.0)


@dataclass
class _PromptSizes:
    """The bare prompt (instructions and case) per test case, on average, and the answers' expected length."""

    chars: float
    messages: float
    target_tokens: float
    instructions_chars: float = 0.0  # the system prompt every request shares

    @classmethod
    def of(cls, task: TaskSpec, test: list[Case]) -> _PromptSizes:
        n = max(len(test), 1)
        prompts = [build_messages(task, c) for c in test]
        return cls(
            chars=sum(sum(len(m["content"]) for m in p) for p in prompts) / n,
            messages=sum(len(p) for p in prompts) / n,
            target_tokens=sum(chars_to_tokens(len(c.target)) for c in test) / n,
            instructions_chars=sum(sum(len(m["content"]) for m in p if m["role"] == "system") for p in prompts) / n,
        )


def _strategy_estimate(
    loaded: LoadedSuite,
    spec: StrategySpec,
    prompts: _PromptSizes,
    test: list[Case],
    done: set[tuple[str, str, int]],
    prepared: bool,
    local: LocalTime | None = None,
) -> StrategyEstimate:
    suite = loaded.suite.for_strategy(spec)
    backend_spec = suite.backend_for(spec)
    pricing = training_pricing = _pricing(loaded, backend_spec.name)
    plan = STRATEGIES.get(spec.kind).plan(loaded.config("strategies", spec.name), loaded.dataset, suite)
    fraction = curve_of(spec.name)
    if fraction is not None:  # a learning-curve point trains on that share of the train split
        plan = plan.model_copy(update={"training_chars": plan.training_chars * fraction})
        plan.notes.append(f"a learning-curve point: trained on {fraction:.0%} of the train split")
    if plan.training_chars and pricing.paid:  # a provider's fine-tune answers at fine-tuned prices
        pricing = pricing_for(suite, model=f"ft:{backend_spec.model}:estimate", device="api", api=True)
        if pricing.price is not None:
            pricing.basis = f"tokens x fine-tuned {backend_spec.model} prices ({pricing.price.origin})"
    todo = sum(1 for c in test for r in range(suite.repeats) if (spec.name, c.id, r) not in done)
    per_in = chars_to_tokens(prompts.chars + plan.exemplars_chars + plan.context_chars) + MESSAGE_OVERHEAD_TOKENS * (
        prompts.messages + 2 * plan.exemplars
    )
    max_new = backend_spec.generation.max_new_tokens
    per_out = min(max(prompts.target_tokens + 1, 1), max_new)
    inference = _usd(pricing, per_in, per_out)
    est = StrategyEstimate(
        strategy=spec.name,
        backend=backend_spec.name,
        pricing=pricing.basis,
        paid=pricing.paid,
        requests=todo,
        input_tokens=per_in,
        output_tokens=per_out,
        output_tokens_max=max_new,
        inference_usd=None if inference is None else inference * todo,
        inference_usd_max=None if inference is None else (_usd(pricing, per_in, max_new) or 0) * todo,
    )
    if prepared:  # setup already done and paid: a resume repeats none of it
        plan = plan.after_setup()
        est.notes.append("set up by an earlier run of this folder: no dev, training or indexing cost again")
    est.notes += plan.notes
    if plan.dev_requests:
        est.dev_requests = plan.dev_requests
        est.dev_usd = None if inference is None else inference * est.dev_requests
    if plan.training_chars:
        est.training_tokens = chars_to_tokens(plan.training_chars)
        est.training_usd = _usd(training_pricing, est.training_tokens, 0, training=True)
        if pricing.kind != "tokens":
            est.notes.append(
                f"training on a local device: its cost is the measured training time x $/hour "
                f"({plan.epochs} epochs of about {est.training_tokens / plan.epochs:,.0f} tokens)"
            )
    if plan.embedding_chars:
        est.embedding_tokens = chars_to_tokens(plan.embedding_chars)
        price = plan.embedder_usd_per_1m_tokens
        est.embedding_usd = None if price is None else est.embedding_tokens * price / 1e6
    if pricing.kind == "device_hours":
        est.notes.append("local model: dollars are its measured busy time x $/hour, known after the run")
    elif pricing.kind == "unknown":
        est.notes.append(pricing.basis)
    _data(loaded, spec, est)
    _judges(loaded, est, per_in, todo, plan)
    if local is not None and pricing.kind == "device_hours":
        local.predict(spec, est, plan, prompts, pricing)
    return est


def _data(loaded: LoadedSuite, spec: StrategySpec, est: StrategyEstimate) -> None:
    """The labelled examples the strategy uses, priced by economics.data (a later seed draws from the same ones)."""
    data = loaded.suite.economics.data if loaded.suite.economics else None
    cls = STRATEGIES.get(spec.kind)
    used = cls.data_used(loaded.config("strategies", spec.name), loaded.dataset, loaded.suite.for_strategy(spec))
    if used is None or spec.name != seed_of(spec.name)[0]:
        return
    est.data_examples = used.examples
    if data is None:
        return
    per = data.per_example_usd
    est.data_usd = (used.examples * per if per is not None else 0.0) + (
        data.corpus_curation_usd if used.corpus else 0.0
    )


def _judges(loaded: LoadedSuite, est: StrategyEstimate, per_in: float, todo: int, plan: StrategyPlan) -> None:
    k = 1
    cfg = loaded.config("strategies", est.strategy).model_dump()
    top_k = cfg.get("top_k")
    if top_k:
        k = max(top_k) if isinstance(top_k, list) else top_k
    for spec in loaded.suite.scorers:
        cls = SCORERS.get(spec.kind)
        if not getattr(cls, "deferred", False):
            continue
        if cls.conditional and not plan.context_chars:
            continue  # context metrics judge only strategies that retrieve
        config = loaded.config("scorers", spec.label)
        judge = getattr(config, "judge", None)
        if judge is None or getattr(config, "against", None) == est.strategy:
            continue  # the pairwise reference ties with itself without a judge call
        pricing = _pricing(loaded, judge)
        calls = JUDGE_CALLS.get(spec.kind, lambda k: 1)(k) * todo
        est.judge_calls += calls
        one = _usd(pricing, JUDGE_PROMPT_TOKENS + per_in, JUDGE_OUTPUT_TOKENS)
        est.judge_paid = est.judge_paid or pricing.paid
        if one is not None:
            est.judge_usd = (est.judge_usd or 0) + one * calls


def render(e: Estimate) -> list[str]:
    """The estimate as `harness estimate` prints it."""
    after = "after the run"
    lines = [
        f"{e.suite}: estimate for {e.test_cases} test cases x {e.repeats} repeat(s), before any call "
        f"(tokens at ~{CHARS_PER_TOKEN} characters each)"
    ]
    for s in e.strategies:
        after = "priced by its time, below" if s.predicted_s else "after the run"
        lines.append(f"  {s.strategy} ({s.backend}; {s.pricing})")
        lines.append(
            f"    inference: {s.requests} requests x {s.input_tokens:,.0f} in + {s.output_tokens:,.0f} out tokens "
            f"(at most {s.output_tokens_max}): {usd(s.inference_usd, unknown=after)}"
            + (f" (at most {usd(s.inference_usd_max, unknown=after)})" if s.inference_usd_max is not None else "")
        )
        if s.dev_requests:
            lines.append(
                f"    dev answers (choosing settings): {s.dev_requests} requests: {usd(s.dev_usd, unknown=after)}"
            )
        if s.training_tokens:
            lines.append(
                f"    training: {s.training_tokens:,.0f} tokens (examples x epochs): {usd(s.training_usd, unknown=after)}"
            )
        if s.embedding_tokens:
            lines.append(
                f"    indexing: {s.embedding_tokens:,.0f} tokens embedded: {usd(s.embedding_usd, unknown=after)}"
                + ("" if s.embedding_usd is not None else " (local embedder: busy time)")
            )
        if s.data_usd:
            lines.append(
                f"    data preparation: {s.data_examples:,} labelled examples (economics.data, not paid to a "
                f"provider): {usd(s.data_usd)}"
            )
        if s.judge_calls:
            lines.append(f"    judging (evaluation only): {s.judge_calls} calls: {usd(s.judge_usd, unknown=after)}")
        if s.predicted_s:
            phases = ", ".join(f"{k} {_duration(v)}" for k, v in s.predicted_s.items())
            lines.append(
                f"    local time on this machine (predicted): {phases}; in all {_duration(s.predicted_total_s or 0)}"
                + (f": {usd(s.predicted_usd)} at the device's $/hour" if s.predicted_usd is not None else "")
            )
        lines += [f"    note: {n}" for n in s.notes]
    if e.finetune:
        lines.append("fine-tuning against each alternative, per request (test-set means):")
    for f in e.finetune:
        saving = f.saving_per_request_usd
        line = f"  {f.strategy} vs {f.against}: {f.input_tokens_saved:+,.0f} input tokens saved a request"
        if saving is None:
            line += "; dollars after the run (a local model costs its busy time)"
        elif saving <= 0:
            line += f", {usd(-saving)} dearer a request: never pays back on cost"
        else:
            line += f", {usd(saving)} saved a request"
            if f.payback_requests is not None:
                line += (
                    f"; pays back its {usd(f.extra_setup_usd)} extra setup after {f.payback_requests:,} requests "
                    f"(from {f.break_even_monthly_volume:,} requests a month over the decision's horizon)"
                )
        lines.append(line)
    lines.append(
        f"paid to providers (expected): {usd(e.paid_usd)}"
        + (f" of budget_usd ${e.budget_usd:g}" if e.budget_usd is not None else "")
    )
    if e.min_detectable_diff is not None:
        lines.append(
            f"minimum detectable difference with {e.test_cases} test cases: about {e.min_detectable_diff:.3f} "
            f"({e.mdd_assumption})"
        )
    return lines


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def check_budget(
    loaded: LoadedSuite, est: Estimate, already_paid: float, already_busy_s: float = 0.0, already_local_usd: float = 0.0
) -> None:
    """Refuse to start when the expected spend (paid calls, plus local work predicted by this machine's calibration
    at the device's $/hour) passes budget_usd, or the predicted local time passes budget_hours (exit 2, before any
    call)."""
    from harness.errors import ConfigError

    hours = loaded.suite.budget_hours
    predicted = sum(s.predicted_total_s or 0.0 for s in est.strategies)
    if hours is not None and (predicted + already_busy_s) / 3600 > hours:
        longest = max(est.strategies, key=lambda s: s.predicted_total_s or 0.0)
        raise ConfigError(
            f"{loaded.where(('budget_hours',))}: the local work is predicted at "
            f"{(predicted + already_busy_s) / 3600:.2f} h on this machine (most for '{longest.strategy}': "
            f"{_duration(longest.predicted_total_s or 0.0)}), above budget_hours {hours:g}. Nothing was run. "
            f"Fix: raise budget_hours, run fewer cases (--limit) or strategies (--strategies), or use a faster "
            f"device; `harness estimate {loaded.path}` shows the figures."
        )
    budget = loaded.suite.budget_usd
    if budget is None:
        return
    local = sum(s.predicted_usd or 0.0 for s in est.strategies) + already_local_usd
    total = est.paid_usd + already_paid + local
    if total > budget and est.strategies and local > est.paid_usd + already_paid:  # local compute is most of it
        biggest = max(est.strategies, key=lambda s: s.predicted_usd or 0.0)
        raise ConfigError(
            f"{loaded.where(('budget_usd',))}: the estimate is {usd(total)}, {usd(local)} of it local compute at the "
            f"device's $/hour (most for '{biggest.strategy}': {usd(biggest.predicted_usd or 0.0)}, "
            f"{_duration(biggest.predicted_total_s or 0.0)} on this machine), above budget_usd ${budget:g}. Nothing "
            "was run. Fix: raise budget_usd, run fewer cases (--limit) or strategies (--strategies), or lower "
            f"economics.usd_per_hour if this machine costs less; `harness estimate {loaded.path}` shows the figures."
        )
    if total > budget and est.strategies:
        biggest = max(est.strategies, key=lambda s: s.paid_usd)
        # what scales with the test cases (answers and their judging) against what does not (setup)
        per_case = sum(
            ((s.inference_usd or 0) if s.paid else 0) + ((s.judge_usd or 0) if s.judge_paid else 0)
            for s in est.strategies
        ) / max(est.test_cases, 1)
        fixed = est.paid_usd - per_case * est.test_cases
        fits = int((budget - already_paid - local - fixed) / per_case) if per_case > 0 else 0
        fewer = f"run fewer cases (about --limit {fits} fits), " if fits >= 1 else ""
        paid = f"{usd(already_paid)} already paid, " if already_paid else ""
        raise ConfigError(
            f"{loaded.where(('budget_usd',))}: the estimate is {usd(total)} ({paid}most for '{biggest.strategy}': "
            f"{usd(biggest.paid_usd)}), above budget_usd ${budget:g}. Nothing was spent. "
            f"Fix: raise budget_usd, {fewer}or run fewer strategies (--strategies); "
            f"`harness estimate {loaded.path}` shows the figures."
        )
