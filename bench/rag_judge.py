"""Judge work per case for the four ragas metrics, beside ragas' own count for the same metrics.

ragas asks, per case with k retrieved contexts: faithfulness 2 (statements, then verdicts), answer relevancy 3
(strictness questions), context precision k (one per context), context recall 1: 6 + k requests. We count the
requests ragas makes through our judge (must equal 6 + k: the metrics are ragas' own) and the calls that reach the
judge model, cold and on a rerun (cache). A scripted `fake` judge answers each step, so the count is exact and
needs no model; the retrieval is real (squad_qa corpus, MiniLM, dense top_k).
Goal (issue 5): judge calls per case <= ragas' count; 0 on a rerun.
Run: python bench/rag_judge.py [--cases 120] [--top-k 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
from pathlib import Path

import yaml
from _util import REPO, parse, run_python, save

SQUAD = REPO / "suites" / "squad_qa" / "data"

JUDGE_RULES = [
    {"pattern": "StatementGeneratorOutput", "answer": '{"statements": ["The answer names it."]}'},
    {
        "pattern": "NLIStatementOutput",
        "answer": '{"statements": [{"statement": "The answer names it.", "reason": "stated", "verdict": 1}]}',
    },
    {
        "pattern": "AnswerRelevanceOutput|ResponseRelevanceOutput",
        "answer": '{"question": "Who or what is it?", "noncommittal": 0}',
    },
    {"pattern": "ContextPrecisionOutput|Verification", "answer": '{"reason": "it helps", "verdict": 1}'},
    {
        "pattern": "ContextRecallOutput|ContextRecallClassifications",
        "answer": '{"classifications": [{"statement": "s", "reason": "r", "attributed": 1}]}',
    },
]

RUN = """
import json
from harness.run.compare import compare, CompareOptions
from pathlib import Path
out = {{}}
for label in ("cold", "rerun"):
    record, run = compare({suite!r}, CompareOptions(out=Path({out!r})))
    ev = record.strategies["rag"].setup.evaluation
    out[label] = {{"judge_calls": run.counts.judge_calls,
                   "per_metric": {{m: v.judge.model_dump(mode="json") for m, v in ev.items()}},
                   "cases": record.strategies["rag"].n_done}}
print("__DATA__" + json.dumps(out))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=120)
    parser.add_argument("--top-k", type=int, default=3)
    args = parse(parser, cases=3)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows = [json.loads(line) for line in (SQUAD / "test.jsonl").read_text().splitlines()][: args.cases]
        (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        suite = {
            "name": "rag-judge-bench",
            "task": {"instructions": "Answer briefly.", "input_field": "question", "target_field": "answer"},
            "data": {"test": "test.jsonl"},
            "backends": [
                # Each case gets its own answer (its gold one), so no two cases share a judge prompt by accident.
                {
                    "name": "answers",
                    "kind": "fake",
                    "config": {
                        "default": "no idea",
                        "rules": [{"pattern": re.escape(r["question"]), "answer": r["answer"]} for r in rows],
                    },
                },
                {"name": "judge", "kind": "fake", "config": {"rules": JUDGE_RULES, "default": "not json"}},
            ],
            "strategies": [
                {
                    "name": "rag",
                    "kind": "rag",
                    "backend": "answers",
                    "config": {"corpus": str(SQUAD / "corpus.jsonl"), "retriever": "dense", "top_k": args.top_k},
                }
            ],
            "scorers": [
                {"kind": "token_f1"},
                *(
                    {"kind": k, "config": {"judge": "judge"}}
                    for k in ("faithfulness", "answer_relevancy", "context_precision", "context_recall")
                ),
            ],
        }
        (folder / "suite.yaml").write_text(yaml.safe_dump(suite))
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HARNESS_HOME": str(folder / "home")}
        data = run_python(RUN.format(suite=str(folder / "suite.yaml"), out=str(folder / "run")), env=env)
    n = data["cold"]["cases"]
    requests = sum(m["requests"] for m in data["cold"]["per_metric"].values())
    ragas_count = 6 + args.top_k
    result = {
        "cases": n,
        "top_k": args.top_k,
        "ragas_requests_per_case_expected": ragas_count,
        "ragas_requests_per_case_measured": round(requests / n, 3),
        "judge_calls_per_case_cold": round(data["cold"]["judge_calls"] / n, 3),
        "judge_calls_rerun": data["rerun"]["judge_calls"],
        "per_metric_cold": data["cold"]["per_metric"],
        "goal": "judge calls per case <= ragas' count (6 + k); 0 on a rerun",
    }
    print(
        f"{n} cases, k={args.top_k}: ragas asks {requests / n:.2f} per case (expected {ragas_count}); "
        f"judge model calls {result['judge_calls_per_case_cold']:.2f} per case cold, {result['judge_calls_rerun']} on rerun"
    )
    save("rag_judge", result)


if __name__ == "__main__":
    main()
