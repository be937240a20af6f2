#!/usr/bin/env python3
"""Build the data for the ``quickstart`` suite: SNIPS intent classification.

The examples come from the BIG-bench ``intent_recognition`` task, which takes
its utterances from the SNIPS NLU benchmark (Coucke et al., 2018,
arXiv:1805.10190). We read the task straight out of the ``bigbench==1.0.0``
source distribution on PyPI; bigbench itself is never installed.

Steps:

1. Get the sdist: use ``--sdist PATH`` if given, otherwise
   ``python -m pip download bigbench==1.0.0 --no-deps`` into a temporary
   directory (if pip fails, as recent pip versions do on this sdist, the same
   file is fetched from PyPI's file host). Its sha256 is checked against the
   value PyPI publishes.
2. Read ``task.json`` from the tarball with ``tarfile`` (no extraction).
3. For each example: strip the ``"Utterance: "`` prefix; the label is the one
   key of ``target_scores`` whose score is 1.
4. Drop exact duplicate utterances (first occurrence kept; an utterance that
   appears with two different labels is dropped altogether).
5. Stratified, seeded split into train/dev/test (300/50/150). For each split
   the per-label counts are the largest-remainder rounding of
   ``split_size * label_share``, so every split mirrors the label distribution
   of the source as closely as whole numbers allow. Within each label the
   examples are sorted, shuffled with ``random.Random(seed)``, and dealt out to
   train, then dev, then test. Examples left over are not used.
6. Write ``data/{train,dev,test}.jsonl`` (``id``, ``text``, ``label``; sorted by
   id) and ``data/SOURCE.json`` (provenance, checksums, canary, counts).

Ids are ``snips-NNNN`` where NNNN is the example's 0-based position in
``task.json``'s ``examples`` list, so ``snips-0000`` is ``examples[0]``.

The output is deterministic: running the script again gives byte-identical
files.

Usage::

    python suites/quickstart/build_data.py
    python suites/quickstart/build_data.py --sdist /path/to/bigbench-1.0.0.tar.gz
"""

from __future__ import annotations

import json
import random
import sys
from collections import Counter
from fractions import Fraction
from pathlib import Path

from harness.suite.bigbench import (
    PACKAGE,
    SDIST_FILENAME,
    VERSION,
    checked_sha256,
    read_member,
    run_cli,
    sha256_bytes,
)

TASK_MEMBER = f"{PACKAGE}-{VERSION}/bigbench/benchmark_tasks/intent_recognition/task.json"
INPUT_PREFIX = "Utterance: "

DEFAULT_SEED = 13
SPLIT_SIZES = {"train": 300, "dev": 50, "test": 150}  # written in this order
ID_FORMAT = "snips-{:04d}"

DEFAULT_OUT_DIR = Path(__file__).resolve().parent / "data"


def read_task_json(sdist: Path) -> bytes:
    """Return the raw bytes of intent_recognition/task.json inside the sdist."""
    return read_member(sdist, TASK_MEMBER)


def parse_examples(task: dict) -> list[dict]:
    """Turn BIG-bench examples into {"index", "text", "label"} records."""
    records = []
    for index, example in enumerate(task["examples"]):
        raw = example["input"]
        if not raw.startswith(INPUT_PREFIX):
            sys.exit(f"error: example {index} does not start with {INPUT_PREFIX!r}: {raw!r}")
        positives = [label for label, score in example["target_scores"].items() if score == 1]
        if len(positives) != 1:
            sys.exit(f"error: example {index} has {len(positives)} labels with score 1")
        records.append({"index": index, "text": raw[len(INPUT_PREFIX) :], "label": positives[0]})
    return records


def drop_duplicates(records: list[dict]) -> tuple[list[dict], int, int]:
    """Drop exact duplicate texts.

    Returns (kept records, number of same-label repeats dropped, number of
    records dropped because their text occurs with more than one label).
    """
    labels_by_text: dict[str, set[str]] = {}
    for rec in records:
        labels_by_text.setdefault(rec["text"], set()).add(rec["label"])
    conflicting = {text for text, labels in labels_by_text.items() if len(labels) > 1}

    kept, seen, repeats, conflicts = [], set(), 0, 0
    for rec in records:
        if rec["text"] in conflicting:
            conflicts += 1
        elif rec["text"] in seen:
            repeats += 1
        else:
            seen.add(rec["text"])
            kept.append(rec)
    return kept, repeats, conflicts


def allocate(label_counts: dict[str, int], size: int) -> dict[str, int]:
    """Largest-remainder apportionment of `size` over labels, proportional to
    `label_counts`. Ties in the remainder go to the label that sorts first."""
    total = sum(label_counts.values())
    quotas = {label: Fraction(size * n, total) for label, n in label_counts.items()}
    alloc = {label: int(q) for label, q in quotas.items()}  # floor (quotas are >= 0)
    leftover = size - sum(alloc.values())
    by_remainder = sorted(quotas, key=lambda label: (-(quotas[label] - alloc[label]), label))
    for label in by_remainder[:leftover]:
        alloc[label] += 1
    return alloc


