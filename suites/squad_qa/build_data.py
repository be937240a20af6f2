#!/usr/bin/env python3
"""Build the data for the ``squad_qa`` suite: questions answered from Wikipedia paragraphs.

The questions and paragraphs come from the SQuAD v1.1 development set (Rajpurkar et al., 2016,
arXiv:1606.05250) as shipped inside the BIG-bench ``squad_shifts`` task. We read it straight out of
the ``bigbench==1.0.0`` source distribution on PyPI; bigbench itself is never installed. The download
and checksum helpers come from ``harness.suite.bigbench``, so all suites fetch and check the very same
file the same way.

Steps:

1. Get the sdist: use ``--sdist PATH`` if given, otherwise
   ``python -m pip download bigbench==1.0.0 --no-deps`` into a temporary
   directory (if pip fails, as recent pip versions do on this sdist, pip 23.2.1
   is run from its wheel instead; see the quickstart script). Its sha256 is
   checked against the value PyPI publishes.
2. Read ``squad_shifts/squaddev_v1.1.json`` from the tarball with ``tarfile``
   (no extraction). It is SQuAD v1.1 dev in the usual SQuAD layout
   (``data`` -> articles -> ``paragraphs`` -> ``qas``), plus a ``canary``.
   BIG-bench dropped 5 of the 10,570 questions and some gold answers that span
   a sentence boundary (listed in ``squaddev_v1.1_removed.json``); we use the
   file as it is.
3. Pick the articles: the 48 titles, sorted, are shuffled with
   ``random.Random(seed)``; walking that order, an article is taken if the
   running paragraph total stays at most ``MAX_PARAGRAPHS`` (400), until
   ``N_ARTICLES`` (8) are taken. The total must come out at least
   ``MIN_PARAGRAPHS`` (250).
4. Corpus: every paragraph of the chosen articles (text stripped of outer
   whitespace), in source order, id ``<article-slug>-pNN`` where the slug is
   the SQuAD title lower-cased with runs of non-alphanumerics turned into
   ``-`` and NN the 0-based paragraph position in the article. ``title`` is
   the SQuAD title with ``_`` shown as a space.
5. Questions: a question is eligible if its first gold answer (stripped) has at
   most ``MAX_ANSWER_WORDS`` (6) whitespace-separated words. ``answers`` is
   the stripped gold answers, duplicates removed, first-seen order; ``answer``
   is the first of them. A question whose text repeats an earlier one on the
   chosen articles (ignoring case, outer whitespace and a final ``?``) is
   dropped; SQuAD has a few such repeats under two ids. Per paragraph, the
   eligible questions (sorted by id)
   are shuffled with the same rng and at most ``MAX_PER_PARAGRAPH`` (2) are
   kept.
6. Split by paragraph: the paragraphs that kept a question are shuffled (after
   sorting by corpus id) and dealt out to train, then dev, then test, each
   paragraph giving all its kept questions to one split (when a split needs
   only one more question, a paragraph gives it one and its other question is
   dropped), until train/dev/test hold 240/40/120. So no paragraph has
   questions in two splits. Paragraphs left over are not used for questions
   (they stay in the corpus).
7. Check that every answer occurs verbatim in its paragraph, then write
   ``data/corpus.jsonl`` (``id``, ``title``, ``text``),
   ``data/{train,dev,test}.jsonl`` (``id``, ``question``, ``answer``,
   ``answers``, ``doc_id``; in source order) and ``data/SOURCE.json``
   (provenance, checksums, canary, choices, counts).

Question ids are ``squad-<SQuAD question id>``, so every row can be looked up
in the original SQuAD v1.1 dev file.

The output is deterministic: running the script again gives byte-identical
files.

Usage::

    python suites/squad_qa/build_data.py
    python suites/squad_qa/build_data.py --sdist /path/to/bigbench-1.0.0.tar.gz
"""

from __future__ import annotations

import json
import random
import re
import sys
from collections import Counter
from pathlib import Path

