"""RAG: answer each case with passages retrieved from the suite's corpus.

prepare(): read the corpus, chunk it, embed it (or reuse the cached index), and price the indexing as the
strategy's setup cost. request(case): retrieve top_k chunks for the case's input, fit them into the model's
context window in rank order (dropping what does not fit, counted), and put them before the question. Each
result line keeps the retrieved chunk ids and texts in rank order, retrieval latency apart from generation
latency, and the tokens spent on context.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from harness.backends.base import GenRequest
from harness.backends.embeddings import EmbedderConfig, make_embedder
from harness.costs.prices import device_cost, embedding_price
from harness.costs.tokens import tokens_to_chars
from harness.errors import DataError, require
from harness.home import harness_home
from harness.records.cases import CaseMeta, RetrievalTrace
from harness.records.setup import (
    CorpusInfo,
    DataUsed,
    IndexInfo,
    RagGiven,
    RetrieverSettings,
    SetupCost,
    TopKCandidate,
    TopKChoice,
)
from harness.strategy import Strategy, StrategyPlan, StrategyRequest, reference_problem
from harness.suite.data import Case
from harness.suite.prompts import build_messages, prompt_parts
from harness.suite.schema import StrictModel, TaskSpec
from strategies.rag import corpus as corpus_mod
from strategies.rag import index as index_mod

log = logging.getLogger(__name__)

ANSWER_MARGIN = 8  # tokens kept free beyond max_new_tokens (chat-template end markers)


class RagConfig(StrictModel):
    corpus: list[str] = Field(description="Corpus file(s) or folder(s), relative to the suite file.")
    fields: corpus_mod.CorpusFields = Field(default_factory=corpus_mod.CorpusFields)
    chunking: index_mod.ChunkingConfig = Field(default_factory=index_mod.ChunkingConfig)
    embedder: EmbedderConfig = Field(default_factory=EmbedderConfig)
    retriever: Literal["dense", "bm25", "hybrid"] = Field(
        "dense", description="dense: FAISS over embeddings; bm25: lexical; hybrid: reciprocal rank fusion of both."
    )
    top_k: int | list[int] = Field(
        4,
        description="Chunks retrieved per case; a list of candidates (e.g. [1, 3, 5]) is chosen on dev by the "
        "primary metric (never on test), ties going to the smaller k.",
    )
    mmr: bool = Field(False, description="Maximal marginal relevance for the dense search (diversity).")
    fetch_k: int = Field(20, ge=1, le=10_000, description="Candidates for MMR, and per retriever for hybrid fusion.")
    lambda_mult: float = Field(0.5, ge=0, le=1, description="MMR: 1 = pure relevance, 0 = pure diversity.")
    hybrid_weights: tuple[float, float] = Field((0.5, 0.5), description="RRF weights of dense and BM25.")
    rrf_k: int = Field(60, ge=1, description="The RRF constant c in 1/(c + rank).")
    exemplars: int = Field(
        0,
        ge=0,
        le=64,
        description="Question/answer pairs from train (seeded, fixed) shown before the case, "
        "without contexts: they teach the answer format at a few tokens each.",
    )
    model_from: str | None = Field(
        None,
        description="Serve from this finetune strategy's chosen model (fine-tuning plus retrieval); it must be listed "
        "before this strategy. Its training counts in this strategy's setup too.",
    )
    max_context_tokens: int | None = Field(
        None, ge=1, description="Cap on tokens of retrieved context per prompt (the model's window caps it anyway)."
    )

    @field_validator("top_k")
    @classmethod
    def _k_range(cls, value: int | list[int]) -> int | list[int]:
        values = value if isinstance(value, list) else [value]
        if not values or any(k < 1 or k > 200 for k in values):
            raise ValueError("top_k must be between 1 and 200 (or a non-empty list of such values)")
        return value

    @property
    def candidates(self) -> list[int]:
        return sorted(set(self.top_k)) if isinstance(self.top_k, list) else [self.top_k]

    @field_validator("corpus", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("corpus")
    @classmethod
    def _not_empty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one corpus file or folder")
        return value


def format_context(chunks: list[index_mod.Chunk]) -> str:
    return "\n\n".join(_passage(i, c) for i, c in enumerate(chunks, 1))


def _passage(rank: int, chunk: index_mod.Chunk) -> str:
    head = f"[{rank}] {chunk.title}".rstrip()
    return f"{head}\n{chunk.text}"


class Rag(Strategy):
    kind = "rag"
    Config = RagConfig

    @classmethod
    def unseeded(cls, config: RagConfig, suite):
        tuned = next((s for s in suite.strategies if s.name == config.model_from), None)
        if config.exemplars or (tuned is not None and tuned.seeds > 1):
            return None  # exemplars are drawn per seed; a seeded fine-tune serves seed i to seed i
        return "retrieval draws nothing at random without exemplars (and a model_from fine-tune with seeds)"

    @classmethod
    def check(cls, config: RagConfig, dataset, suite):
        require("langchain_community", extra="rag", purpose="the rag strategy")
        base = dataset.base or Path(".")
        problems = corpus_mod.missing_problems(config.corpus, base)
        for problem in problems:
            yield ("corpus",), problem
        if not problems:  # read it now: an empty or malformed corpus fails validation, not a run half-way through
            try:
                corpus_mod.load_documents(corpus_mod.resolve(config.corpus, base), config.fields, base)
            except DataError as exc:
                yield ("corpus",), str(exc)
        if config.retriever != "bm25" or config.mmr:
            require("faiss", extra="rag", purpose="dense retrieval")

        if len(config.candidates) > 1 and not dataset.dev:
            yield (
                ("top_k",),
                (
                    f"choosing top_k among {config.candidates} needs a dev split, and the suite has none. "
                    "Fix: add data.dev, or give a single top_k."
                ),
            )
        if config.model_from is not None:
            problem = reference_problem(suite, config.model_from, "finetune")
            if problem:
                yield ("model_from",), problem
        if config.exemplars > len(dataset.train):
            yield (
                ("exemplars",),
                (
                    f"{config.exemplars} exemplars asked for, but the train split has {len(dataset.train)} cases. "
                    "Fix: lower exemplars, or add train cases."
                ),
            )

    @classmethod
    def data_files(cls, config: RagConfig, base: Path) -> list[Path]:
        return corpus_mod.resolve(config.corpus, base)

    # ---- prepare ---------------------------------------------------------------------------------

    def prepare(self) -> RagGiven:
        cfg: RagConfig = self.config
        shared = self._serve_from_fine_tune() if cfg.model_from else None
        started = time.perf_counter()
        self.embedder = make_embedder(cfg.embedder, cache_queries=self.ctx.use_cache)
        self.index, cached = self._load_or_build_index()
        load_s = round(time.perf_counter() - started, 3)
        self._query_price = None
        if cfg.embedder.kind == "openai" and cfg.retriever != "bm25":
            self._query_price, _ = embedding_price(cfg.embedder.model, cfg.embedder.usd_per_1m_tokens, self.ctx.suite)
        train = self.ctx.dataset.train
        self.exemplars = random.Random(self.ctx.seed).sample(train, cfg.exemplars) if cfg.exemplars else []
        self._retriever = None
        self.retrieval_calls = 0
        info = self.index.info
        choice = self._choose_k()
        return RagGiven(
            corpus=CorpusInfo(
                files=[str(p) for p in cfg.corpus],
                documents=info["documents"],
                chunks=info["chunks"],
                resplit_for_embedder=info["resplit_for_embedder"],
            ),
            index=IndexInfo(
                key=self.index.key,
                reused_from_cache=cached,
                build_s=info["build_s"],
                chunk_s=info["chunk_s"],
                embed_s=info["embed_s"],
                embedder=info["embedder"],
                device=info["device"],
                embedding_calls_this_run=0 if cached else self.embedder.counts()["calls"],
                embedded_texts=info["embedding"]["texts"],
                load_s=load_s,
            ),
            exemplar_ids=[c.id for c in self.exemplars],
            setup_costs=[self._indexing_cost(info, cached), *([shared] if shared else [])],
            retriever=RetrieverSettings(
                kind=cfg.retriever,
                top_k=self.top_k,
                mmr=cfg.mmr,
                fetch_k=cfg.fetch_k,
                hybrid_weights=list(cfg.hybrid_weights) if cfg.retriever == "hybrid" else None,
            ),
            top_k_selection=choice,
        )

    def _serve_from_fine_tune(self) -> SetupCost:
        """Answer with the fine-tune's chosen model; its training counts in this strategy's setup as well (each
        option of the decision is priced as if it were the only one built)."""
        name = self.config.model_from
        tuned = self.prepared_strategy(name, "model_from")
        self.ctx.backend = tuned.backend
        cost = next((c for c in (tuned.given.setup_costs if tuned.given else []) if c.what == "training"), None)
        return SetupCost(
            what=f"training (the fine-tune {name}, whose model this strategy serves)",
            usd=cost.usd if cost else None,
            basis=cost.basis if cost else f"no training cost recorded by {name}",
            paid_usd=0.0,
        )

    def _load_or_build_index(self) -> tuple[index_mod.Index, bool]:
        """The corpus's index from HARNESS_HOME/indexes (keyed by corpus, chunking and embedder), built if missing;
        and whether it was reused."""
        cfg: RagConfig = self.config
        base = self.ctx.dataset.base or Path(".")
        paths = corpus_mod.resolve(cfg.corpus, base)
        key = index_mod.index_key(corpus_mod.fingerprint(paths), cfg.chunking, self.embedder.identity())
        folder = harness_home() / "indexes" / key
        index = index_mod.load_cached(folder)
        if index is not None:
            return index, True
        loader = lambda: corpus_mod.load_documents(paths, cfg.fields, base)  # noqa: E731 (read only when building)
        return (
            index_mod.build(folder, key, loader, cfg.chunking, self.embedder, self.ctx.progress, self.spec.name),
            False,
        )

    def _indexing_cost(self, info: dict[str, Any], cached: bool) -> SetupCost:
        """An API embedder's tokens at its price (billed this run unless the index was reused), else the build's
        device time at its $/hour."""
        cfg: RagConfig = self.config
        if info["embedder"]["kind"] != "openai":
            cost, basis = device_cost(self.ctx.suite, info["device"], info["build_s"] / 3600)
            return SetupCost(what="indexing", usd=cost, basis=basis)
        price, basis = embedding_price(cfg.embedder.model, cfg.embedder.usd_per_1m_tokens, self.ctx.suite)
        cost = None if price is None else round(info["embedding"]["tokens"] / 1e6 * price, 9)
        paid = 0.0 if cached or cost is None else cost  # counts against budget_usd
        return SetupCost(what="indexing", usd=cost, basis=basis, paid_usd=paid)

    @classmethod
    def data_used(cls, config: RagConfig, dataset, suite):
        """Its exemplars and the corpus; dev when it chooses top_k there; the fine-tune's data when it serves one."""
        train = config.exemplars
        dev = len(dataset.dev) if len(config.candidates) > 1 else 0
        if config.model_from:
            train, dev = len(dataset.train), len(dataset.dev)
        return DataUsed(train=train, dev=dev, corpus=True)

    @classmethod
    def plan(cls, config: RagConfig, dataset, suite):
        size = tokens_to_chars(config.chunking.size) if config.chunking.splitter == "token" else config.chunking.size
        train = dataset.train
        per = sum(len(c.input_text()) + len(c.target) + 1 for c in train) / max(len(train), 1)
        corpus, rows, row_bytes = 0, 0, 0
        for path in cls.data_files(config, dataset.base or Path(".")):
            files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
            corpus += sum(f.stat().st_size for f in files)
            for f in files:  # one document a row: documents shorter than a chunk are retrieved whole
                if f.suffix in (".jsonl", ".csv"):
                    with f.open("rb") as fh:
                        n = sum(1 for line in fh if line.strip()) - (f.suffix == ".csv")
                    rows, row_bytes = rows + max(n, 0), row_bytes + f.stat().st_size
        chunk = min(size, row_bytes / rows) if rows else size  # a row's bytes include its id and title: an upper bound
        context = max(config.candidates) * chunk
        if config.max_context_tokens:
            context = min(context, tokens_to_chars(config.max_context_tokens))
        dev = len(dataset.dev) * len(config.candidates) if len(config.candidates) > 1 else 0
        price = None
        if config.embedder.kind == "openai":
            price, _ = embedding_price(config.embedder.model, config.embedder.usd_per_1m_tokens, suite)
        return StrategyPlan(
            context_chars=context,
            exemplars_chars=config.exemplars * per,
            exemplars=config.exemplars,
            dev_requests=dev,
            embedding_chars=corpus,
            embedder_usd_per_1m_tokens=price,
        )

    # ---- per case --------------------------------------------------------------------------------

    @property
    def retriever(self):
        if self._retriever is None:
            cfg: RagConfig = self.config
            if cfg.retriever == "bm25":
                self._retriever = index_mod.bm25_retriever(self.index, k=max(cfg.candidates))
            elif cfg.retriever == "dense":
                self._retriever = index_mod.dense_retriever(
                    self.index,
                    self.embedder,
                    k=max(cfg.candidates),
                    mmr=cfg.mmr,
                    fetch_k=cfg.fetch_k,
                    lambda_mult=cfg.lambda_mult,
                )
            else:
                self._retriever = index_mod.hybrid_retriever(
                    self.index,
                    self.embedder,
                    k=max(cfg.candidates),
                    candidates=cfg.fetch_k,
                    mmr=cfg.mmr,
                    lambda_mult=cfg.lambda_mult,
                    weights=cfg.hybrid_weights,
                    rrf_k=cfg.rrf_k,
                )
            self._by_id = {c.id: c for c in self.index.chunks}
            if cfg.retriever != "bm25":  # load the embedder and its kernels now, not in the first query's latency
                self.embedder.warm()
                if cfg.embedder.kind == "local":  # an API embedder has no kernels to warm: no paid call for it
                    self.embedder.embed_query("warm up")
        return self._retriever

    def retrieve(self, query: str) -> tuple[list[index_mod.Chunk], float]:
        """The top max(candidates) chunks, ranked; any smaller k is a prefix of them (greedy MMR and RRF alike)."""
        retriever = self.retriever
        started = time.perf_counter()
        docs = retriever.invoke(query)
        elapsed = time.perf_counter() - started
        self.retrieval_calls += 1
        return [self._by_id[d.metadata["chunk_id"]] for d in docs[: max(self.config.candidates)]], elapsed

    def _budget(self, case: Case, task: TaskSpec, exemplars: list[Case]) -> int | None:
        """Tokens left for context: the window less the prompt without context and the answer's tokens."""
        cfg: RagConfig = self.config
        window = self.backend.context_window()
        cap = cfg.max_context_tokens
        if window is None:
            return cap
        bare = self.backend.count_tokens(self.backend.render_prompt(build_messages(task, case, exemplars=exemplars)))
        room = window - bare - self.backend.spec.generation.max_new_tokens - ANSWER_MARGIN - len("Context:\n\n\n")
        if room <= 0:
            raise DataError(
                f"case '{case.id}': the prompt alone ({bare} tokens) leaves no room for context in the model's "
                f"{window}-token window. Fix: shorten the instructions or the input, or use a model with a longer window."
            )
        return min(room, cap) if cap else room

    def fit(self, chunks: list[index_mod.Chunk], budget: int | None) -> tuple[list[index_mod.Chunk], int, int]:
        """Chunks in rank order while they fit; returns (kept, tokens used, dropped). The top chunk alone is cut to
        the budget rather than sending no context at all (marked in the text)."""
        if budget is None:
            return chunks, self.backend.count_tokens(format_context(chunks)), 0
        kept: list[index_mod.Chunk] = []
        used = 0
        for chunk in chunks:
            cost = self.backend.count_tokens(_passage(len(kept) + 1, chunk)) + (2 if kept else 0)
            if used + cost > budget:
                break
            kept.append(chunk)
            used += cost
        if not kept and chunks:
            words = chunks[0].text.split()
            while words:
                cut = replace(chunks[0], text=" ".join(words) + " [...]")
                if self.backend.count_tokens(_passage(1, cut)) <= budget:
                    return [cut], self.backend.count_tokens(_passage(1, cut)), len(chunks) - 1
                words = words[: int(len(words) * 0.8)]
        return kept, used, len(chunks) - len(kept)

    def _choose_k(self) -> TopKChoice | None:
        """Score each top_k candidate on dev with the primary metric; keep the best (ties: the smaller k)."""
        candidates = self.config.candidates
        if len(candidates) == 1:
            self.top_k = candidates[0]
            return None
        dev = self.ctx.dataset.dev
        # Chosen again on every run: the dev answers come from the response cache (no model call) and are counted at
        # what they cost when made, so the setup of a warm rerun is priced like the cold run's.
        found = [self.retrieve(c.input_text()) for c in dev]
        rows = []
        for k in candidates:
            built = [self._build(c, chunks[:k], elapsed) for c, (chunks, elapsed) in zip(dev, found, strict=True)]
            requests = [GenRequest(r.messages, self.backend.spec.generation) for r in built]
            score = self.dev_score(self.backend, requests, dev, [r.meta for r in built], f"top_k {k} on dev")
            rows.append(TopKCandidate(top_k=k, **score.model_dump()))
        scored = [r for r in rows if r.dev_score is not None]
        best = max(scored, key=lambda r: (r.dev_score or 0.0, -r.top_k)) if scored else rows[0]
        self.top_k = best.top_k
        return TopKChoice(candidates=rows, chosen=self.top_k, on="dev", metric=self.ctx.suite.primary_metric)

    def request(self, case: Case) -> StrategyRequest:
        chunks, elapsed = self.retrieve(case.input_text())
        return self._build(case, chunks[: self.top_k], elapsed)

    def with_context(self, case: Case, task: TaskSpec) -> StrategyRequest:
        """The prompt another strategy's task makes for `case` with this strategy's retrieved context (its chosen
        top_k, fitted to the window) and no exemplars: a fine-tune trained and served with retrieval."""
        chunks, elapsed = self.retrieve(case.input_text())
        return self._build(case, chunks[: self.top_k], elapsed, task=task, exemplars=[])

    def _build(
        self,
        case: Case,
        chunks: list[index_mod.Chunk],
        elapsed: float,
        *,
        task: TaskSpec | None = None,
        exemplars: list[Case] | None = None,
    ) -> StrategyRequest:
        task = self.ctx.suite.task if task is None else task
        exemplars = self.exemplars if exemplars is None else exemplars
        kept, used, dropped = self.fit(chunks, self._budget(case, task, exemplars))
        context = format_context(kept) if kept else None
        messages = build_messages(task, case, exemplars=exemplars, context=context)
        trace = RetrievalTrace(
            chunk_ids=[c.id for c in chunks],
            doc_ids=[c.doc_id for c in chunks],
            texts=[c.text for c in chunks],
            used=len(kept),
            dropped=dropped,
            context_tokens=used,
            retrieval_s=round(elapsed, 6),
            retriever=self.config.retriever,
        )
        if self._query_price is not None:  # an API embedder bills each query: part of the request's cost
            tokens = self.embedder.count_tokens([case.input_text()])[0]
            trace.query_embedding_usd = tokens / 1e6 * self._query_price
        meta = CaseMeta(retrieval=trace)
        parts = prompt_parts(task, case, exemplars=exemplars, context=context)
        return StrategyRequest(messages, meta, parts=parts)
