"""The one gateway for every model call a run makes (test answers, answers on dev, judge calls): the response cache
first, then budget admission (each call counted at its most), the call, and the ledger of what was paid.

Strategies and judges get it as an object with a small interface: `answer` (answers on dev, charged to the strategy
being prepared as setup) and `ask` (cached answers with whether each came from the cache). The execute phase sends
the test answers through `lookup` and `send`, which admit as many calls as the budget allows and hold back the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from harness.backends.base import Backend, GenRequest, GenResult
from harness.costs.budget import Spend, SpendLedger, affordable, upper_usd
from harness.costs.pricing import Pricing, pricing_of
from harness.errors import BudgetReached
from harness.records.run import Counts
from harness.records.setup import DevAnswers
from harness.run.cache import NoCache, ResponseCache, cache_key
from harness.run.plan import PlannedCall
from harness.run.progress import Progress
from harness.suite.schema import Suite

log = logging.getLogger(__name__)

OnAnswer = Callable[[PlannedCall, GenResult, bool], None]  # (call, result, answered without a model call)


class Gateway:
    def __init__(self, suite: Suite, cache: ResponseCache | NoCache, spend: Spend, ledger: SpendLedger, counts: Counts):
        self.suite = suite
        self.cache = cache
        self.spend = spend
        self.ledger = ledger
        self.counts = counts
        self.strategy = ""  # the strategy being prepared or answered: what its calls are charged to
        self.dev: dict[str, DevAnswers] = {}  # answers on dev per strategy (its setup cost of choosing settings)

    @contextmanager
    def charging(self, strategy: str) -> Iterator[None]:
        """Charge calls made inside the block to `strategy`."""
        before, self.strategy = self.strategy, strategy
        try:
            yield
        finally:
            self.strategy = before

    def pricing(self, backend: Backend) -> Pricing:
        return pricing_of(self.suite, backend.identity())

    def charge(self, what: str, usd: float, *, strategy: str | None = None) -> None:
        """A provider charge that is not an answer line (dev answers, judge calls, training, indexing)."""
        self.spend.paid_usd += usd
        self.ledger.add(self.strategy if strategy is None else strategy, what, usd)

    def paid(self, usd: float) -> None:
        """An answer's paid dollars (kept in its cases.jsonl line, so not in the ledger)."""
        self.spend.paid_usd += usd

    def hold_back(self, n: int, why: str | None = None) -> None:
        """`n` answers not requested because a budget is reached (budget_usd unless `why` says otherwise);
        recorded, and made by a rerun with a larger budget."""
        self.spend.hold_back(self.strategy, n)
        self.counts.budget_skipped += n
        why = why or f"budget_usd ${self.spend.budget_usd:g} reached (${self.spend.paid_usd:.4f} paid)"
        log.warning("%s: %s: %d answers not requested", self.strategy, why, n)

    # ---- calls outside the test plan: dev answers, judges ---------------------------------------------------------

    progress: Progress | None = None  # set by the run: long answering on dev shows its progress

    def ask(
        self, backend: Backend, requests: list[GenRequest], *, purpose: str = "judge", show: bool = False
    ) -> list[tuple[GenResult, bool]]:
        """Answers through the response cache, each with whether it came from the cache; repeats sent once. Either
        every call fits under budget_usd or none is made (BudgetReached)."""
        keys = [cache_key(backend.identity(), r, 0) for r in requests]
        found = self.cache.get_many(keys)
        first = {k: i for i, k in reversed(list(enumerate(keys)))}
        todo = [i for k, i in first.items() if k not in found]
        fresh = {keys[i] for i in todo}
        if todo:
            pricing = self.pricing(backend)
            if pricing.paid and self.spend.budget_usd is not None:
                upper = sum(upper_usd(backend, pricing, requests[i]) for i in todo)
                if upper > self.spend.room():
                    raise BudgetReached(
                        f"{len(todo)} calls to {backend.spec.name} could cost up to ${upper:.4f}; "
                        f"${max(self.spend.room(), 0):.4f} of budget_usd ${self.spend.budget_usd:g} "
                        "is left"
                    )
            claimed = self.cache.claim([keys[i] for i in todo])
            found.update(claimed.answered)
            shown = self.progress if show and self.progress is not None else None
            if shown is not None:
                shown.start(f"{self.strategy or backend.spec.name}: {purpose}", len(todo) - len(claimed.answered))

            def make(mine: list[str]) -> None:
                if not mine:
                    return
                backend.load()
                indices = [first[k] for k in mine]
                try:
                    for index, result in backend.generate([requests[i] for i in indices]):
                        if shown is not None:
                            shown.advance()
                        self.cache.put(keys[indices[index]], result)
                        found[keys[indices[index]]] = result
                        if pricing.paid:
                            self.charge(
                                purpose,
                                pricing.call_usd(result.input_tokens, result.output_tokens, result.cached_input_tokens)
                                or 0.0,
                            )
                finally:
                    self.cache.flush()  # dev and judge answers are nowhere else: a later kill must not lose them

            try:
                make(claimed.mine)
                if claimed.theirs:  # the same calls are in flight in another process: their answers, not ours
                    waited = self.cache.wait_for(
                        claimed.theirs, lambda key, result: shown.advance() if shown is not None else None
                    )
                    found.update(waited.answered)
                    fresh -= set(waited.answered)
                    make(waited.mine)
            finally:
                if shown is not None:
                    shown.finish()
            fresh -= set(claimed.answered)
        return [(found[k], k not in fresh or first[k] != i) for i, k in enumerate(keys)]

    def answer(self, backend: Backend, requests: list[GenRequest], what: str = "answers on dev") -> list[GenResult]:
        """Answers a strategy asks for while it is prepared (scoring checkpoints or settings on dev); `what` names
        them in progress lines."""
        answers = self.ask(backend, requests, purpose=what, show=True)
        fresh = [result for result, hit in answers if not hit]
        self.counts.dev_calls += len(fresh)
        if self.strategy and answers:
            # The setup cost of choosing on dev is what those answers cost when made, cached or not, so a warm
            # cache does not make a strategy look cheaper to set up (the budget counts only fresh calls).
            pricing = self.pricing(backend)
            dev = self.dev.setdefault(self.strategy, DevAnswers())
            dev.calls += len(fresh)
            dev.answers += len(answers)
            for r, _ in answers:
                dev.input_tokens += r.input_tokens
                dev.output_tokens += r.output_tokens
                dev.compute_s += r.compute_s
                dev.cost_usd += (
                    pricing.call_usd(r.input_tokens, r.output_tokens, r.cached_input_tokens, r.compute_s) or 0.0
                )
            dev.cost_basis = pricing.basis
        return [result for result, _ in answers]

    # ---- the test answers -----------------------------------------------------------------------------------------

    def lookup(self, planned: list[PlannedCall]) -> tuple[list[tuple[PlannedCall, GenResult]], list[list[PlannedCall]]]:
        """Cached answers, and the calls still to make grouped by cache key (greedy repeats and identical prompts
        are sent once, the others reuse the answer)."""
        hits = self.cache.get_many([p.key for p in planned])
        found: list[tuple[PlannedCall, GenResult]] = []
        misses: dict[str, list[PlannedCall]] = {}
        for call in planned:
            if call.key in hits:
                found.append((call, hits[call.key]))
            else:
                misses.setdefault(call.key, []).append(call)
        return found, list(misses.values())

    def send(self, backend: Backend, groups: list[list[PlannedCall]], on_answer: OnAnswer) -> int:
        """Make the calls, as many as fit under budget_usd (each reserved at its most, for every attempt the
        provider might bill); returns how many answers were held back at the cap. A call another process has in
        flight (a run sharing the cache) is waited for, not made again."""
        by_key = {g[0].key: g for g in groups}
        claimed = self.cache.claim(list(by_key))

        def deliver(key: str, result: GenResult) -> None:
            for call in by_key[key]:
                self.counts.cache_hits += 1
                on_answer(call, result, True)

        for key, result in claimed.answered.items():
            deliver(key, result)
        held = self._send(backend, [by_key[k] for k in claimed.mine], on_answer)
        if claimed.theirs:
            waited = self.cache.wait_for(claimed.theirs, deliver)
            held += self._send(backend, [by_key[k] for k in waited.mine], on_answer)
        return held

    def _send(self, backend: Backend, groups: list[list[PlannedCall]], on_answer: OnAnswer) -> int:
        pricing = self.pricing(backend)
        while groups:
            attempts = backend.billed_attempts_at_most()

            def most(group: list[PlannedCall], attempts: int = attempts) -> float:
                return attempts * upper_usd(backend, pricing, group[0].request)

            batch, groups = affordable(groups, self.spend, most, paid=pricing.paid)
            if not batch:  # budget_usd reached: these calls are not made; a rerun with a larger budget makes them
                queries = sum(
                    c.meta.retrieval.query_embedding_usd or 0.0
                    for g in groups
                    for c in g
                    if c.meta.retrieval is not None
                )
                if queries:  # their queries were embedded (and billed) while their prompts were built
                    self.charge("query embeddings of answers held back by budget_usd", queries)
                held = sum(len(g) for g in groups)
                self.cache.release([g[0].key for g in groups])
                self.hold_back(held)
                return held
            local = pricing.kind == "device_hours"
            limited = local and (self.spend.budget_hours is not None or self.spend.budget_usd is not None)
            if limited and self.spend.local_exhausted():
                return self._out_of_local_budget(batch + groups)
            answered: set[int] = set()
            try:
                for index, result in backend.generate([g[0].request for g in batch]):
                    answered.add(index)
                    self.counts.model_calls += 1
                    self.counts.errors += result.error is not None
                    self.cache.put(batch[index][0].key, result)
                    if local:
                        self.spend.busy_s += result.compute_s
                        self.spend.local_usd += result.compute_s / 3600 * (pricing.usd_per_hour or 0.0)
                    if pricing.paid and result.unconfirmed_attempts:  # may have been billed: counted at their most
                        self.charge(
                            f"{result.unconfirmed_attempts} attempt(s) sent but never answered (timed out, "
                            "dropped or garbled); the provider may have billed them",
                            result.unconfirmed_attempts * upper_usd(backend, pricing, batch[index][0].request),
                        )
                    for n, call in enumerate(batch[index]):
                        reused = n > 0 and result.error is None
                        self.counts.cache_hits += reused
                        on_answer(call, result, reused)
                    if limited and self.spend.local_exhausted():
                        break  # the batch in progress ends; nothing new starts
            finally:
                self.cache.flush()
            if limited and self.spend.local_exhausted():
                return self._out_of_local_budget([g for i, g in enumerate(batch) if i not in answered] + groups)
        return 0

    def _out_of_local_budget(self, groups: list[list[PlannedCall]]) -> int:
        """budget_hours or budget_usd reached by local compute: these local answers are not made (a rerun with a
        larger budget makes them)."""
        held = sum(len(g) for g in groups)
        if held:
            self.cache.release([g[0].key for g in groups])
            self.hold_back(held, self.spend.local_exhausted() or "local budget reached")
        return held
