#!/usr/bin/env python3
"""Build the data for the ``e2e_nlg`` suite: restaurant descriptions written from attribute lists.

The meaning representations (MRs) and human references come from the E2E NLG dataset (Novikova, Dušek and
Rieser, 2017, arXiv:1706.09254) in its cleaned form (Dušek, Howcroft and Rieser, 2019) as GEM ships it, and
as BIG-bench ships GEM's ``e2e_nlg`` task. We read it straight out of the ``bigbench==1.0.0`` source
distribution on PyPI; bigbench itself is never installed. The download and checksum helpers come from
``harness.suite.bigbench``, so all suites fetch and check the very same file the same way.

Steps:

1. Get the sdist: use ``--sdist PATH`` if given, otherwise
   ``python -m pip download bigbench==1.0.0 --no-deps`` into a temporary
   directory (if pip fails, as recent pip versions do on this sdist, pip 23.2.1
   is run from its wheel instead; see the quickstart script). Its sha256 is
   checked against the value PyPI publishes.
2. Read ``gem/e2e_nlg/task.json`` from the tarball with ``tarfile`` (no
   extraction). It holds 1,000 examples, one (MR, reference) pair each
   (``input`` like ``name: Blue Spice, eatType: coffee shop, area: city centre``,
   ``target`` one human sentence or two), the first 1,000 rows of GEM's test
   split (``comment`` ``e2e_nlg-test-N``). An MR with several references
   appears on several rows, not always adjacent.
3. Group the rows by MR (the ``input`` string exactly as written). Per MR,
   ``references`` is its references (outer whitespace stripped), duplicates
   removed, in source order; the MR's id is that of its first row.
4. Group the MRs into families: MRs that are equal once their ``eatType``
   attribute is removed. The file holds many such pairs and triples whose
   references are word-for-word copies with only the venue type swapped
   (``Blue Spice is a pub ...`` / ``Blue Spice is a restaurant ...``), so an
   MR family must not straddle two splits, or test answers would be in train.
5. Split by family: the families (sorted by key) are shuffled with
   ``random.Random(seed)``; test, then dev, take families in that order,
   skipping any family that would overshoot, until test holds ``TEST_MRS``
   (100) MRs and dev ``DEV_MRS`` (40). Every other family goes to train.
   Dev and test have one case per MR: ``target`` is its first reference and
   ``references`` all of them.
6. Train has one case per (MR, reference) pair, as E2E systems are trained:
   ``target`` is that reference, ``references`` all references of its MR. The
   train MRs are sorted by id and shuffled, the references of each are
   shuffled, and rows are taken round-robin (each MR's first pick, then each
   MR's second pick, ...) until ``TRAIN_ROWS`` (300) are taken, so MRs with
   30 references do not crowd out those with one.
7. Check that no MR family is in two splits and no test MR occurs in train or
   dev, then write ``data/{train,dev,test}.jsonl`` (``id``, ``mr``, ``target``,
   ``references``; in source order) and ``data/SOURCE.json`` (provenance,
   checksums, canary, choices, counts).

Ids are ``e2e-NNNN``, NNNN being the 0-based position in ``task.json``'s
``examples`` of the row whose reference is ``target``; for dev and test that is
the MR's first row.

The output is deterministic: running the script again gives byte-identical
files.

Usage::

    python suites/e2e_nlg/build_data.py
    python suites/e2e_nlg/build_data.py --sdist /path/to/bigbench-1.0.0.tar.gz
"""

from __future__ import annotations

import json
import random
import sys
from collections import Counter
from pathlib import Path

from harness.suite.bigbench import PACKAGE, SDIST_FILENAME, VERSION, checked_sha256, read_member, run_cli, sha256_bytes

HERE = Path(__file__).resolve().parent


TASK_MEMBER = f"{PACKAGE}-{VERSION}/bigbench/benchmark_tasks/gem/e2e_nlg/task.json"
GEM_MEMBER = f"{PACKAGE}-{VERSION}/bigbench/benchmark_tasks/gem/task.json"

