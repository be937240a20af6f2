"""Shared helpers for the benchmarks: run a command in a child process, measure wall time and peak RSS, save JSON.

Every benchmark takes `--smoke`: tiny sizes, seconds to a minute, results in bench/results/smoke/ (not kept). The
test suite runs each script that way, so a benchmark that no longer runs fails CI instead of rotting.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]


def smoke() -> bool:
    """Whether this is a smoke run (set by `--smoke`, inherited by the benchmark's child processes)."""
    return os.environ.get("BENCH_SMOKE") == "1"


def parse(parser: argparse.ArgumentParser, **tiny) -> argparse.Namespace:
    """parse_args with `--smoke`: the options in `tiny` take their smoke values and the run is marked as a smoke."""
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes: check that the benchmark runs (bench/results/smoke/)"
    )
    args = parser.parse_args()
    if args.smoke:
        os.environ["BENCH_SMOKE"] = "1"
        for name, value in tiny.items():
            setattr(args, name, value)
    return args


def cut_suite(source: Path, dest: Path, *, train: int = 8, dev: int = 4, test: int = 4, epochs: int = 1) -> Path:
    """A copy of an example suite on the first rows of each split, fine-tunes trained for `epochs` (smoke runs)."""
    import yaml

    suite = yaml.safe_load((source / "suite.yaml").read_text())
    sizes = {"train": train, "dev": dev, "test": test}
    for split, rel in suite["data"].items():
        if split not in sizes:
            continue
        lines = (source / rel).read_text(encoding="utf-8").splitlines()[: sizes[split]]
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    for strategy in suite["strategies"]:
        tuner = (strategy.get("config") or {}).get("tuner") or {}
        if tuner.get("config"):
            tuner["config"]["epochs"] = epochs
    (dest / "suite.yaml").write_text(yaml.safe_dump(suite, sort_keys=False))
    return dest / "suite.yaml"


_CHILD = """
import json, resource, sys, time
started = time.perf_counter()
exec(compile(open(sys.argv[1]).read(), sys.argv[1], "exec"))
print("__BENCH__" + json.dumps({"wall_s": time.perf_counter() - started,
      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_python(script: str, *, env: dict | None = None) -> dict:
    """Run `script` (Python source) in a fresh interpreter; return its wall time, peak RSS and the dict it prints."""
    tmp = RESULTS / f".bench-{time.time_ns()}.py"
    tmp.write_text(script)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, str(tmp)], capture_output=True, text=True, cwd=REPO, env=env
        )
    finally:
        tmp.unlink(missing_ok=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    out: dict = {}
    for line in proc.stdout.splitlines():
        if line.startswith("__BENCH__"):
            out.update(json.loads(line[len("__BENCH__") :]))
        elif line.startswith("__DATA__"):
            out.update(json.loads(line[len("__DATA__") :]))
    return out


def run_compare(suite: Path, out: Path, *extra: str, env: dict | None = None) -> dict:
    """`harness compare SUITE --out OUT EXTRA...` in a fresh interpreter (exit 0 required): wall time, peak RSS."""
    script = (
        "import sys\nfrom harness.cli import main\n"
        f"sys.argv = ['harness', 'compare', {str(suite)!r}, '--out', {str(out)!r}, *{list(extra)!r}]\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
    )
    return run_python(script, env=env)


def save(name: str, payload: dict) -> Path:
    folder = RESULTS / "smoke" if smoke() else RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name,
        **({"smoke": True} if smoke() else {}),
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": _cpus()},
        **payload,
    }
    path = folder / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(json.dumps(payload, indent=2))
    print(f"wrote {path}")
    return path


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


def peak_rss_children_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
