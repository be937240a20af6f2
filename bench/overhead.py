"""Harness overhead without a model: N cases x 3 strategies on the `fake` backend, wall time and peak RSS.

Goals (issue 3): 10,000 cases <= 30 s and <= 500 MB; 20,000 cases <= 2.1x the 10,000 time (no super-linear work).
Run: python bench/overhead.py [--sizes 10000 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import yaml
from _util import parse, run_python, save

LABELS = ["alpha", "beta", "gamma", "delta"]


def make_suite(folder: Path, n: int) -> Path:
    (folder / "data").mkdir(parents=True)
    for split, count in (("train", 200), ("test", n)):
        with (folder / "data" / f"{split}.jsonl").open("w") as fh:
            for i in range(count):
                label = LABELS[i % 4]
                fh.write(
                    json.dumps(
                        {
                            "id": f"{split}-{i}",
                            "text": f"{split} case {i} mentions {label} and more words",
                            "label": label,
                        }
                    )
                    + "\n"
                )
    suite = {
        "name": f"overhead-{n}",
        "seed": 1,
        "task": {
            "instructions": "Pick one of: {labels}.",
            "input_field": "text",
            "target_field": "label",
            "labels": LABELS,
        },
        "data": {"train": "data/train.jsonl", "test": "data/test.jsonl"},
        "backends": [
            {
                "name": "fake",
                "kind": "fake",
                "config": {"rules": [{"pattern": "alpha", "answer": "alpha"}], "default": "beta"},
            }
        ],
        "strategies": [
            {"name": "zero", "kind": "zero_shot"},
            {"name": "few_random", "kind": "few_shot", "config": {"k": 4, "selection": "random"}},
            {"name": "few_balanced", "kind": "few_shot", "config": {"k": 8, "selection": "balanced"}},
        ],
        "scorers": [{"kind": "label_accuracy"}, {"kind": "exact_match"}, {"kind": "token_f1"}],
    }
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def measure(n: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        suite = make_suite(Path(tmp) / "suite", n)
        script = (
            "from harness.run.compare import CompareOptions, compare\n"
            f"record, run = compare({str(suite)!r}, CompareOptions(out=__import__('pathlib').Path({tmp!r}) / 'run'))\n"
            "import json; print('__DATA__' + json.dumps({'model_calls': run.counts.model_calls, 'status': record.status}))\n"
        )
        env = {**os.environ, "HARNESS_HOME": str(Path(tmp) / "home"), "HF_HUB_OFFLINE": "1"}
        out = run_python(script, env=env)
        lines = sum(1 for _ in (Path(tmp) / "run" / "cases.jsonl").open())
    return {"cases": n, "strategies": 3, "result_lines": lines, **out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 20_000])
    args = parse(parser, sizes=[200, 400])
    runs = [measure(n) for n in args.sizes]
    base = runs[0]
    payload = {
        "what": "harness compare on the fake backend: N cases x 3 strategies, fresh process, cold cache",
        "runs": runs,
        "goals": {"wall_s_at_10k": 30, "peak_rss_mb_at_10k": 500, "ratio_20k_over_10k": 2.1},
    }
    if len(runs) > 1:
        payload["ratio_largest_over_first"] = round(runs[-1]["wall_s"] / base["wall_s"], 3)
    save("overhead", payload)


if __name__ == "__main__":
    main()