def stratified_split(records: list[dict], seed: int) -> dict[str, list[dict]]:
    by_label: dict[str, list[dict]] = {}
    for rec in records:
        by_label.setdefault(rec["label"], []).append(rec)
    label_counts = {label: len(recs) for label, recs in by_label.items()}
    plan = {split: allocate(label_counts, size) for split, size in SPLIT_SIZES.items()}

    rng = random.Random(seed)
    splits: dict[str, list[dict]] = {split: [] for split in SPLIT_SIZES}
    for label in sorted(by_label):
        pool = sorted(by_label[label], key=lambda rec: (rec["text"], rec["index"]))
        rng.shuffle(pool)
        needed = sum(plan[split][label] for split in SPLIT_SIZES)
        if needed > len(pool):
            sys.exit(f"error: label {label} has {len(pool)} examples, the split needs {needed}")
        start = 0
        for split in SPLIT_SIZES:
            take = plan[split][label]
            splits[split].extend(pool[start : start + take])
            start += take
    for split in splits:
        splits[split].sort(key=lambda rec: rec["index"])
    return splits


def write_jsonl(path: Path, records: list[dict]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        for rec in records:
            row = {"id": ID_FORMAT.format(rec["index"]), "text": rec["text"], "label": rec["label"]}
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def label_counter(records: list[dict]) -> dict[str, int]:
    return dict(sorted(Counter(rec["label"] for rec in records).items()))


def print_table(splits: dict[str, list[dict]], labels: list[str]) -> None:
    names = list(splits)
    width = max(len(label) for label in labels + ["total"])
    print(f"{'label':<{width}}  " + "  ".join(f"{name:>5}" for name in names))
    counts = {name: Counter(rec["label"] for rec in recs) for name, recs in splits.items()}
    for label in labels:
        print(f"{label:<{width}}  " + "  ".join(f"{counts[name][label]:>5}" for name in names))
    print(f"{'total':<{width}}  " + "  ".join(f"{len(splits[name]):>5}" for name in names))


def build(sdist: Path, out_dir: Path, seed: int) -> None:
    sdist_sha = checked_sha256(sdist)

    task_bytes = read_task_json(sdist)
    task = json.loads(task_bytes.decode("utf-8"))
    records = parse_examples(task)
    unique, repeats, conflicts = drop_duplicates(records)
    splits = stratified_split(unique, seed)

    out_dir.mkdir(parents=True, exist_ok=True)
    for split, recs in splits.items():
        write_jsonl(out_dir / f"{split}.jsonl", recs)

    used = sum(len(recs) for recs in splits.values())
    source = {
        "description": "SNIPS intent classification, cut from the BIG-bench intent_recognition task",
        "source": {
            "package": PACKAGE,
            "version": VERSION,
            "sdist_filename": SDIST_FILENAME,
            "sdist_sha256": sdist_sha,
            "path_in_sdist": TASK_MEMBER,
            "task_json_sha256": sha256_bytes(task_bytes),
            "task_name": task.get("name"),
        },
        "upstream": {
            "dataset": "SNIPS NLU benchmark",
            "repository": "https://github.com/sonos/nlu-benchmark",
            "citation": "Coucke et al., 2018. Snips Voice Platform: an embedded Spoken Language "
            "Understanding system for private-by-design voice interfaces. arXiv:1805.10190",
        },
        "canary": task["canary"],
        "processing": {
            "input_prefix_stripped": INPUT_PREFIX,
            "label": "the target_scores key with score 1",
            "deduplication": "exact match on the stripped text; first occurrence kept",
            "split": "stratified by label, largest-remainder allocation, random.Random(seed) "
            "shuffle of each label's examples sorted by (text, index)",
            "seed": seed,
            "split_sizes": SPLIT_SIZES,
            "id_scheme": "snips-NNNN, NNNN = 0-based position in task.json 'examples'",
        },
        "counts": {
            "examples_in_task_json": len(records),
            "duplicates_dropped": repeats,
            "conflicting_label_duplicates_dropped": conflicts,
            "unique_examples": len(unique),
            "used": used,
            "unused": len(unique) - used,
            "labels_in_source": label_counter(records),
            "splits": {split: {"total": len(recs), "labels": label_counter(recs)} for split, recs in splits.items()},
        },
    }
    with open(out_dir / "SOURCE.json", "w", encoding="utf-8", newline="\n") as handle:
        handle.write(json.dumps(source, ensure_ascii=False, indent=2) + "\n")

    print(f"sdist: {SDIST_FILENAME} sha256={sdist_sha}")
    print(
        f"task.json: {len(records)} examples, {len(unique)} unique; "
        f"dropped {repeats} exact duplicate(s) and {conflicts} with conflicting labels"
    )
    print(f"wrote {used} examples ({len(unique) - used} unused) to {out_dir}")
    print()
    print_table(splits, sorted(label_counter(records)))


def main(argv: list[str] | None = None) -> None:
    run_cli(build, __doc__, DEFAULT_OUT_DIR, DEFAULT_SEED, "seed for the split", argv)


if __name__ == "__main__":
    main()
