"""Chunking, the on-disk index cache and the retrievers (langchain FAISS, BM25 and an RRF ensemble).

The index cache holds chunks (JSONL) and their vectors (.npy), never a pickle: a cached index is rebuilt into a
FAISS store in milliseconds, and nothing from disk is unpickled. Its key covers the corpus content, the splitter
and the embedder, so a change to any of them builds a new index and a rerun with none reuses it (0 embedding calls).
index.json records the sha256 of both files: a damaged index (cut short, overwritten) is moved aside with a warning
and built again, never used half-written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from harness.errors import require
from harness.home import move_aside
from harness.suite.data import file_sha256
from harness.suite.schema import StrictModel

INDEX_CODE_VERSION = 1
log = logging.getLogger(__name__)


class ChunkingConfig(StrictModel):
    splitter: Literal["recursive", "token"] = Field(
        "recursive",
        description="recursive: RecursiveCharacterTextSplitter on characters; token: the same on embedder tokens.",
    )
    size: int = Field(
        1000, ge=16, le=100_000, description="Chunk size: characters (recursive) or embedder tokens (token)."
    )
    overlap: int = Field(100, ge=0, description="Overlap between neighbouring chunks, same unit as size.")

    @model_validator(mode="after")
    def _overlap_below_size(self) -> ChunkingConfig:
        if self.overlap >= self.size:
            raise ValueError(f"overlap ({self.overlap}) must be smaller than size ({self.size})")
        return self


@dataclass
class Chunk:
    id: str
    doc_id: str
    title: str
    text: str
    source: str
    page: int | None = None


@dataclass
class Index:
    key: str
    chunks: list[Chunk]
    vectors: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


def index_key(corpus_sha: str, chunking: ChunkingConfig, embedder_identity: dict[str, Any]) -> str:
    payload = {
        "corpus": corpus_sha,
        "chunking": chunking.model_dump(),
        "embedder": embedder_identity,
        "code": INDEX_CODE_VERSION,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def _splitter(chunking: ChunkingConfig, embedder, *, size: int | None = None, overlap: int | None = None):
    splitters = require("langchain_text_splitters", extra="rag", purpose="chunking the corpus")
    size = size or chunking.size
    overlap = chunking.overlap if overlap is None else overlap
    if chunking.splitter == "token" or size != chunking.size:
        if embedder.tokenizer is not None:
            return splitters.RecursiveCharacterTextSplitter.from_huggingface_tokenizer(
                embedder.tokenizer, chunk_size=size, chunk_overlap=overlap
            )
        size, overlap = size * 4, overlap * 4  # no local tokenizer (API embedder): about 4 characters a token
    return splitters.RecursiveCharacterTextSplitter(chunk_size=size, chunk_overlap=overlap)


def split_documents(docs: list[Any], chunking: ChunkingConfig, embedder) -> tuple[list[Chunk], dict[str, int]]:
    """Chunks with ids `<doc_id>#<n>` (`<doc_id>#p<page>.<n>` for PDFs). A chunk longer than the embedder takes is
    split again on its tokens, never truncated; how many were is reported."""
    pieces = _splitter(chunking, embedder).split_documents(docs)
    limit = embedder.max_tokens
    lengths = embedder.count_tokens([p.page_content for p in pieces])
    resplit = 0
    final = []
    fine = None
    for piece, n_tokens in zip(pieces, lengths, strict=True):
        if n_tokens <= limit:
            final.append(piece)
            continue
        resplit += 1
        if fine is None:
            overlap = min(chunking.overlap if chunking.splitter == "token" else chunking.overlap // 4, limit // 4)
            fine = _splitter(chunking, embedder, size=limit, overlap=overlap)
        final += fine.split_documents([piece])
    counters: dict[tuple[str, Any], int] = {}
    chunks = []
    for piece in final:
        meta = piece.metadata
        page = meta.get("page")
        n = counters[(meta["doc_id"], page)] = counters.get((meta["doc_id"], page), -1) + 1
        cid = f"{meta['doc_id']}#p{page}.{n}" if page is not None else f"{meta['doc_id']}#{n}"
        chunks.append(
            Chunk(
                id=cid,
                doc_id=meta["doc_id"],
                title=meta.get("title", ""),
                text=piece.page_content,
                source=meta.get("source", ""),
                page=page,
            )
        )
    return chunks, {
        "documents": len(docs),
        "chunks": len(chunks),
        "resplit_for_embedder": resplit,
        "embedder_max_tokens": limit,
    }


INDEX_FILES = ("chunks.jsonl", "vectors.npy")


def load_cached(folder: Path) -> Index | None:
    """The index kept in `folder`, or None when there is none. One that is there but damaged (a file missing, cut
    short or changed since it was written) is moved aside with a warning, so it is built again."""
    if not folder.exists():
        return None
    try:
        info = json.loads((folder / "index.json").read_text())
        for name, digest in info.get("sha256", {}).items():
            if file_sha256(folder / name) != digest:
                raise ValueError(f"{name} does not match the sha256 recorded when it was written")
        with (folder / "chunks.jsonl").open(encoding="utf-8") as fh:
            chunks = [Chunk(**json.loads(line)) for line in fh]
        vectors = np.load(folder / "vectors.npy", allow_pickle=False)
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        move_aside(folder, "the RAG index", why=str(exc)[:200], then="building it again from the corpus")
        return None
    return Index(key=folder.name, chunks=chunks, vectors=vectors, info=info)


def build(folder: Path, key: str, docs_loader, chunking: ChunkingConfig, embedder, progress=None, name="") -> Index:
    """Chunk and embed, then publish the folder atomically (a kill mid-build leaves no index to trust). `progress`
    (harness.run.progress) shows the embedding, block by block."""
    loading = time.perf_counter()
    embedder.warm()  # model load is timed apart: the build time compares with a plain encode of the same texts
    started = time.perf_counter()
    docs = docs_loader()
    chunks, stats = split_documents(docs, chunking, embedder)
    chunked = time.perf_counter()
    log.info(
        "%sindexing the corpus: %d documents in %d chunks (read and split in %.1fs)",
        f"{name}: " if name else "",
        len(docs),
        len(chunks),
        chunked - started,
    )
    vectors, counts = _encode_resumably(
        folder.with_name(folder.name + ".partial"), [c.text for c in chunks], embedder, progress, name
    )
    embedded = time.perf_counter()
    info = {
        **stats,
        "key": key,
        "model_load_s": round(started - loading, 3),
        "chunk_s": round(chunked - started, 3),
        "embed_s": round(embedded - chunked, 3),
        "build_s": round(embedded - started, 3),
        "embedder": embedder.identity(),
        "embedding": counts,
        "dim": int(vectors.shape[1]) if vectors.ndim == 2 else 0,
        "device": _device(embedder),
    }
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with (tmp / "chunks.jsonl").open("w", encoding="utf-8") as fh:
        for c in chunks:
            fh.write(json.dumps(c.__dict__, ensure_ascii=False) + "\n")
    np.save(tmp / "vectors.npy", vectors, allow_pickle=False)
    info["sha256"] = {name: file_sha256(tmp / name) for name in INDEX_FILES}
    (tmp / "index.json").write_text(json.dumps(info, indent=2))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.replace(folder)
    shutil.rmtree(folder.with_name(folder.name + ".partial"), ignore_errors=True)
    return Index(key=key, chunks=chunks, vectors=vectors, info=info)


def _encode_resumably(
    partial: Path, texts: list[str], embedder, progress=None, name: str = ""
) -> tuple[np.ndarray, dict[str, int]]:
    """Embed in blocks, each kept in `partial` as soon as it is back, so a build killed half-way resumes and no
    embedding already made (and, for an API embedder, paid) is asked for again. Returns the vectors and the counts
    of the whole build (blocks from an earlier, killed process included: the index cost what all of them cost);
    `counts()["calls"]` of the embedder says what this process asked for."""
    per_block = embedder.config.batch_size * (1 if embedder.config.kind == "openai" else 16)
    partial.mkdir(parents=True, exist_ok=True)
    blocks, totals = [], {"calls": 0, "texts": 0, "tokens": 0}
    if progress is not None:
        progress.start(f"{name + ': ' if name else ''}embedding the corpus's chunks", len(texts))
    for start in range(0, len(texts), per_block):
        block = texts[start : start + per_block]
        name = hashlib.sha256(json.dumps(block).encode()).hexdigest()[:24]
        saved = partial / f"{name}.npz"
        try:
            with np.load(saved, allow_pickle=False) as kept:
                vectors, counts = kept["vectors"], {k: int(kept[k]) for k in totals}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # absent or torn: embed it (again)
            before = embedder.counts()
            vectors = embedder.encode(block)
            counts = {k: embedder.counts()[k] - before[k] for k in totals}
            tmp = saved.with_name(saved.name + ".tmp.npz")
            np.savez(tmp, vectors=vectors, **counts)
            tmp.replace(saved)
        blocks.append(vectors)
        totals = {k: totals[k] + counts[k] for k in totals}
        if progress is not None:
            progress.advance(len(block))
    if progress is not None:
        progress.finish()
    return (np.concatenate(blocks) if blocks else np.zeros((0, 0), dtype=np.float32)), totals


def _device(embedder) -> str:
    model = getattr(embedder, "_model", None)
    return str(getattr(model, "device", "api")).split(":")[0] if model is not None else "api"


# ---- retrievers ------------------------------------------------------------------------------------


def _documents(index: Index) -> list[Any]:
    from langchain_core.documents import Document

    return [
        Document(page_content=c.text, metadata={"chunk_id": c.id, "doc_id": c.doc_id, "title": c.title}, id=c.id)
        for c in index.chunks
    ]


def bm25_tokens(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def dense_retriever(index: Index, embedder, *, k: int, mmr: bool, fetch_k: int, lambda_mult: float):
    faiss = require("faiss", extra="rag", purpose="dense retrieval")
    from langchain_community.docstore.in_memory import InMemoryDocstore
    from langchain_community.vectorstores import FAISS
    from langchain_community.vectorstores.utils import DistanceStrategy

    flat = faiss.IndexFlatIP(index.vectors.shape[1])
    flat.add(index.vectors)
    docs = _documents(index)
    store = FAISS(
        embedding_function=embedder,
        index=flat,
        docstore=InMemoryDocstore({d.id: d for d in docs}),
        index_to_docstore_id={i: d.id for i, d in enumerate(docs)},
        distance_strategy=DistanceStrategy.MAX_INNER_PRODUCT,
    )
    if mmr:
        return store.as_retriever(
            search_type="mmr", search_kwargs={"k": k, "fetch_k": max(fetch_k, k), "lambda_mult": lambda_mult}
        )
    return store.as_retriever(search_kwargs={"k": k})


def bm25_retriever(index: Index, *, k: int):
    require("rank_bm25", extra="rag", purpose="BM25 retrieval")
    from langchain_community.retrievers import BM25Retriever

    return BM25Retriever.from_documents(_documents(index), k=k, preprocess_func=bm25_tokens)


def hybrid_retriever(
    index: Index,
    embedder,
    *,
    k: int,
    candidates: int,
    mmr: bool,
    lambda_mult: float,
    weights: tuple[float, float],
    rrf_k: int,
):
    """Reciprocal rank fusion of dense and BM25 (langchain's EnsembleRetriever); each proposes `candidates`."""
    ensemble = require("langchain_classic.retrievers", extra="rag", purpose="hybrid retrieval").EnsembleRetriever
    n = max(candidates, k)
    dense = dense_retriever(index, embedder, k=n, mmr=mmr, fetch_k=2 * n, lambda_mult=lambda_mult)
    return ensemble(retrievers=[dense, bm25_retriever(index, k=n)], weights=list(weights), c=rrf_k, id_key="chunk_id")
