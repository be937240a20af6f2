"""The `openai` backend's concurrency: N requests against the local OpenAI-compatible server (tests/fake_openai.py,
in its own process) that answers each after a fixed latency, at concurrency C. Wall time against the ideal
N x latency / C. Goal (issue 8): <= 1.2x the ideal. Measured twice: the backend alone (generate), and a whole
`harness compare` (cache, results file, scoring, summary included).
Run: python bench/api_concurrency.py [--requests 1000] [--latency 0.2] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import REPO, parse, save

sys.path.insert(0, str(REPO))

SERVER = """
import sys, uvicorn
from tests.fake_openai import Script, make_app
script = Script(chat=lambda body: "answer " + body["messages"][-1]["content"].split()[-1], latency_s=float(sys.argv[2]))
uvicorn.run(make_app(script), host="127.0.0.1", port=int(sys.argv[1]), log_level="critical", access_log=False,
            lifespan="off", limit_concurrency=4096, backlog=4096)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the local server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--promptfoo", default=None, help="A promptfoo executable: time it on the same requests.")
    args = parse(parser, requests=40, latency=0.05)
    from harness.backends.base import GenRequest
    from harness.backends.openai_api import OpenAIBackend, OpenAIConfig
    from harness.run.compare import CompareOptions, compare
    from harness.suite.schema import BackendSpec, GenerationParams

    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port), str(args.latency)], cwd=REPO)
    os.environ["BENCH_KEY"] = "sk-bench"
    try:
        wait_for(port)
        url = f"http://127.0.0.1:{port}/v1"
        ideal = args.requests * args.latency / args.concurrency
        config = OpenAIConfig(base_url=url, api_key_env="BENCH_KEY", concurrency=args.concurrency)
        backend = OpenAIBackend(BackendSpec(name="api", kind="openai", model="gpt-4o-mini"), config)
        params = GenerationParams(max_new_tokens=8)
        requests = [GenRequest([{"role": "user", "content": f"question {i}"}], params) for i in range(args.requests)]
        started = time.perf_counter()
        results = dict(backend.generate(requests))
        backend_s = time.perf_counter() - started
        errors = sum(r.error is not None for r in results.values())
        ttft = sorted(r.ttft_s for r in results.values() if r.ttft_s is not None)

        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            os.environ["HARNESS_HOME"] = str(folder / "home")
            (folder / "test.jsonl").write_text(
                "".join(f'{{"id": "c{i}", "q": "question {i}", "a": "answer {i}"}}\n' for i in range(args.requests))
            )
            suite = {
                "name": "bench-api",
                "task": {"instructions": "Answer.", "input_field": "q", "target_field": "a"},
                "data": {"test": "test.jsonl"},
                "backends": [
                    {
                        "name": "api",
                        "kind": "openai",
                        "model": "gpt-4o-mini",
                        "generation": {"max_new_tokens": 8},
                        "config": {"base_url": url, "api_key_env": "BENCH_KEY", "concurrency": args.concurrency},
                    }
                ],
                "strategies": [{"name": "zero", "kind": "zero_shot"}],
                "scorers": [{"kind": "exact_match"}],
            }
            (folder / "suite.yaml").write_text(yaml.safe_dump(suite))
            started = time.perf_counter()
            record, _ = compare(folder / "suite.yaml", CompareOptions(out=folder / "run"))
            compare_s = time.perf_counter() - started
            compare_ok = record.strategies["zero"].metrics["exact_match"].mean
            promptfoo = run_promptfoo(args, url, folder) if args.promptfoo else None
    finally:
        server.terminate()
        server.wait(timeout=10)
    save(
        "api_concurrency",
        {
            "what": f"{args.requests} chat requests, {args.latency * 1000:.0f} ms server latency each, concurrency "
            f"{args.concurrency}, streamed, server in its own process on loopback",
            "ideal_s": round(ideal, 3),
            "backend_generate_s": round(backend_s, 3),
            "backend_over_ideal": round(backend_s / ideal, 3),
            "backend_errors": errors,
            "ttft_p50_s": ttft[len(ttft) // 2] if ttft else None,
            "harness_compare_s": round(compare_s, 3),
            "compare_over_ideal": round(compare_s / ideal, 3),
            "compare_exact_match": compare_ok,
            **({"promptfoo": promptfoo} if promptfoo else {}),
            "goal_over_ideal": 1.2,
        },
    )


def run_promptfoo(args, url: str, folder: Path) -> dict:
    """promptfoo eval of the same requests (system "Answer.", user "question i") at the same concurrency, no cache."""
    import json

    (folder / "pf-tests.csv").write_text("q\n" + "".join(f"question {i}\n" for i in range(args.requests)))
    prompt = json.dumps([{"role": "system", "content": "Answer."}, {"role": "user", "content": "{{q}}"}])
    config = {
        "providers": [
            {
                "id": "openai:chat:gpt-4o-mini",
                "config": {"apiBaseUrl": url, "apiKey": "sk-bench", "max_tokens": 8, "temperature": 0},
            }
        ],
        "prompts": [prompt],
        "tests": f"file://{folder / 'pf-tests.csv'}",
    }
    (folder / "promptfooconfig.yaml").write_text(yaml.safe_dump(config))
    env = {
        **os.environ,
        "PROMPTFOO_DISABLE_TELEMETRY": "1",
        "PROMPTFOO_DISABLE_UPDATE": "1",
        "PROMPTFOO_CONFIG_DIR": str(folder / "pf-home"),
    }
    version = subprocess.run([args.promptfoo, "--version"], capture_output=True, text=True, env=env).stdout.strip()
    started = time.perf_counter()
    done = subprocess.run(
        [
            args.promptfoo,
            "eval",
            "-c",
            str(folder / "promptfooconfig.yaml"),
            "--no-cache",
            "-j",
            str(args.concurrency),
            "--no-progress-bar",
            "--no-table",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=folder,
    )
    seconds = time.perf_counter() - started
    ideal = args.requests * args.latency / args.concurrency
    return {
        "version": version,
        "wall_s": round(seconds, 3),
        "over_ideal": round(seconds / ideal, 3),
        "exit_code": done.returncode,
        "tail": done.stdout[-300:] + done.stderr[-300:],
    }


if __name__ == "__main__":
    main()