DEFAULT_SEED = 13
TEST_MRS, DEV_MRS = 100, 40  # one case per MR; dealt in this order
TRAIN_ROWS = 300  # one case per (MR, reference)
FAMILY_ATTRIBUTE = "eatType"  # MRs equal but for this attribute form one family
ID_FORMAT = "e2e-{:04d}"

DEFAULT_OUT_DIR = HERE / "data"


def parse_mr(mr: str) -> list[tuple[str, str]]:
    """``name: X, eatType: Y`` -> [("name", "X"), ("eatType", "Y")] (attributes in written order)."""
    pairs = []
    for part in mr.split(", "):
        key, sep, value = part.partition(": ")
        if not sep or not key or not value:
            sys.exit(f"error: cannot parse MR {mr!r} (part {part!r})")
        pairs.append((key, value))
    return pairs


def family_key(mr: str) -> str:
    return ", ".join(f"{k}: {v}" for k, v in parse_mr(mr) if k != FAMILY_ATTRIBUTE)


def group_rows(examples: list[dict]) -> tuple[list[dict], int]:
    """MRs in order of first appearance: {"index", "mr", "rows": [(index, reference)], "family"}.

    Rows repeating an (MR, reference) pair already seen are dropped; returns (mrs, number dropped)."""
    by_mr: dict[str, dict] = {}
    repeats = 0
    for index, example in enumerate(examples):
        mr, ref = example["input"].strip(), example["target"].strip()
        if not mr or not ref:
            sys.exit(f"error: example {index} has an empty input or target")
        entry = by_mr.setdefault(mr, {"index": index, "mr": mr, "rows": [], "family": family_key(mr)})
        if any(ref == seen for _, seen in entry["rows"]):
            repeats += 1
            continue
        entry["rows"].append((index, ref))
    return list(by_mr.values()), repeats


def deal_families(mrs: list[dict], rng: random.Random) -> tuple[dict[str, list[dict]], list[dict]]:
    """Seeded split of whole MR families: test and dev get exactly TEST_MRS / DEV_MRS MRs, train the rest.

    Returns ({"test": [mr], "dev": [mr], "train": [mr]}, families in dealing order)."""
    families: dict[str, list[dict]] = {}
    for mr in mrs:
        families.setdefault(mr["family"], []).append(mr)
    order = sorted(families)
    rng.shuffle(order)
    taken: set[str] = set()
    out: dict[str, list[dict]] = {"test": [], "dev": [], "train": []}
    for split, size in (("test", TEST_MRS), ("dev", DEV_MRS)):
        for key in order:
            if len(out[split]) == size:
                break
            if key not in taken and len(out[split]) + len(families[key]) <= size:
                out[split].extend(families[key])
                taken.add(key)
        if len(out[split]) != size:
            sys.exit(f"error: could only fill {len(out[split])} of {size} {split} MRs with whole families")
    for key in order:
        if key not in taken:
            out["train"].extend(families[key])
    for members in out.values():
        members.sort(key=lambda m: m["index"])
    return out, [families[key] for key in order]


def pick_train_rows(train_mrs: list[dict], rng: random.Random) -> list[dict]:
    """TRAIN_ROWS (MR, reference) rows taken round-robin over the shuffled train MRs."""
    available = sum(len(m["rows"]) for m in train_mrs)
    if available < TRAIN_ROWS:
        sys.exit(f"error: train MRs have {available} distinct references, {TRAIN_ROWS} are needed")
    order = list(train_mrs)  # sorted by index already
    rng.shuffle(order)
    pools = []
    for mr in order:
        rows = list(mr["rows"])
        rng.shuffle(rows)
        pools.append((mr, rows))
    picked: list[dict] = []
    depth = 0
    while len(picked) < TRAIN_ROWS:
        for mr, rows in pools:
            if depth < len(rows) and len(picked) < TRAIN_ROWS:
                index, ref = rows[depth]
                picked.append(
                    {
                        "index": index,
                        "mr": mr["mr"],
                        "target": ref,
                        "references": [r for _, r in mr["rows"]],
                        "family": mr["family"],
                    }
                )
        depth += 1
    picked.sort(key=lambda row: row["index"])
    return picked


