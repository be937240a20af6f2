"""The quickstart suite exported as the OpenAI chat fine-tuning file and read back as a suite (data.format
openai_chat) gives the same cases and, answered by the same model, the same zero- and few-shot answers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from harness.cli import app
from harness.suite.load import load_suite
from tests.conftest import REPO


def answers(run: Path) -> dict[tuple[str, str], tuple[str, str]]:
    """(strategy, input) -> (the prompt sent, the answer)."""
    rows = [json.loads(line) for line in (run / "cases.jsonl").read_text().splitlines()]
    return {(r["strategy"], json.dumps(r["input"])): (json.dumps(r["prompt"]), r["output"]) for r in rows}


@pytest.mark.slow
def test_quickstart_round_trip_through_openai_chat(embedded_model_dir, tmp_path):
    original = tmp_path / "quickstart"
    shutil.copytree(REPO / "suites" / "quickstart", original, ignore=shutil.ignore_patterns("runs"))
    suite = yaml.safe_load((original / "suite.yaml").read_text())
    suite["backends"][0]["model"] = str(embedded_model_dir)  # the embedded SmolLM2, converted once per session
    (original / "suite.yaml").write_text(yaml.safe_dump(suite, sort_keys=False), encoding="utf-8")

    out = tmp_path / "export"
    done = CliRunner().invoke(
        app, ["tune", str(original), "--export-only", "--format", "openai_chat", "--out", str(out)]
    )
    assert done.exit_code == 0, done.output

    back = tmp_path / "back"
    shutil.copytree(out, back)
    suite["task"] = {"labels": suite["task"]["labels"]}  # the instructions come from the file's system turn
    suite["data"] = {"train": "train.jsonl", "dev": "validation.jsonl", "test": "test.jsonl", "format": "openai_chat"}
    suite["strategies"] = [s for s in suite["strategies"] if s["kind"] != "finetune"]
    (back / "suite.yaml").write_text(yaml.safe_dump(suite, sort_keys=False), encoding="utf-8")

    a, b = load_suite(original), load_suite(back)
    for split in ("train", "dev", "test"):
        assert [(c.input, c.target) for c in a.dataset.split(split)] == [
            (c.input, c.target) for c in b.dataset.split(split)
        ]

    runs = {}
    for name, path in (("original", original), ("back", back)):
        run = tmp_path / f"run-{name}"
        done = CliRunner().invoke(
            app,
            [
                "compare",
                str(path),
                "--strategies",
                "zero_shot,few_shot",
                "--limit",
                "12",
                "--no-cache",
                "--out",
                str(run),
            ],
        )
        assert done.exit_code == 0, done.output
        runs[name] = answers(run)
    assert len(runs["original"]) == 24
    assert runs["original"] == runs["back"]  # the same prompts, and the same answers to them
    assert len({output for _, output in runs["original"].values()}) > 1  # the answers differ from case to case
