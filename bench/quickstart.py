"""The default suite end to end on this machine: cold run (model set up, empty response cache), then warm reruns.

Goals (issue 3): cold run of zero- and few-shot <= 3 min; warm rerun <= 15 s with zero model calls.
The embedded model must already be set up (run `make demo` once, or any `harness compare` on the suite).
Run: python bench/quickstart.py
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from _util import REPO, run_python, save

SUITE = REPO / "suites/quickstart/suite.yaml"


def compare(out: Path, env: dict) -> dict:
    script = (
        "import sys\nfrom harness.cli import main\n"
        f"sys.argv = ['harness', 'compare', {str(SUITE)!r}, '--out', {str(out)!r}]\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
    )
    result = run_python(script, env=env)
    run = json.loads((out / "run.json").read_text())
    result["counts"] = run["options"]["counts"]
    result["status"] = run["status"]
    result["label_accuracy"] = {k: round(v["metrics"]["label_accuracy"]["mean"], 4) for k, v in run["strategies"].items()}
    result["wall_s"] = round(result["wall_s"], 2)
    result["peak_rss_mb"] = round(result["peak_rss_mb"], 1)
    return result


def main() -> None:
    from harness.backends.embedded import ensure_embedded
    from harness.home import harness_home

    models = ensure_embedded("smollm2-135m-instruct").parent
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        (home / "models").symlink_to(models)  # the set-up model, but an empty response cache
        env = {**os.environ, "HARNESS_HOME": str(home), "HF_HUB_OFFLINE": "1", "CI": "1"}
        cold = compare(Path(tmp) / "run", env)
        resume = compare(Path(tmp) / "run", env)
        cached = compare(Path(tmp) / "run-new-folder", env)
    save("quickstart", {
        "what": "harness compare suites/quickstart/suite.yaml (zero_shot + few_shot, 150 test cases), separate processes",
        "model_home": str(harness_home()),
        "cold": cold,
        "warm_rerun_same_folder": resume,
        "warm_rerun_new_folder_from_cache": cached,
        "goals": {"cold_wall_s": 180, "warm_wall_s": 15, "warm_model_calls": 0},
    })


if __name__ == "__main__":
    main()