def mr_case(mr: dict) -> dict:
    index, target = mr["rows"][0]
    return {
        "index": index,
        "mr": mr["mr"],
        "target": target,
        "references": [r for _, r in mr["rows"]],
        "family": mr["family"],
    }


def check(splits: dict[str, list[dict]], mrs: list[dict]) -> None:
    family_split: dict[str, str] = {}
    ids: set[int] = set()
    for split, rows in splits.items():
        for row in rows:
            if row["index"] in ids:
                sys.exit(f"error: row {row['index']} used twice")
            ids.add(row["index"])
            if family_split.setdefault(row["family"], split) != split:
                sys.exit(f"error: MR family {row['family']!r} is in {family_split[row['family']]} and {split}")
            if row["target"] != row["references"][0] and split != "train":
                sys.exit(f"error: {split} row {row['index']}: target is not the first reference")
            if row["target"] not in row["references"]:
                sys.exit(f"error: row {row['index']}: target not among the references")
    for split in ("dev", "test"):
        seen = [row["mr"] for row in splits[split]]
        if len(set(seen)) != len(seen):
            sys.exit(f"error: an MR has two cases in {split}")
    known = {row["mr"] for split in ("train", "dev") for row in splits[split]}
    if any(row["mr"] in known for row in splits["test"]):
        sys.exit("error: a test MR is also in train or dev")
    if len({m["mr"] for m in mrs}) != len(mrs):
        sys.exit("error: MR grouping failed")


def write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        for row in rows:
            out = {
                "id": ID_FORMAT.format(row["index"]),
                "mr": row["mr"],
                "target": row["target"],
                "references": row["references"],
            }
            handle.write(json.dumps(out, ensure_ascii=False) + "\n")


