"""What choosing the fine-tune's settings on dev costs, against one training, and what the defaults give.

On the default suite's data (SNIPS intents, 300 train / 50 dev / 150 test, SmolLM2-135M-Instruct, LoRA r=16), only
the fine-tune strategy, each variant cold (empty response and fine-tune caches) in its own process:
  single       the suite's own setting, one training: epochs 3, learning_rate 5e-4 (the baseline)
  defaults     what a user who writes only `tuner: {kind: local}` gets: epochs auto (patience 1, at most 6), 2e-4
  grid         learning_rate [2e-4, 5e-4, 1e-3] x epochs auto (patience 1, at most 6)
Setup time = every training's wall time + the dev answers that chose between them. The ratio to `single` is the
price of the search; the dev curves and test accuracy say whether the defaults converge and what the search buys.
Run: python bench/finetune_search.py [--variants single,defaults,grid]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

import yaml
from _util import REPO, cut_suite, parse, run_compare, save, smoke

SUITE = REPO / "suites/quickstart"
BASE = {"method": "lora", "rank": 16, "alpha": 32, "batch_size": 8}
VARIANTS = {
    "single": {**BASE, "epochs": 3, "learning_rate": 5.0e-4},
    "defaults": {},
    "grid": {**BASE, "learning_rate": [2.0e-4, 5.0e-4, 1.0e-3], "epochs": "auto"},
}


def variant_suite(folder: Path, tuner_config: dict) -> Path:
    suite = yaml.safe_load((SUITE / "suite.yaml").read_text())
    suite["strategies"] = [s for s in suite["strategies"] if s["kind"] == "finetune"]
    suite["strategies"][0]["config"]["tuner"] = {"kind": "local", "config": tuner_config} if tuner_config else {}
    shutil.copytree(SUITE / "data", folder / "data")
    (folder / "suite.yaml").write_text(yaml.safe_dump(suite, sort_keys=False))
    return folder / "suite.yaml"


def run_variant(name: str, root: Path, models: Path) -> dict:
    folder = root / name
    folder.mkdir(parents=True)
    path = variant_suite(folder, VARIANTS[name])
    home = folder / "home"
    home.mkdir()
    (home / "models").symlink_to(models)  # the set-up model, but no cached answers or fine-tunes
    env = {**os.environ, "HARNESS_HOME": str(home), "HF_HUB_OFFLINE": "1", "CI": "1"}
    out = folder / "run"
    measured = run_compare(path, out, env=env)
    run = json.loads((out / "run.json").read_text())
    (strategy,) = run["strategies"].values()
    given, setup = strategy["setup"]["given"], strategy["setup"]
    trainings = given["search"] or [
        {
            "values": {},
            "epochs_trained": given["epochs_trained"],
            "dev_scores": given["dev_scores"],
            "training_s": given["training"]["wall_s"],
        }
    ]
    training_s = sum(c["training_s"] for c in trainings)
    dev_s = (setup.get("dev") or {}).get("compute_s", 0.0)
    return {
        "tuner_config": VARIANTS[name] or "(none: the defaults)",
        "chosen": {
            "hyperparameters": {k: given["hyperparameters"][k] for k in ("learning_rate", "epochs", "rank")},
            "epoch": given["chosen"]["epoch"],
            "dev_score": given["chosen"]["dev_score"],
        },
        "trainings": [
            {
                "values": c["values"],
                "epochs_trained": c["epochs_trained"],
                "dev_scores": c["dev_scores"],
                "training_s": round(c["training_s"], 1),
            }
            for c in trainings
        ],
        "dev_still_rising_at_last_epoch": given["dev_still_rising_at_last_epoch"],
        "grid_edge": given.get("grid_edge", []),
        "setup_s": round(training_s + dev_s, 1),
        "training_s": round(training_s, 1),
        "dev_answers_s": round(dev_s, 1),
        "setup_usd": strategy["cost"]["setup_usd"],
        "test_label_accuracy": round(strategy["metrics"]["label_accuracy"]["mean"], 4),
        "test_ci": [round(strategy["metrics"]["label_accuracy"][k], 4) for k in ("ci_low", "ci_high")],
        "process_wall_s": round(measured["wall_s"], 1),
        "peak_rss_mb": round(measured["peak_rss_mb"], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parse(parser, variants="grid")  # smoke: the search's code path
    from harness.backends.default_llm import ensure_embedded

    models = ensure_embedded("smollm2-135m-instruct").parent
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        if smoke():  # 12 examples (two steps an epoch), the grid cut to two values and two epochs
            global SUITE
            SUITE = cut_suite(SUITE, Path(tmp) / "cut", train=12, dev=4, test=4).parent
            VARIANTS["single"]["epochs"] = 1
            VARIANTS["grid"].update({"learning_rate": [5.0e-4, 1.0e-3], "max_epochs": 1})
        for name in args.variants.split(","):
            print(f"variant {name} ...", flush=True)
            results[name] = run_variant(name, Path(tmp), models)
            print(json.dumps(results[name]), flush=True)
    single = results.get("single", {}).get("setup_s")
    ratios = {
        f"{name}_setup_vs_single": round(r["setup_s"] / single, 2)
        for name, r in results.items()
        if single and name != "single"
    }
    save(
        "finetune_search",
        {
            "what": "setup time (trainings + dev answers) of a fine-tune search against one training, quickstart data",
            "baseline": "single",
            "variants": results,
            "ratios": ratios,
        },
    )


if __name__ == "__main__":
    main()
