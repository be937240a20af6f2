"""The run: plan (strategy x case x repeat), prepare each strategy, execute with cache and resume, score, summarize.

Each finished (strategy, case, repeat) is appended to cases.jsonl at once, so an interrupted run loses
nothing: rerunning the same command skips finished cases and answers cached calls from the cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from harness import __version__
from harness.backends.base import Backend, GenRequest, GenResult
from harness.builtins import BACKENDS, SCORERS, STRATEGIES
from harness.run.cache import NoCache, ResponseCache, cache_key
from harness.suite.data import Case
from harness.costs.prices import Pricing, Spend, price_sheet
from harness.errors import BudgetReached, ConfigError, HarnessError, RunFolderError, closest
from harness.home import harness_home
from harness.scoring.judge import Judge, JudgeCounts, run_concurrently
from harness.suite.load import LoadedSuite, load_suite
from harness.run.manifest import build_manifest
from harness.run.folder import CasesFile, CaseResult, CaseScore, RunRecord, read_run, write_json_atomic
from harness.scoring.text import Score, Scorer
from harness.strategy import Strategy, StrategyContext
from harness.suite.schema import DecisionSpec, GenerationParams
from harness.verdict.decide import best_against_others, decide_suite, pairwise
from harness.costs.budget import SpendLedger, affordable, attribute_tokens, pricing_of, upper_usd
from harness.verdict.summary import latest, per_case_scores, summarize_strategy

log = logging.getLogger(__name__)

CHUNK = 1024  # requests handed to a backend at once: enough to sort by length, small enough to bound memory


class Progress(Protocol):
    def start(self, name: str, total: int) -> None: ...
    def advance(self, n: int = 1) -> None: ...
    def finish(self) -> None: ...


class QuietProgress:
    def start(self, name, total):
        pass

    def advance(self, n=1):
        pass

    def finish(self):
        pass


@dataclass
class CompareOptions:
    out: Path | None = None
    limit: int | None = None
    strategies: list[str] | None = None
    retry_errors: bool = False
    use_cache: bool = True
    overwrite: bool = False
    progress: Progress = field(default_factory=QuietProgress)


@dataclass
class Counts:
    model_calls: int = 0
    cache_hits: int = 0
    skipped_finished: int = 0
    errors: int = 0
    dev_calls: int = 0  # model calls made while preparing strategies (e.g. scoring checkpoints on dev)
    judge_calls: int = 0  # judge model calls for model-judged scorers (evaluation cost, not production cost)
    budget_skipped: int = 0  # paid calls not made because budget_usd was reached


# Parts of a suite that change the answers or their scores; editing the others (name, description,
# repeats, economics, decision) keeps a run folder resumable.
ANSWER_FIELDS = {"seed", "task", "data", "backends", "strategies", "scorers"}


def suite_fingerprint(loaded: LoadedSuite) -> str:
    payload = {"suite": loaded.suite.model_dump(mode="json", include=ANSWER_FIELDS), "data": loaded.dataset.hashes}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class Run:
    """One `harness compare` invocation over one run folder."""

    def __init__(self, loaded: LoadedSuite, options: CompareOptions):
        self.loaded = loaded
        self.suite = loaded.suite
        self.options = options
        self.run_dir = options.out or Path("runs") / self.suite.name
        self.selected = self._select(options.strategies)
        self.test = loaded.dataset.test[: options.limit] if options.limit else loaded.dataset.test
        self.counts = Counts()
        self.previous_setup: dict[str, dict[str, Any]] = {}
        self.setup: dict[str, dict[str, Any]] = {}
        self.backends: dict[str, Backend] = {}
        self.extra_backends: list[Backend] = []  # served models a strategy made (fine-tuned checkpoints)
        self.prepared: list[Strategy] = []  # closed at the end, whatever happens (e.g. deployments deleted)
        self.scorers: list[Scorer] = [
            SCORERS.get(s.kind)(s, loaded.config("scorers", s.label), self.suite.task) for s in self.suite.scorers
        ]
        self.fingerprint = suite_fingerprint(loaded)
        self.started_at = datetime.now(timezone.utc)
        self.spend = Spend(budget_usd=self.suite.budget_usd)
        self._current: str | None = None  # the strategy being prepared or run (dev calls are charged to it)
        self._token_memo: dict[tuple[int, str], int] = {}

    def _select(self, names: list[str] | None):
        specs = self.suite.strategies
        if not names:
            return specs
        known = [s.name for s in specs]
        for name in names:
            if name not in known:
                raise ConfigError(f"--strategies: no strategy named '{name}'.{closest(name, known)} Strategies: {', '.join(known)}.")
        return [s for s in specs if s.name in names]

    # ---- run folder ------------------------------------------------------------------------------

    def _open_folder(self) -> CasesFile:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        marker = self.run_dir / "suite.sha256"
        cases = CasesFile(self.run_dir / "cases.jsonl")
        if marker.exists() and marker.read_text().strip() != self.fingerprint:
            if not self.options.overwrite:
                raise RunFolderError(
                    f"{self.run_dir} holds results of a different suite (or of this suite before it or its data changed); "
                    "resuming would mix them.\nFix: pass --out NEW_DIR, or --overwrite to discard those results."
                )
        if self.options.overwrite:
            for name in ("cases.jsonl", "run.json", "spend.jsonl", "decision.md"):
                (self.run_dir / name).unlink(missing_ok=True)
        marker.write_text(self.fingerprint + "\n")
        return cases

    def _backend(self, name: str) -> Backend:
        if name not in self.backends:
            spec = next(b for b in self.suite.backends if b.name == name)
            self.backends[name] = BACKENDS.get(spec.kind)(spec, self.loaded.config("backends", name))
        return self.backends[name]

    # ---- execution -------------------------------------------------------------------------------

    def _score(self, answer: str, case: Case, meta: dict[str, Any]) -> dict[str, CaseScore]:
        out = {}
        for scorer in self.scorers:
            if scorer.deferred:  # judged after generation (see _judge)
                continue
            try:
                s = scorer.score_result(answer, case, meta)
            except Exception as exc:  # a scorer failure leaves this case unscored, counted
                s = Score(None, detail={"error": f"{type(exc).__name__}: {exc}"})
            if s is not None:  # None: the scorer does not apply to this strategy (e.g. retrieval metrics)
                out[scorer.name] = CaseScore(value=s.value, invalid=s.invalid, detail=s.detail)
        return out

    def _record(self, strategy: str, case: Case, repeat: int, result: GenResult, meta: dict, hit: bool,
                parts: dict[str, int] | None = None, pricing: Pricing | None = None) -> CaseResult:
        scores = self._score(result.text, case, meta) if result.error is None and result.text is not None else {}
        cost = paid = None
        if pricing is not None:
            cost = 0.0 if hit else pricing.call_usd(result.input_tokens, result.output_tokens, result.cached_input_tokens,
                                                    result.compute_s)
            paid = cost if pricing.paid else 0.0
        query = (meta.get("retrieval") or {}).get("query_embedding_usd")
        if query:  # an API embedder billed this case's query: part of what the answer cost, paid even on a cache hit
            cost, paid = (cost or 0.0) + query, (paid or 0.0) + query
        return CaseResult(
            strategy=strategy, case_id=case.id, repeat=repeat, input=case.input, target=case.target,
            prompt=result.prompt, output=result.text, error=result.error, scores=scores,
            input_tokens=result.input_tokens, output_tokens=result.output_tokens,
            cached_input_tokens=result.cached_input_tokens,
            tokens=attribute_tokens(parts, result) if parts is not None and result.error is None else {},
            cost_usd=cost, paid_usd=paid or 0.0,
            # A cache hit keeps the busy time its answer took when it was made (production pays it on every
            # request); busy-time totals and latency percentiles count only fresh calls.
            latency_s=result.latency_s, latency_kind=result.latency_kind, compute_s=result.compute_s,
            batch_size=result.batch_size, ttft_s=result.ttft_s, cache_hit=hit, meta=meta,
            finished_at=datetime.now(timezone.utc),
        )

    def _charge(self, strategy: str, what: str, usd: float) -> None:
        self.spend.paid_usd += usd
        self.ledger.add(strategy, what, usd)

    def _pricing(self, backend: Backend) -> Pricing:
        return pricing_of(self.suite, backend.identity())

    def _parts(self, backend: Backend, parts: dict[str, str] | None, messages: list[dict[str, str]]) -> dict[str, int]:
        """Tokens of each part of the prompt (memoised: instructions and fixed exemplars repeat in every case)."""
        if parts is None:
            parts = {"input": "\n".join(m["content"] for m in messages)}
        out = {}
        for name, text in parts.items():
            if not text:
                continue
            key = (id(backend), text)
            if key not in self._token_memo:
                self._token_memo[key] = backend.count_tokens(text)
            out[name] = self._token_memo[key]
        return out

    def _run_strategy(self, spec, cases_file: CasesFile, done: dict) -> None:
        backend = self._backend(spec.backend or self.suite.backends[0].name)
        ctx = StrategyContext(self.suite, self.loaded.dataset, backend, self.run_dir, self.suite.seed,
                              scorers=self.scorers, answer=self._answer)
        strategy: Strategy = STRATEGIES.get(spec.kind)(spec, self.loaded.config("strategies", spec.name), ctx)
        self._current = spec.name
        self.setup[spec.name] = {"backend": backend.spec.name}
        started = time.perf_counter()
        try:
            given = strategy.prepare()
        except BudgetReached as exc:
            log.warning("%s: not prepared: %s", spec.name, exc)
            self.setup[spec.name].update(skipped=f"budget_usd reached while preparing: {exc}")
            self.spend.skipped[spec.name] = self.spend.skipped.get(spec.name, 0) + len(self.test) * self.suite.repeats
            return
        self.setup[spec.name].update(given=given, prepare_s=round(time.perf_counter() - started, 3),
                                     serving=strategy.backend.identity())
        paid_setup = given.get("paid_usd") if isinstance(given, dict) else None
        if paid_setup:  # e.g. a provider's training job, an index embedded through an API
            self._charge(spec.name, "setup", paid_setup)
        earlier = self.previous_setup.get(spec.name, {}).get("evaluation")
        if earlier:  # judge work paid for by earlier invocations stays on record
            self.setup[spec.name]["evaluation"] = dict(earlier)
        self.prepared.append(strategy)
        if strategy.backend is not backend:
            self.extra_backends.append(strategy.backend)
        todo = []
        for case in self.test:
            for repeat in range(self.suite.repeats):
                prior = done.get((spec.name, case.id, repeat))
                if prior is not None and (prior.error is None or not self.options.retry_errors):
                    self.counts.skipped_finished += 1
                    continue
                todo.append((case, repeat))
        self.options.progress.start(spec.name, len(todo))
        try:
            for start in range(0, len(todo), CHUNK):
                self._run_chunk(spec.name, strategy, todo[start : start + CHUNK], cases_file)
        finally:
            self.options.progress.finish()
        self._judge(spec.name, cases_file)

    def _answer(self, backend: Backend, requests: list[GenRequest]) -> list[GenResult]:
        """Generation outside the test plan (e.g. dev scoring of checkpoints), through the response cache."""
        answers = self._cached(backend, requests, purpose="answers on dev")
        fresh = [result for result, hit in answers if not hit]
        self.counts.dev_calls += len(fresh)
        if self._current and answers:
            # The setup cost of choosing on dev is what those answers cost when made, cached or not, so a warm
            # cache does not make a strategy look cheaper to set up (the budget counts only fresh calls).
            pricing = self._pricing(backend)
            dev = self.setup.setdefault(self._current, {}).setdefault(
                "dev", {"calls": 0, "answers": 0, "input_tokens": 0, "output_tokens": 0, "compute_s": 0.0, "cost_usd": 0.0})
            dev["calls"] += len(fresh)
            dev["answers"] += len(answers)
            for r, _ in answers:
                dev["input_tokens"] += r.input_tokens
                dev["output_tokens"] += r.output_tokens
                dev["compute_s"] += r.compute_s
                dev["cost_usd"] += pricing.call_usd(r.input_tokens, r.output_tokens, r.cached_input_tokens, r.compute_s) or 0.0
            dev["cost_basis"] = pricing.basis
        return [result for result, _ in answers]

    def _cached(self, backend: Backend, requests: list[GenRequest], purpose: str = "judge") -> list[tuple[GenResult, bool]]:
        """Answers through the response cache, each with whether it came from the cache; repeats sent once."""
        identity = backend.identity()
        keys = [cache_key(identity, r, 0) for r in requests]
        found = self.cache.get_many(keys)
        first = {k: i for i, k in reversed(list(enumerate(keys)))}
        todo = [i for k, i in first.items() if k not in found]
        fresh = {keys[i] for i in todo}
        if todo:
            pricing = self._pricing(backend)
            if pricing.paid and self.spend.budget_usd is not None:
                upper = sum(upper_usd(backend, pricing, requests[i]) for i in todo)
                if upper > self.spend.room():
                    raise BudgetReached(f"{len(todo)} calls to {backend.spec.name} could cost up to ${upper:.4f}; "
                                        f"${max(self.spend.room(), 0):.4f} of budget_usd ${self.spend.budget_usd:g} is left")
            backend.load()
            for index, result in backend.generate([requests[i] for i in todo]):
                self.cache.put(keys[todo[index]], result)
                found[keys[todo[index]]] = result
                if pricing.paid:
                    self._charge(self._current or "", purpose, pricing.call_usd(
                        result.input_tokens, result.output_tokens, result.cached_input_tokens) or 0.0)
        return [(found[k], k not in fresh or first[k] != i) for i, k in enumerate(keys)]

    def _judge(self, name: str, cases_file: CasesFile) -> None:
        """Model-judged scorers (ragas) over this strategy's finished answers that lack their score."""
        cases = {c.id: c for c in self.test}
        for scorer in [s for s in self.scorers if s.deferred]:
            rows = [r for k, r in cases_file.rows.items() if k[0] == name and k[1] in cases and k[2] < self.suite.repeats
                    and r.error is None and r.output is not None and scorer.name not in r.scores]
            if not rows:
                continue
            cfg = scorer.config
            judge = Judge(self._backend(cfg.judge), self._cached, retries=cfg.retries, max_chars=cfg.max_chars,
                          max_items=cfg.max_items,
                          binary_fields=scorer.binary_fields,
                          params=GenerationParams(max_new_tokens=cfg.max_new_tokens, temperature=0.0))
            scorer.prepare(judge)
            self.options.progress.start(f"{name}: {scorer.name}", len(rows))

            def done(i: int, score: Score | None, rows=rows, scorer=scorer) -> None:
                self.options.progress.advance()
                if score is None:
                    return
                row = cases_file.rows[rows[i].key]
                entry = CaseScore(value=score.value, invalid=score.invalid, detail=score.detail)
                cases_file.append(row.model_copy(update={"scores": {**row.scores, scorer.name: entry}}))

            skipped = None
            try:
                run_concurrently([lambda r=r: scorer.ascore(r.output, cases[r.case_id], r.meta) for r in rows], done)
            except BudgetReached as exc:
                skipped = str(exc)
                log.warning("%s: %s not judged: budget_usd reached (%s)", name, scorer.name, exc)
                self.spend.skipped[f"{name}: {scorer.name}"] = len(rows)
            finally:
                self.options.progress.finish()
                evaluation = self.setup[name].setdefault("evaluation", {})
                totals = JudgeCounts(**evaluation.get(scorer.name, {}).get("judge", {}))
                totals.add(judge.counts)
                pricing = self._pricing(judge.backend)
                cost = pricing.call_usd(totals.input_tokens, totals.output_tokens, 0, totals.compute_s)
                evaluation[scorer.name] = {"judge": totals.__dict__, "judge_backend": cfg.judge,
                                           "cost_usd": None if cost is None else round(cost, 9),
                                           "cost_basis": pricing.basis, "paid": pricing.paid}
                if skipped:
                    evaluation[scorer.name]["skipped"] = skipped
                self.counts.judge_calls += judge.counts.calls

    def _run_chunk(self, name: str, strategy: Strategy, chunk: list[tuple[Case, int]], cases_file: CasesFile) -> None:
        backend = strategy.backend
        identity = backend.identity()
        params = backend.spec.generation
        pricing = self._pricing(backend)
        planned = []
        built: dict[str, Any] = {}  # one request per case, whatever the repeats (retrieval runs once)
        for case, repeat in chunk:
            if case.id not in built and self.spend.room() <= 0:  # building a request can be billed (an API embedder)
                held = sum(1 for c, _ in chunk if c.id not in built)
                self._hold_back(name, held)
                break
            if case.id not in built:
                try:
                    built[case.id] = strategy.request(case)
                except (KeyboardInterrupt, ConfigError):
                    raise
                except Exception as exc:  # e.g. retrieval failed for this case: recorded as data, the run goes on
                    built[case.id] = exc
            req = built[case.id]
            if isinstance(req, Exception):
                failed = GenResult(text=None, error=f"{name}: building the request failed: {type(req).__name__}: {req}")
                cases_file.append(self._record(name, case, repeat, failed, {}, hit=False))
                self.counts.errors += 1
                self.options.progress.advance()
                continue
            gen = GenRequest(req.messages, params)
            parts = self._parts(backend, req.parts, req.messages)
            planned.append((case, repeat, req.meta, gen, cache_key(identity, gen, repeat), parts))
        hits = self.cache.get_many([p[4] for p in planned])
        # Requests with the same key (greedy repeats, identical prompts) are sent once; the others reuse the answer.
        misses: dict[str, list[tuple]] = {}
        for item in planned:
            case, repeat, meta, gen, key, parts = item
            if key in hits:
                row = self._record(name, case, repeat, hits[key], meta, hit=True, parts=parts, pricing=pricing)
                self.spend.paid_usd += row.paid_usd
                cases_file.append(row)
                self.counts.cache_hits += 1
                self.options.progress.advance()
            else:
                misses.setdefault(key, []).append(item)
        if not misses:
            return
        if "load_s" not in self.setup.setdefault(name, {}):
            started = time.perf_counter()
            backend.load()
            self.setup[name]["load_s"] = round(time.perf_counter() - started, 3)
        groups = list(misses.values())
        while groups:
            # each call reserved at its most, for every attempt the provider might bill (see billed_attempts_at_most)
            attempts = backend.billed_attempts_at_most()
            batch, groups = affordable(groups, self.spend,
                                       lambda group: attempts * upper_usd(backend, pricing, group[0][3]), paid=pricing.paid)
            if not batch:  # budget_usd reached: these calls are not made; a rerun with a larger budget makes them
                queries = sum((item[2].get("retrieval") or {}).get("query_embedding_usd") or 0.0
                              for group in groups for item in group)
                if queries:  # their queries were embedded (and billed) while their prompts were built
                    self._charge(name, "query embeddings of answers held back by budget_usd", queries)
                self._hold_back(name, sum(len(g) for g in groups))
                return
            for index, result in backend.generate([g[0][3] for g in batch]):
                self.counts.model_calls += 1
                self.counts.errors += result.error is not None
                self.cache.put(batch[index][0][4], result)
                if pricing.paid and result.unconfirmed_attempts:  # may have been billed: counted at their most
                    self._charge(name, f"{result.unconfirmed_attempts} attempt(s) sent but never answered (timed out, "
                                       "dropped or garbled); the provider may have billed them",
                                 result.unconfirmed_attempts * upper_usd(backend, pricing, batch[index][0][3]))
                for n, (case, repeat, meta, _, _, parts) in enumerate(batch[index]):
                    reused = n > 0 and result.error is None
                    self.counts.cache_hits += reused
                    row = self._record(name, case, repeat, result, meta, hit=reused, parts=parts, pricing=pricing)
                    self.spend.paid_usd += row.paid_usd
                    cases_file.append(row)
                    self.options.progress.advance()

    def _hold_back(self, name: str, n: int) -> None:
        """`n` answers not requested because budget_usd is reached; recorded, and made by a rerun with a larger budget."""
        self.spend.skipped[name] = self.spend.skipped.get(name, 0) + n
        self.counts.budget_skipped += n
        log.warning("%s: budget_usd $%g reached ($%.4f paid): %d answers not requested",
                    name, self.spend.budget_usd, self.spend.paid_usd, n)
        for _ in range(n):
            self.options.progress.advance()

    # ---- results ---------------------------------------------------------------------------------

    def resolved_suite(self) -> dict[str, Any]:
        """The suite as run: every component's config with its defaults filled in."""
        data = self.suite.model_dump(mode="json")
        for section in ("backends", "strategies", "scorers"):
            for item, spec in zip(data[section], getattr(self.suite, section), strict=True):
                key = spec.label if section == "scorers" else spec.name
                item["config"] = self.loaded.config(section, key).model_dump(mode="json")
        return data

    def record(self, status: str, results: list[CaseResult]) -> RunRecord:
        """Summarise the whole folder: every strategy with results (not only this invocation's), over the full
        test split and the suite's repeats, so a `--limit` or `--strategies` rerun never hides earlier work."""
        final = latest(results)
        test_ids = {c.id for c in self.loaded.dataset.test}
        binary = {s.name: bool(s.binary) for s in self.scorers}
        conditional = {s.name for s in self.scorers if s.conditional}
        present = {k[0] for k in final} | {s.name for s in self.selected}
        summaries = {}
        by_strategy = {}
        for spec in self.suite.strategies:
            if spec.name not in present:
                continue
            rows = [r for k, r in final.items() if k[0] == spec.name and k[1] in test_ids and k[2] < self.suite.repeats]
            by_strategy[spec.name] = rows
            applies = {m: b for m, b in binary.items()
                       if m not in conditional or any(m in r.scores for r in rows)}
            current, previous = self.setup.get(spec.name), self.previous_setup.get(spec.name, {})
            # a strategy whose prepare() did not finish this time keeps what an earlier run recorded (its costs)
            setup = current if current and "given" in current else (previous or current or {})
            summaries[spec.name] = summarize_strategy(
                spec.name, spec.backend or self.suite.backends[0].name, rows,
                n_planned=len(test_ids) * self.suite.repeats, binary=applies, setup=setup,
                pricing=pricing_of(self.suite, setup.get("serving") or self._backend(self.suite.backend_for(spec).name).identity()),
            )
        models = {name: b.identity() for name, b in self.backends.items()}
        metric = self.suite.primary_metric
        prices = {**price_sheet().info(),
                  "overrides": self.suite.economics.model_dump(mode="json", include={"prices", "usd_per_hour"})
                  if self.suite.economics else {}}
        # Every pair of strategies on the same cases, Holm-corrected together: the decision and `comparisons`
        # (the best strategy against each other one) read the same tests.
        policy = self.suite.decision or DecisionSpec()
        per_case = per_case_scores(by_strategy, metric)
        pairs = pairwise(per_case, binary=binary.get(metric, False), confidence=policy.confidence,
                         min_gain=policy.min_gain)
        decision = decide_suite(self.suite, summaries, pairs, prices=prices)
        return RunRecord(
            harness_version=__version__, status=status, suite_name=self.suite.name,
            suite_path=str(self.loaded.path), suite_sha256=self.fingerprint, suite=self.resolved_suite(),
            started_at=self.started_at, finished_at=datetime.now(timezone.utc), primary_metric=self.suite.primary_metric,
            strategies=summaries,
            comparisons=best_against_others(pairs, per_case),
            prices=prices, decision=decision, budget=self.spend.as_dict(),
            manifest=build_manifest(seed=self.suite.seed, data_hashes=self.loaded.dataset.hashes, models=models),
            options={"limit": self.options.limit, "strategies": [s.name for s in self.selected],
                     "repeats": self.suite.repeats, "counts": self.counts.__dict__},
        )

    def _write(self, status: str, cases_file: CasesFile) -> RunRecord:
        cases_file.close()
        cases_file.compact()  # retried cases superseded their error lines: keep one line per key
        record = self.record(status, list(cases_file.rows.values()))
        write_json_atomic(self.run_dir / "run.json", record.model_dump_json(indent=2))
        if record.decision and status != "running":
            from harness.verdict.decide import render_markdown

            write_json_atomic(self.run_dir / "decision.md", render_markdown(record.decision, suite_name=self.suite.name))
        return record

    def _previous_setup(self) -> dict[str, dict[str, Any]]:
        try:
            previous = read_run(self.run_dir)
        except HarnessError:
            return {}
        return {name: s.setup for name, s in previous.strategies.items()}

    def execute(self) -> RunRecord:
        cases_file = self._open_folder()
        done = dict(cases_file.load())
        self.previous_setup = self._previous_setup()
        self.ledger = SpendLedger(self.run_dir / "spend.jsonl")
        self.spend.paid_usd = sum(r.paid_usd for r in done.values()) + self.ledger.total()
        if self.suite.budget_usd is not None:  # refuse before any call when the plan cannot fit the budget
            from harness.costs.estimate import check_budget, estimate

            finished = {k for k, r in done.items() if r.error is None or not self.options.retry_errors}
            prepared = {name for name, setup in self.previous_setup.items() if setup.get("given")}
            check_budget(self.loaded, estimate(self.loaded, limit=self.options.limit, done=finished, prepared=prepared,
                                               strategies=[s.name for s in self.selected]), self.spend.paid_usd)
        self._write("running", cases_file)  # a run.json exists from the start, even if this process is killed
        self.cache = ResponseCache(harness_home() / "cache" / "responses.sqlite") if self.options.use_cache else NoCache()
        status = "interrupted"
        try:
            for spec in self.selected:
                self._run_strategy(spec, cases_file, done)
            status = "complete"
        except KeyboardInterrupt:
            raise
        except Exception:  # a harness error or a crash: record what finished, then let the caller report it
            status = "failed"
            raise
        finally:
            for strategy in self.prepared:  # release deployments first: their hosting time goes into the record
                try:
                    strategy.close()
                except Exception as exc:  # never hide the run's own outcome; say what may still be running
                    log.error("%s: could not release what it holds: %s", strategy.spec.name, exc)
            # Interrupted or not, what finished is summarized and kept.
            record = self._write(status, cases_file)
            if status == "complete" and any(s.n_done < s.n_planned for s in record.strategies.values()):
                record = self._write("incomplete", cases_file)
            self.cache.close()
            for backend in [*self.backends.values(), *self.extra_backends]:
                backend.close()
        return record


def compare(suite_path: str | Path, options: CompareOptions | None = None) -> tuple[RunRecord, Run]:
    """Validate the suite, then run (or resume) the comparison. Returns the record and the run (for counts)."""
    run = Run(load_suite(suite_path), options or CompareOptions())
    return run.execute(), run