def build(sdist: Path, out_dir: Path, seed: int) -> None:
    sdist_sha = checked_sha256(sdist)

    raw = read_member(sdist, TASK_MEMBER)
    task = json.loads(raw.decode("utf-8"))
    gem = json.loads(read_member(sdist, GEM_MEMBER).decode("utf-8"))
    examples = task["examples"]
    if len(examples) > 10000:
        sys.exit("error: more than 10,000 examples; e2e-NNNN ids would not sort")
    comments = [e.get("comment") for e in examples]
    if comments != [f"e2e_nlg-test-{i}" for i in range(len(examples))]:
        sys.exit("error: the examples are not GEM's e2e_nlg test rows 0..N-1 in order")

    mrs, repeats = group_rows(examples)
    rng = random.Random(seed)
    split_mrs, families = deal_families(mrs, rng)
    splits = {
        "train": pick_train_rows(split_mrs["train"], rng),
        "dev": [mr_case(m) for m in split_mrs["dev"]],
        "test": [mr_case(m) for m in split_mrs["test"]],
    }
    check(splits, mrs)

    out_dir.mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        write_jsonl(out_dir / f"{split}.jsonl", rows)

    words = [len(ref.split()) for m in mrs for _, ref in m["rows"]]
    attributes = Counter(k for m in mrs for k, _ in parse_mr(m["mr"]))
    source = {
        "description": "Data-to-text generation: restaurant descriptions from E2E NLG meaning representations, "
        "cut from GEM's cleaned E2E test set as shipped in the BIG-bench gem/e2e_nlg task",
        "source": {
            "package": PACKAGE,
            "version": VERSION,
            "sdist_filename": SDIST_FILENAME,
            "sdist_sha256": sdist_sha,
            "path_in_sdist": TASK_MEMBER,
            "task_json_sha256": sha256_bytes(raw),
            "task_name": task.get("name"),
            "task_description": task.get("description"),
            "collection": f"{gem.get('name')}: {gem.get('description')}",
            "note": "the 1,000 examples are GEM's e2e_nlg test rows 0-999 (comment e2e_nlg-test-N), one "
            "(MR, reference) pair each; the task folder has no README and task.json names neither "
            "the source dataset nor a licence",
        },
        "upstream": {
            "dataset": "E2E NLG Challenge dataset, cleaned version (test set), via GEM",
            "url": "https://github.com/tuetschek/e2e-cleaning",
            "citation": [
                (
                    "Novikova, Dušek and Rieser, 2017. The E2E Dataset: New Challenges For End-to-End Generation. "
                    "SIGDIAL 2017. arXiv:1706.09254"
                ),
                (
                    "Dušek, Howcroft and Rieser, 2019. Semantic Noise Matters for Neural Natural Language "
                    "Generation. INLG 2019. arXiv:1911.03905"
                ),
                (
                    "Gehrmann et al., 2021. The GEM Benchmark: Natural Language Generation, its Evaluation and "
                    "Metrics. GEM workshop 2021. arXiv:2102.01672"
                ),
            ],
        },
        "licence": {
            "e2e": "CC BY-SA 4.0 (https://creativecommons.org/licenses/by-sa/4.0/); this cut is shared under the "
            "same licence",
            "bigbench": "Apache-2.0",
        },
        "canary": task["canary"],
        "processing": {
            "seed": seed,
            "mr": "task.json input, stripped, kept as written (attribute: value, ...)",
            "references": "the targets of all rows with that exact MR, stripped, duplicates dropped, source order",
            "family": f"MRs equal once the {FAMILY_ATTRIBUTE} attribute is removed; a family never straddles "
            "two splits",
            "split": f"families sorted by key, shuffled with random.Random(seed); test then dev take families "
            f"in that order, skipping one that would overshoot, until {TEST_MRS} / {DEV_MRS} MRs; "
            "every other family goes to train",
            "dev_test": "one case per MR: target = its first reference, references = all",
            "train": f"one case per (MR, reference): train MRs sorted by id and shuffled, each MR's references "
            f"shuffled, rows taken round-robin until {TRAIN_ROWS}; references = all of the MR's",
            "split_sizes": {"train": TRAIN_ROWS, "dev": DEV_MRS, "test": TEST_MRS},
            "id_scheme": "e2e-NNNN, NNNN = 0-based position in task.json 'examples' of the row whose "
            "reference is target (for dev/test the MR's first row)",
        },
        "counts": {
            "examples_in_task_json": len(examples),
            "repeated_mr_reference_pairs_dropped": repeats,
            "mrs": len(mrs),
            "mr_families": len(families),
            "references_per_mr": dict(sorted(Counter(len(m["rows"]) for m in mrs).items())),
            "names": dict(sorted(Counter(dict(parse_mr(m["mr"]))["name"] for m in mrs).items())),
            "mrs_with_attribute": dict(sorted(attributes.items())),
            "mrs_with_a_repeated_attribute": sum(
                1 for m in mrs if len({k for k, _ in parse_mr(m["mr"])}) != len(parse_mr(m["mr"]))
            ),
            "reference_words_mean": round(sum(words) / len(words), 1),
            "reference_words_min_max": [min(words), max(words)],
            "splits": {
                split: {
                    "cases": len(rows),
                    "mrs": len({r["mr"] for r in rows}),
                    "families": len({r["family"] for r in rows}),
                    "references": sum(len(r["references"]) for r in {r["mr"]: r for r in rows}.values()),
                }
                for split, rows in splits.items()
            },
            "train_mrs_not_used": len(split_mrs["train"]) - len({r["mr"] for r in splits["train"]}),
            "train_references_not_used": sum(len(m["rows"]) for m in split_mrs["train"]) - TRAIN_ROWS,
        },
    }
    with open(out_dir / "SOURCE.json", "w", encoding="utf-8", newline="\n") as handle:
        handle.write(json.dumps(source, ensure_ascii=False, indent=2) + "\n")

    print(f"sdist: {SDIST_FILENAME} sha256={sdist_sha}")
    print(
        f"task.json: {len(examples)} examples, {repeats} repeated (MR, reference) pairs dropped, "
        f"{len(mrs)} MRs in {len(families)} families"
    )
    print(
        "splits: "
        + ", ".join(
            f"{s} {c['cases']} ({c['mrs']} MRs, {c['families']} families)"
            for s, c in source["counts"]["splits"].items()
        )
    )
    print(f"wrote {out_dir}")


def main(argv: list[str] | None = None) -> None:
    run_cli(build, __doc__, DEFAULT_OUT_DIR, DEFAULT_SEED, "seed for the split", argv)


if __name__ == "__main__":
    main()
