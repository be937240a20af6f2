"""Shared test fixtures: an isolated HARNESS_HOME per test, offline hub, and small suites on the fake backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")  # before any test imports ragas: no analytics thread
RAG_FIXTURES = REPO / "tests" / "fixtures" / "rag"
LABELS = ["alpha", "beta", "gamma"]


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "harness-home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _logging_restored():
    """The CLI run in-process points the root logger at the stderr pytest captured for that test; put it back, so
    a later test's log lines never go to a closed stream ("--- Logging error ---")."""
    import logging

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    named = {name: logging.getLogger(name).level for name in ("harness", "strategies")}
    yield
    root.handlers[:], root.level = saved[0], saved[1]
    for name, level in named.items():
        logging.getLogger(name).setLevel(level)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def make_rows(prefix: str, n: int, start: int = 0) -> list[dict]:
    return [
        {"id": f"{prefix}-{i}", "text": f"{prefix} request number {i} about {LABELS[i % 3]}", "label": LABELS[i % 3]}
        for i in range(start, start + n)
    ]


def base_suite(**fake_config) -> dict:
    return {
        "name": "toy",
        "seed": 7,
        "task": {
            "instructions": "Pick one of: {labels}.",
            "input_field": "text",
            "target_field": "label",
            "labels": LABELS,
        },
        "data": {"train": "data/train.jsonl", "dev": "data/dev.jsonl", "test": "data/test.jsonl"},
        "backends": [
            {
                "name": "fake",
                "kind": "fake",
                "config": {
                    "rules": [
                        {"pattern": "about alpha", "answer": "alpha"},
                        {"pattern": "about beta", "answer": "beta"},
                    ],
                    "default": "no idea",
                    **fake_config,
                },
            }
        ],
        "strategies": [
            {"name": "zero", "kind": "zero_shot", "backend": "fake"},
            {"name": "few", "kind": "few_shot", "backend": "fake", "config": {"k": 3, "selection": "balanced"}},
        ],
        "scorers": [{"kind": "label_accuracy"}, {"kind": "exact_match"}],
    }


def write_suite(folder: Path, suite: dict | None = None, *, n_train: int = 12, n_dev: int = 6, n_test: int = 9) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_jsonl(folder / "data/train.jsonl", make_rows("train", n_train))
    write_jsonl(folder / "data/dev.jsonl", make_rows("dev", n_dev))
    write_jsonl(folder / "data/test.jsonl", make_rows("test", n_test))
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump(suite or base_suite(), sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def toy_suite(tmp_path) -> Path:
    return write_suite(tmp_path / "suite")


@pytest.fixture(scope="session")
def tiny_model(embedded_model_dir, tmp_path_factory) -> Path:
    """A 2-layer, hidden-64 Llama with random weights and SmolLM2's tokenizer and chat template."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(embedded_model_dir)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def embedded_model_dir() -> Path:
    """The real SmolLM2 folder, converted once and kept in .pytest_cache between local runs (fresh in CI)."""
    home = REPO / ".pytest_cache" / "harness-models"
    old = os.environ.get("HARNESS_HOME")
    os.environ["HARNESS_HOME"] = str(home)
    try:
        from harness.backends.default_llm import ensure_embedded

        return ensure_embedded("smollm2-135m-instruct")
    finally:
        if old is None:
            os.environ.pop("HARNESS_HOME", None)
        else:
            os.environ["HARNESS_HOME"] = old


def write_qa_suite(folder: Path, suite: dict) -> Path:
    """A suite next to copies of the RAG fixtures (tests/fixtures/rag: corpus.jsonl, questions.jsonl)."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    for name in ("corpus.jsonl", "questions.jsonl"):
        shutil.copy(RAG_FIXTURES / name, folder / name)
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False), encoding="utf-8")
    return path


