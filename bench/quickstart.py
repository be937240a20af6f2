"""The default suite end to end on this machine: cold runs (model set up, empty caches), then warm reruns.

Goals: zero- and few-shot alone cold <= 3 min (issue 3); the whole suite with the LoRA fine-tune cold <= 10 min
and <= 4 GB peak RSS (issue 4); a warm rerun <= 15 s with zero model calls and no training.
The embedded model must already be set up (run `make demo` once, or any `harness compare` on the suite).
Run: python bench/quickstart.py [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from _util import REPO, cut_suite, parse, run_compare, save, smoke

SUITE = REPO / "suites/quickstart/suite.yaml"


def compare(suite: Path, out: Path, env: dict, *extra: str) -> dict:
    result = run_compare(suite, out, *extra, env=env)
    run = json.loads((out / "run.json").read_text())
    result["counts"] = run["options"]["counts"]
    result["status"] = run["status"]
    result["label_accuracy"] = {
        k: round(v["metrics"]["label_accuracy"]["mean"], 4) for k, v in run["strategies"].items()
    }
    lora = run["strategies"].get("lora", {}).get("setup", {}).get("given")
    if lora:
        result["lora"] = {
            "training_wall_s": lora["training"]["wall_s"],
            "dev_scores": lora["dev_scores"],
            "chosen_epoch": lora["chosen"]["epoch"],
            "reused_from_cache": lora["reused_from_cache"],
            "train_tokens_per_s": lora["training"]["train_tokens_per_s"],
        }
    result["wall_s"] = round(result["wall_s"], 2)
    result["peak_rss_mb"] = round(result["peak_rss_mb"], 1)
    return result


def fresh_home(root: Path, models: Path) -> dict:
    home = root / "home"
    home.mkdir(parents=True)
    (home / "models").symlink_to(models)  # the set-up model, but empty response and fine-tune caches
    return {**os.environ, "HARNESS_HOME": str(home), "HF_HUB_OFFLINE": "1", "CI": "1"}


def main() -> None:
    from harness.backends.default_llm import ensure_embedded

    parse(argparse.ArgumentParser(description=__doc__))
    models = ensure_embedded("smollm2-135m-instruct").parent
    with tempfile.TemporaryDirectory() as tmp:
        suite = cut_suite(SUITE.parent, Path(tmp) / "cut", train=28, dev=4, test=4) if smoke() else SUITE
        prompting = (
            None  # smoke: the cold run below answers the same prompts
            if smoke()
            else compare(
                suite,
                Path(tmp) / "a" / "run",
                fresh_home(Path(tmp) / "a", models),
                "--strategies",
                "zero_shot,few_shot",
            )
        )
        env = fresh_home(Path(tmp) / "b", models)
        cold = compare(suite, Path(tmp) / "b" / "run", env)
        resume = compare(suite, Path(tmp) / "b" / "run", env)
        cached = compare(suite, Path(tmp) / "b" / "run-new-folder", env)
    save(
        "quickstart",
        {
            "what": "harness compare suites/quickstart/suite.yaml (150 test cases per strategy), separate processes",
            "cold_zero_and_few_shot_only": prompting,
            "cold_all_strategies_with_lora_training": cold,
            "warm_rerun_same_folder": resume,
            "warm_rerun_new_folder_from_caches": cached,
            "goals": {
                "cold_prompting_wall_s": 180,
                "cold_all_wall_s": 600,
                "cold_all_peak_rss_mb": 4096,
                "warm_wall_s": 15,
                "warm_model_calls": 0,
            },
        },
    )


if __name__ == "__main__":
    main()
