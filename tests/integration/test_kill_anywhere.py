"""SIGKILL of `harness compare` at 10 seeded random points of a run with every kind of strategy (API answers,
RAG with an API embedder while it indexes, a local LoRA fine-tune while it trains, the tiny model answering),
each time followed by the same command: the final results equal an uninterrupted run's, no answer or embedding
that was finished is asked for again (the local server counts), cases.jsonl never holds a torn or duplicate line
after a rerun, and the run folder stays readable after every kill."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from harness.run.folder import read_cases, read_run
from tests.conftest import REPO, report_check, write_jsonl
from tests.fake_openai import FakeOpenAI, Script

pytestmark = pytest.mark.slow

SEED = 20261126
KILLS = 10
KEY = "sk-test-kill-anywhere-0123456789abcdef"
TOPICS = ["river", "mountain", "castle", "forest", "harbour", "desert", "island", "valley"]
# Where a run is, read from its output: the stages in the order a run goes through them.
STAGES = [
    ("answering zero", r"^\[zero\] \d+/"),
    ("answering few", r"^\[few\] \d+/"),
    ("indexing", r"indexing the corpus"),
    ("answering rag", r"^\[rag\] \d+/"),
    ("training", r"^\[ft: training\] \d+/"),
    ("answering ft", r"^\[ft\] \d+/"),
]
# How long after a stage is seen the kill may come (seconds): short stages get short windows. In training the kill
# comes after a seeded random step (steps are logged every 3 of 30; a checkpoint is saved every 10).
WINDOW = {
    "answering zero": 0.4,
    "answering few": 0.4,
    "indexing": 1.2,
    "answering rag": 0.4,
    "training": 0.4,
    "answering ft": 0.5,
}


def reply(body):
    return "place " + str(len(body["messages"][-1]["content"]) % 8)


def make_suite(folder: Path, url: str, tiny_model: Path) -> Path:
    def rows(split, n):
        return [
            {"id": f"{split}{i}", "q": f"Where is the {TOPICS[i % 8]} number {i} of {split}?", "a": f"place {i % 8}"}
            for i in range(n)
        ]

    for split, n in (("train", 40), ("dev", 6), ("test", 40)):
        write_jsonl(folder / f"{split}.jsonl", rows(split, n))
    write_jsonl(
        folder / "corpus.jsonl",
        [{"id": f"p{i}", "text": f"The {TOPICS[i % 8]} number {i} is at place {i % 8}. " * 3} for i in range(60)],
    )
    api = {"base_url": url, "api_key_env": "KILL_KEY", "concurrency": 4}
    suite = {
        "name": "kill-anywhere",
        "seed": 3,
        "task": {"instructions": "Answer with the place.", "input_field": "q", "target_field": "a"},
        "data": {"train": "train.jsonl", "dev": "dev.jsonl", "test": "test.jsonl"},
        "backends": [
            {
                "name": "api",
                "kind": "openai",
                "model": "gpt-4o-mini",
                "generation": {"max_new_tokens": 8},
                "config": api,
            },
            {
                "name": "tiny",
                "kind": "hf",
                "model": str(tiny_model),
                "generation": {"max_new_tokens": 4},
                "config": {"batch_size": 8},
            },
        ],
        "strategies": [
            {"name": "zero", "kind": "zero_shot", "backend": "api"},
            {"name": "few", "kind": "few_shot", "backend": "api", "config": {"k": 3, "selection": "random"}},
            {
                "name": "rag",
                "kind": "rag",
                "backend": "api",
                "config": {
                    "corpus": "corpus.jsonl",
                    "top_k": 2,
                    "retriever": "dense",
                    "embedder": {
                        "kind": "openai",
                        "model": "text-embedding-3-small",
                        "base_url": url,
                        "api_key_env": "KILL_KEY",
                        "batch_size": 2,
                    },
                },
            },
            {
                "name": "ft",
                "kind": "finetune",
                "backend": "tiny",
                "config": {
                    "tuner": {
                        "kind": "local",
                        "config": {"epochs": 3, "batch_size": 4, "rank": 4, "alpha": 8, "learning_rate": 5e-3},
                    }
                },
            },
        ],
        "scorers": [{"kind": "exact_match"}],
        "economics": {"usd_per_hour": {"cpu": 0.10}},
    }
    (folder / "suite.yaml").write_text(yaml.safe_dump(suite, sort_keys=False))
    return folder / "suite.yaml"


class Watched:
    """`harness compare` in a child process, its output read as it comes, the stage it has reached kept."""

    def __init__(self, path: Path, out: Path, home: Path):
        env = {
            **os.environ,
            "HARNESS_HOME": str(home),
            "HF_HUB_OFFLINE": "1",
            "CI": "1",
            "KILL_KEY": KEY,
            "PYTHONUNBUFFERED": "1",
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "harness.cli", "compare", str(path), "--out", str(out)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.stage = -1
        self.reached: dict[int, float] = {}
        self.step = 0  # the last training step logged
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)
            step = re.search(r"^\[ft: training\] (\d+)/", line)
            if step:
                self.step = int(step.group(1))
            for i, (_, pattern) in enumerate(STAGES):
                if re.search(pattern, line.strip()):
                    self.stage = max(self.stage, i)
                    self.reached.setdefault(i, time.monotonic())

    def wait_for(self, stage: int, timeout: float, *, step: int = 0) -> bool:
        """Until the run reaches `stage` (and, in training, logs step `step` or later, or has passed training)."""
        deadline = time.monotonic() + timeout

        def reached():
            return self.stage > stage or (self.stage == stage and (STAGES[stage][0] != "training" or self.step >= step))

        while not reached() and self.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        return reached()

    def finish(self, timeout: float = 300) -> int:
        code = self.proc.wait(timeout=timeout)
        self.thread.join(timeout=10)
        return code


def case_lines(out: Path) -> list[str]:
    path = out / "cases.jsonl"
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def answers(out: Path) -> dict[tuple[str, str, int], str]:
    rows = [json.loads(x) for x in case_lines(out)]
    return {(r["strategy"], r["case_id"], r.get("repeat", 0)): r["output"] for r in rows}


def test_sigkill_at_ten_random_points_then_rerun_loses_nothing_and_pays_nothing_twice(tiny_model, tmp_path):
    rng = random.Random(SEED)
    # Ten stages to kill in, in the order a run reaches them; indexing and training are always among them.
    picks = [2, 4] + rng.choices(range(len(STAGES)), weights=[1, 1, 2, 1, 3, 1], k=KILLS - 2)
    plan = sorted(picks)
    script = Script(chat=reply, latency_s=0.03, embed_latency_s=0.08)
    kills, readable_after_kill = [], 0
    with FakeOpenAI(script) as url:
        path = make_suite(tmp_path / "s", url, tiny_model)
        out, home = tmp_path / "run", tmp_path / "home"
        for target in plan:
            run = Watched(path, out, home)
            run.wait_for(target, timeout=240, step=rng.randrange(3, 30, 3))
            if run.proc.poll() is None:
                time.sleep(rng.uniform(0.0, WINDOW[STAGES[max(run.stage, target)][0]]))
            if run.proc.poll() is not None:  # finished before the kill: the plan outran the run
                pytest.fail(
                    f"the run finished before kill {len(kills) + 1} (stage {STAGES[target][0]}):\n"
                    + "".join(run.lines[-30:])
                )
            killed_at = time.time()  # before waiting for the child: under load, reaping it can take seconds
            run.proc.send_signal(signal.SIGKILL)
            run.finish()
            kills.append(
                {
                    "at": killed_at,
                    "stage": STAGES[run.stage][0] if run.stage >= 0 else "starting",
                    "training_steps_seen": max(
                        [int(m) for line in run.lines for m in re.findall(r"^\[ft: training\] (\d+)/", line)] or [0]
                    ),
                }
            )
            # The folder is readable after every kill: run.json (written first thing) reads as a run record, and
            # every line of cases.jsonl but a last one torn by the kill is a whole result.
            if run.stage >= 0:
                assert read_run(out).status in ("running", "interrupted", "complete", "incomplete")
            list(read_cases(out / "cases.jsonl"))
            readable_after_kill += 1
        final = Watched(path, out, home)
        assert final.finish() == 0, "".join(final.lines[-40:])

    stages = Counter(k["stage"] for k in kills)
    assert len(kills) == KILLS and stages["indexing"] >= 1 and stages["training"] >= 1, kills
    if any(k["training_steps_seen"] > 10 for k in kills if k["stage"] == "training"):
        training_given = json.loads((out / "run.json").read_text())["strategies"]["ft"]["setup"]["given"]
        assert training_given["training"]["resumed"] is True  # killed after a checkpoint: resumed from it

    # cases.jsonl: every line whole, each (strategy, case, repeat) once, all 4 x 40 there.
    lines = case_lines(out)
    rows = [json.loads(x) for x in lines]
    keys = Counter((r["strategy"], r["case_id"], r.get("repeat", 0)) for r in rows)
    duplicates = sum(n - 1 for n in keys.values() if n > 1)
    assert duplicates == 0 and len(keys) == 4 * 40
    assert not [r for r in rows if r.get("error")], [r["error"] for r in rows if r.get("error")][:3]

    # Nothing finished was asked for again. A chat answer or embedding delivered twice must have been in flight at
    # a kill (delivered as the client died, never recorded): its first delivery is within a moment of a kill, just
    # before it or just after (the server goes on streaming to a client that is already dead).
    kill_times = [k["at"] for k in kills]
    firsts: dict[str, float] = {}
    for key, at in script.completed_at:
        firsts.setdefault(key, at)
    repeated = [k for k, n in script.completed.items() if n > 1]
    finished_then_repeated = [k for k in repeated if not any(abs(t - firsts[k]) < 2.0 for t in kill_times)]
    assert finished_then_repeated == [], finished_then_repeated
    embeds = Counter(json.dumps(r["body"]["input"]) for r in script.requests if r["path"].endswith("/embeddings"))
    embed_repeats = sum(n - 1 for n in embeds.values() if n > 1)
    # at most the one request in flight at each kill while indexing or embedding a query
    assert embed_repeats <= stages["indexing"] + stages["answering rag"], embeds.most_common(3)
    index = next(home.glob("indexes/*/chunks.jsonl"))
    chunk_texts = {json.loads(x)["text"] for x in index.read_text().splitlines()}
    embedded = {t for k in embeds for t in json.loads(k)}
    assert chunk_texts <= embedded and len(embedded - chunk_texts) == 40  # every chunk, and each test question once

    # The results equal an uninterrupted run's (fresh server, fresh HARNESS_HOME: nothing shared).
    reference = Script(chat=reply)
    with FakeOpenAI(reference) as url:
        clean_path = make_suite(tmp_path / "ref", url, tiny_model)
        clean = Watched(clean_path, tmp_path / "clean", tmp_path / "home2")
        assert clean.finish() == 0, "".join(clean.lines[-40:])
    assert answers(out) == answers(tmp_path / "clean")
    ours = json.loads((out / "run.json").read_text())
    theirs = json.loads((tmp_path / "clean" / "run.json").read_text())
    for name in ("zero", "few", "rag", "ft"):
        assert ours["strategies"][name]["metrics"] == theirs["strategies"][name]["metrics"], name
    training = ours["strategies"]["ft"]["setup"]["given"]["training"]
    report_check(
        "kill-resume",
        kills=len(kills),
        stages=dict(stages),
        readable_after_each_kill=readable_after_kill,
        chat_calls=sum(script.completed.values()),
        in_flight_repeats=len(repeated),
        finished_calls_repeated=len(finished_then_repeated),
        embedding_repeats=embed_repeats,
        training_kills_at_step=[k["training_steps_seen"] for k in kills if k["stage"] == "training"],
        duplicates=duplicates,
        torn_lines=0,
        training_resumed=training["resumed"],
        equal_to_uninterrupted=True,
    )
