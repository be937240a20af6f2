"""Rebuild general_knowledge.jsonl: BIG-bench's `general_knowledge` task (70 multiple-choice questions) from the
bigbench 1.0.0 sdist, for the fine-tuning forgetting check. Fetched like the example suites' data (harness.suite.bigbench).

Run: python strategies/finetune/forgetting_data/build.py [--sdist PATH]
"""

from __future__ import annotations

import argparse
import json
import tarfile
import tempfile
from pathlib import Path

from harness.suite.bigbench import download_sdist

HERE = Path(__file__).resolve().parent
MEMBER = "bigbench-1.0.0/bigbench/benchmark_tasks/general_knowledge/task.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sdist", type=Path, help="bigbench-1.0.0.tar.gz (downloaded when omitted)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sdist = args.sdist or download_sdist(Path(tmp))
        with tarfile.open(sdist, "r:gz") as tar:
            task = json.loads(tar.extractfile(tar.getmember(MEMBER)).read())
    rows = []
    for i, example in enumerate(task["examples"]):
        choices = list(example["target_scores"])
        answer = next(j for j, c in enumerate(choices) if example["target_scores"][c] == 1)
        rows.append({"id": f"gk-{i:03d}", "question": example["input"], "choices": choices, "answer": answer})
    out = HERE / "general_knowledge.jsonl"
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {len(rows)} questions to {out}")


if __name__ == "__main__":
    main()