from harness.suite.bigbench import PACKAGE, SDIST_FILENAME, VERSION, checked_sha256, read_member, run_cli, sha256_bytes

HERE = Path(__file__).resolve().parent


TASK_DIR = f"{PACKAGE}-{VERSION}/bigbench/benchmark_tasks/squad_shifts"
SQUAD_MEMBER = f"{TASK_DIR}/squaddev_v1.1.json"

DEFAULT_SEED = 13
N_ARTICLES = 8
MIN_PARAGRAPHS, MAX_PARAGRAPHS = 250, 400
MAX_ANSWER_WORDS = 6
MAX_PER_PARAGRAPH = 2
SPLIT_SIZES = {"train": 240, "dev": 40, "test": 120}  # dealt in this order

DEFAULT_OUT_DIR = HERE / "data"


def slugify(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def choose_articles(articles: list[dict], rng: random.Random) -> list[dict]:
    """Seeded pick of N_ARTICLES articles with MIN..MAX_PARAGRAPHS paragraphs in all, in source order."""
    order = sorted(a["title"] for a in articles)
    rng.shuffle(order)
    size = {a["title"]: len(a["paragraphs"]) for a in articles}
    chosen, total = set(), 0
    for title in order:
        if len(chosen) == N_ARTICLES:
            break
        if total + size[title] <= MAX_PARAGRAPHS:
            chosen.add(title)
            total += size[title]
    if len(chosen) < N_ARTICLES or total < MIN_PARAGRAPHS:
        sys.exit(f"error: article choice gave {len(chosen)} articles / {total} paragraphs")
    return [a for a in articles if a["title"] in chosen]


def build_corpus(articles: list[dict]) -> tuple[list[dict], list[dict]]:
    """Return (corpus rows, candidate questions with their source position)."""
    corpus, questions = [], []
    slugs = [slugify(a["title"]) for a in articles]
    if len(set(slugs)) != len(slugs):
        sys.exit(f"error: article slugs collide: {slugs}")
    for art_pos, (article, slug) in enumerate(zip(articles, slugs, strict=True)):
        if len(article["paragraphs"]) > 100:
            sys.exit(f"error: {article['title']} has more than 100 paragraphs; pNN ids would not sort")
        for p_idx, paragraph in enumerate(article["paragraphs"]):
            doc_id = f"{slug}-p{p_idx:02d}"
            text = paragraph["context"].strip()
            corpus.append({"id": doc_id, "title": article["title"].replace("_", " "), "text": text})
            for q_idx, qa in enumerate(paragraph["qas"]):
                answers = list(dict.fromkeys(a["text"].strip() for a in qa["answers"]))
                answers = [a for a in answers if a]
                if not answers:
                    continue
                questions.append(
                    {
                        "pos": (art_pos, p_idx, q_idx),
                        "id": f"squad-{qa['id']}",
                        "question": qa["question"].strip(),
                        "answer": answers[0],
                        "answers": answers,
                        "doc_id": doc_id,
                    }
                )
    return corpus, questions


def question_key(text: str) -> str:
    return text.strip().rstrip("?").strip().lower()


def pick_questions(questions: list[dict], rng: random.Random) -> tuple[dict[str, list[dict]], int, int]:
    """Keep at most MAX_PER_PARAGRAPH short-answer questions per paragraph.

    Returns ({doc_id: [q]}, number of eligible questions, number of repeated questions dropped)."""
    by_doc: dict[str, list[dict]] = {}
    eligible, repeats, seen = 0, 0, set()
    for q in questions:  # in source order
        key = question_key(q["question"])
        if key in seen:
            repeats += 1
            continue
        seen.add(key)
        if len(q["answer"].split()) <= MAX_ANSWER_WORDS and q["question"]:
            by_doc.setdefault(q["doc_id"], []).append(q)
            eligible += 1
    kept = {}
    for doc_id in sorted(by_doc):
        pool = sorted(by_doc[doc_id], key=lambda q: q["id"])
        rng.shuffle(pool)
        kept[doc_id] = sorted(pool[:MAX_PER_PARAGRAPH], key=lambda q: q["pos"])
    return kept, eligible, repeats


def split_by_paragraph(kept: dict[str, list[dict]], rng: random.Random) -> tuple[dict[str, list[dict]], dict]:
    docs = sorted(kept)
    rng.shuffle(docs)
    splits: dict[str, list[dict]] = {split: [] for split in SPLIT_SIZES}
    docs_of: dict[str, set[str]] = {split: set() for split in SPLIT_SIZES}
    it = iter(docs)
    for split, size in SPLIT_SIZES.items():
        while len(splits[split]) < size:
            doc_id = next(it, None)
            if doc_id is None:
                sys.exit(f"error: ran out of paragraphs while filling {split}")
            splits[split].extend(kept[doc_id][: size - len(splits[split])])
            docs_of[split].add(doc_id)
    for split in splits:
        splits[split].sort(key=lambda q: q["pos"])
    return splits, {
        "paragraphs_per_split": {s: len(d) for s, d in docs_of.items()},
        "paragraphs_unused": len(docs) - sum(len(d) for d in docs_of.values()),
    }


def check(corpus: list[dict], splits: dict[str, list[dict]]) -> None:
    text = {row["id"]: row["text"] for row in corpus}
    seen_ids, doc_split = set(), {}
    for split, rows in splits.items():
        for q in rows:
            if q["id"] in seen_ids:
                sys.exit(f"error: question {q['id']} is in two splits")
            seen_ids.add(q["id"])
            for ans in q["answers"]:
                if ans not in text[q["doc_id"]]:
                    sys.exit(f"error: {q['id']}: answer {ans!r} not in {q['doc_id']}")
            if doc_split.setdefault(q["doc_id"], split) != split:
                sys.exit(f"error: paragraph {q['doc_id']} has questions in two splits")
    per_doc = Counter(q["doc_id"] for rows in splits.values() for q in rows)
    if max(per_doc.values()) > MAX_PER_PARAGRAPH:
        sys.exit("error: too many questions for one paragraph")


def write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def build(sdist: Path, out_dir: Path, seed: int) -> None:
    sdist_sha = checked_sha256(sdist)

    raw = read_member(sdist, SQUAD_MEMBER)
    squad = json.loads(raw.decode("utf-8"))
    rng = random.Random(seed)
    articles = choose_articles(squad["data"], rng)
    corpus, questions = build_corpus(articles)
    kept, eligible, repeats = pick_questions(questions, rng)
    splits, split_info = split_by_paragraph(kept, rng)
    check(corpus, splits)

    out_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl(out_dir / "corpus.jsonl", corpus)
    fields = ("id", "question", "answer", "answers", "doc_id")
    for split, rows in splits.items():
        write_jsonl(out_dir / f"{split}.jsonl", [{k: q[k] for k in fields} for q in rows])

    words = [len(row["text"].split()) for row in corpus]
    source = {
        "description": "Extractive question answering over Wikipedia paragraphs, cut from SQuAD v1.1 dev "
        "as shipped in the BIG-bench squad_shifts task",
        "source": {
            "package": PACKAGE,
            "version": VERSION,
            "sdist_filename": SDIST_FILENAME,
            "sdist_sha256": sdist_sha,
            "path_in_sdist": SQUAD_MEMBER,
            "file_sha256": sha256_bytes(raw),
            "file_version": squad.get("version"),
            "task_name": "squad_shifts",
            "note": "BIG-bench's copy of SQuAD v1.1 dev lacks 5 of the original 10,570 questions and some "
            "gold answers that span sentences; see squaddev_v1.1_removed.json in the same folder",
        },
        "upstream": {
            "dataset": "SQuAD v1.1 (dev set)",
            "url": "https://rajpurkar.github.io/SQuAD-explorer/",
            "citation": "Rajpurkar, Zhang, Lopyrev and Liang, 2016. SQuAD: 100,000+ Questions for Machine "
            "Comprehension of Text. EMNLP 2016. arXiv:1606.05250",
            "text_from": "English Wikipedia articles (paragraphs as captured by SQuAD in 2016)",
        },
        "licence": {
            "squad": "CC BY-SA 4.0 (https://creativecommons.org/licenses/by-sa/4.0/); this cut is shared "
            "under the same licence",
            "bigbench": "Apache-2.0",
        },
        "canary": squad["canary"],
        "processing": {
            "seed": seed,
            "articles": f"sorted titles shuffled with random.Random(seed); taken in that order while the "
            f"paragraph total stays <= {MAX_PARAGRAPHS}, until {N_ARTICLES}",
            "corpus": "every paragraph of the chosen articles, context stripped; id <slug>-pNN, NN = 0-based "
            "paragraph index within the article",
            "repeated_questions": "a question text seen earlier on the chosen articles (case, outer whitespace "
            "and final '?' ignored) is dropped",
            "eligible_question": f"first gold answer has <= {MAX_ANSWER_WORDS} words",
            "answers": "gold answers stripped, distinct, first-seen order; answer = answers[0]",
            "per_paragraph": f"eligible questions sorted by id, shuffled, first {MAX_PER_PARAGRAPH} kept",
            "split": "paragraphs sorted by id, shuffled, dealt to train, dev, test in turn; a paragraph's "
            "questions all go to one split",
            "split_sizes": SPLIT_SIZES,
            "id_scheme": "squad-<SQuAD question id>",
        },
        "articles": [
            {
                "squad_title": a["title"],
                "title": a["title"].replace("_", " "),
                "slug": slugify(a["title"]),
                "paragraphs": len(a["paragraphs"]),
                "questions_in_source": sum(len(p["qas"]) for p in a["paragraphs"]),
                "questions_used": {
                    split: sum(1 for q in rows if q["doc_id"].startswith(slugify(a["title"]) + "-p"))
                    for split, rows in splits.items()
                },
            }
            for a in articles
        ],
        "counts": {
            "articles_in_file": len(squad["data"]),
            "questions_in_file": sum(len(p["qas"]) for a in squad["data"] for p in a["paragraphs"]),
            "corpus_paragraphs": len(corpus),
            "corpus_words_mean": round(sum(words) / len(words), 1),
            "corpus_words_min_max": [min(words), max(words)],
            "questions_on_chosen_articles": len(questions),
            "repeated_questions_dropped": repeats,
            "questions_eligible": eligible,
            "paragraphs_with_eligible_questions": len(kept),
            "questions_kept_per_paragraph_pool": sum(len(v) for v in kept.values()),
            **split_info,
            "splits": {split: len(rows) for split, rows in splits.items()},
        },
    }
    with open(out_dir / "SOURCE.json", "w", encoding="utf-8", newline="\n") as handle:
        handle.write(json.dumps(source, ensure_ascii=False, indent=2) + "\n")

    print(f"sdist: {SDIST_FILENAME} sha256={sdist_sha}")
    print(f"articles: {', '.join(a['title'] for a in articles)}")
    print(f"corpus: {len(corpus)} paragraphs, {sum(words) / len(words):.1f} words on average")
    print(
        f"questions: {len(questions)} on these articles, {repeats} repeats dropped, "
        f"{eligible} with answers <= {MAX_ANSWER_WORDS} words"
    )
    print(
        "splits: "
        + ", ".join(f"{s} {len(r)} ({split_info['paragraphs_per_split'][s]} paragraphs)" for s, r in splits.items())
    )
    print(f"wrote {out_dir}")


def main(argv: list[str] | None = None) -> None:
    run_cli(build, __doc__, DEFAULT_OUT_DIR, DEFAULT_SEED, "seed for the article choice and the split", argv)


if __name__ == "__main__":
    main()