def harness_cli(
    *args: str, home: Path | None = None, cwd: Path = REPO, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`harness ARGS` as a user runs it: its own process, offline, plain (CI) output, HARNESS_HOME=home when given."""
    full = {**os.environ, "HF_HUB_OFFLINE": "1", "CI": "1", **(env or {})}
    if home is not None:
        full["HARNESS_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args], cwd=cwd, env=full, capture_output=True, text=True, timeout=timeout
    )


def start_compare(path: Path, out: Path, home: Path, *args: str, **env: str) -> subprocess.Popen:
    """`harness compare PATH --out OUT` started in its own process (offline, plain output), left running."""
    return subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "compare", str(path), "--out", str(out), *args],
        cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "CI": "1", "HARNESS_HOME": str(home), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def api_suite(
    folder: Path,
    url: str,
    *,
    key_env: str,
    n_test: int,
    n_dev: int = 0,
    n_train: int = 0,
    concurrency: int = 4,
    strategies: list[dict] | None = None,
    scorers: list[dict] | None = None,
) -> Path:
    """A question-answer suite ("question i" -> "answer i") on the openai backend at `url` (the local fake server),
    zero-shot unless `strategies` says otherwise."""
    rows = [{"id": f"c{i}", "q": f"question {i}", "a": f"answer {i}"} for i in range(n_test + n_dev + n_train)]
    data_files = {"test": rows[:n_test], "dev": rows[n_test : n_test + n_dev], "train": rows[n_test + n_dev :]}
    for split, split_rows in data_files.items():
        if split_rows:
            write_jsonl(folder / f"{split}.jsonl", split_rows)
    data = {
        "name": folder.name.replace("_", "-") or "api",
        "task": {"instructions": "Answer.", "input_field": "q", "target_field": "a"},
        "data": {split: f"{split}.jsonl" for split, split_rows in data_files.items() if split_rows},
        "backends": [
            {
                "name": "api",
                "kind": "openai",
                "model": "gpt-4o-mini",
                "config": {"base_url": url, "api_key_env": key_env, "concurrency": concurrency},
            }
        ],
        "strategies": strategies or [{"name": "zero", "kind": "zero_shot"}],
        "scorers": scorers or [{"kind": "exact_match"}],
    }
    (folder / "suite.yaml").write_text(yaml.safe_dump(data))
    return folder / "suite.yaml"


def run_json(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text(encoding="utf-8"))


def assert_refused(result, *expected: str) -> None:
    """A CLI refusal as users must get it: exit 2, no traceback, the expected words and a fix on stderr."""
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.returncode == 2, f"exit {result.returncode}\n{output}"
    missing = [e for e in expected if e not in result.stderr]
    assert not missing, f"missing {missing} in:\n{output}"
    assert "Fix" in result.stderr, output


@pytest.fixture
def fresh_home(embedded_model_dir, tmp_path) -> Path:
    """A HARNESS_HOME with no caches (responses, indexes, fine-tunes) that shares the converted embedded models, so
    a test that measures fresh calls does not depend on what earlier local runs left in the cache."""
    home = tmp_path / "fresh-home"
    home.mkdir()
    (home / "models").symlink_to(embedded_model_dir.parents[1] / "models", target_is_directory=True)
    return home


# ---- reliability figures --------------------------------------------------------------------------------------
# Checks that measure a property over many tries (bad inputs, kills, faults, secrets) report their figures here;
# they are printed in a "reliability checks" section at the end of the test run (so CI logs show them) and kept
# in test-artifacts/reliability.json.
RELIABILITY: list[dict] = []


def report_check(check: str, **figures) -> None:
    """Record one summary line, e.g. report_check("kill-resume", kills=10, repeated_calls=0, torn_lines=0)."""
    RELIABILITY.append({"check": check, **figures})


def pytest_terminal_summary(terminalreporter):
    if not RELIABILITY:
        return
    terminalreporter.section("reliability checks")
    for row in RELIABILITY:
        figures = ", ".join(f"{k} {v}" for k, v in row.items() if k != "check")
        terminalreporter.write_line(f"{row['check']}: {figures}")
    out = REPO / "test-artifacts" / "reliability.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(RELIABILITY, indent=1) + "\n")
