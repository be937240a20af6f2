"""The CLI on suites as a user runs it: what stays accepted beside the bad inputs, compare writing nothing for a
bad suite, the example suites, and `init`, `schema`, `list`.

The bad inputs themselves (each one broken suite or data file, refused with exit 2 and a message naming the file
and the field or line) are the corpus in tests/bad_inputs/, run by test_bad_input_corpus.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import harness_cli

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "suites" / "quickstart" / "suite.yaml"
LABELS = ["positive", "negative", "neutral"]

TRAIN_TEXTS = [
    "I loved every minute of it",
    "Terrible service, never again",
    "The parcel arrived on Tuesday",
    "What a wonderful surprise",
    "The food was cold and bland",
    "The meeting is at noon",
    "Best purchase I made this year",
    "It broke after one day",
    "The store opens at nine",
    "Absolutely fantastic staff",
    "I want my money back",
    "The box is blue",
]
DEV_TEXTS = ["Really happy with the result", "Awful, just awful", "The train leaves at five"]
TEST_TEXTS = [
    "Great value and quick delivery",
    "The screen cracked immediately",
    "The manual has ten pages",
    "I would gladly buy it again",
    "Worst customer support ever",
    "The cable is two metres long",
]


# ---- helpers -------------------------------------------------------------------------------------


def rows(prefix: str, texts: list[str]) -> list[dict[str, str]]:
    return [{"id": f"{prefix}{i + 1}", "text": t, "label": LABELS[i % 3]} for i, t in enumerate(texts)]


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def make_suite(tmp_path: Path) -> dict[str, Any]:
    """Write the data files of a small valid suite and return the suite as a dict to mutate."""
    data = tmp_path / "data"
    write_jsonl(data / "train.jsonl", rows("train-", TRAIN_TEXTS))
    write_jsonl(data / "dev.jsonl", rows("dev-", DEV_TEXTS))
    write_jsonl(data / "test.jsonl", rows("test-", TEST_TEXTS))
    return {
        "name": "bad-inputs",
        "seed": 7,
        "task": {
            "instructions": "Classify the sentiment. Answer with one of: {labels}.",
            "input_field": "text",
            "target_field": "label",
            "id_field": "id",
            "labels": list(LABELS),
        },
        "data": {"train": "data/train.jsonl", "dev": "data/dev.jsonl", "test": "data/test.jsonl"},
        "backends": [{"name": "fake", "kind": "fake", "config": {"default": "a"}}],
        "strategies": [
            {"name": "zero_shot", "kind": "zero_shot", "backend": "fake"},
            {"name": "few_shot", "kind": "few_shot", "backend": "fake", "config": {"k": 3, "selection": "balanced"}},
        ],
        "scorers": [{"kind": "label_accuracy"}],
    }


def dump(tmp_path: Path, suite: dict[str, Any], name: str = "suite.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(suite, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "harness-home"
    path.mkdir()
    return path


# ---- tests ---------------------------------------------------------------------------------------


def test_base_suite_is_valid(tmp_path: Path, home: Path) -> None:
    """The suite every bad case starts from validates, so each failure below is due to its one change."""
    result = harness_cli("validate", str(dump(tmp_path, make_suite(tmp_path))), home=home, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "train=12 dev=3 test=6" in result.stdout


def test_overlap_allowed_validates(tmp_path: Path, home: Path) -> None:
    """A test input that repeats a train input (the corpus case test_input_in_train) passes once
    data.allow_overlap is set."""
    suite = make_suite(tmp_path)
    records = rows("test-", TEST_TEXTS)
    records[4]["text"] = "  the FOOD was cold and   bland "  # same as train-5 after normalising
    write_jsonl(tmp_path / "data" / "test.jsonl", records)
    refused = harness_cli("validate", str(dump(tmp_path, suite)), home=home, timeout=60)
    assert refused.returncode == 2 and "leakage" in refused.stderr, refused.stdout + refused.stderr
    suite["data"]["allow_overlap"] = True
    result = harness_cli("validate", str(dump(tmp_path, suite)), home=home, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "test=6" in result.stdout


def test_compare_refuses_bad_suite_before_writing_anything(tmp_path: Path, home: Path) -> None:
    suite = make_suite(tmp_path)
    suite["strategies"][1]["kind"] = "few_shoot"
    path = dump(tmp_path, suite)
    out = tmp_path / "run"
    work = tmp_path / "cwd"
    work.mkdir()
    result = harness_cli("compare", str(path), "--out", str(out), home=home, cwd=work, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "few_shoot" in result.stderr and "Did you mean 'few_shot'" in result.stderr
    assert not out.exists() or not any(out.iterdir()), sorted(out.iterdir())
    assert not list(tmp_path.rglob("cases.jsonl"))
    assert not (work / "runs").exists()


def test_compare_without_out_writes_no_run_folder(tmp_path: Path, home: Path) -> None:
    suite = make_suite(tmp_path)
    (tmp_path / "data" / "test.jsonl").write_text("", encoding="utf-8")
    work = tmp_path / "cwd"
    work.mkdir()
    result = harness_cli("compare", str(dump(tmp_path, suite)), home=home, cwd=work, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert not (work / "runs").exists() or not any((work / "runs").rglob("*"))
    assert not list(tmp_path.rglob("cases.jsonl"))


COUNTS = {
    "quickstart": "train=300 dev=50 test=150",
    "squad_qa": "train=240 dev=40 test=120",
    "e2e_nlg": "train=300 dev=40 test=100",
    "labelling_guide": "train=300 dev=50 test=150",
}
EXAMPLE_SUITES = sorted(str(p.relative_to(REPO / "suites")) for p in (REPO / "suites").glob("*/suite*.yaml"))


def test_every_example_suite_has_its_variants() -> None:
    assert EXAMPLE_SUITES == [
        "e2e_nlg/suite.gpu.yaml",
        "e2e_nlg/suite.judged.yaml",
        "e2e_nlg/suite.pairwise.yaml",
        "e2e_nlg/suite.yaml",
        "labelling_guide/suite.openai.yaml",
        "labelling_guide/suite.yaml",
        "quickstart/suite.curve.yaml",
        "quickstart/suite.gpu.yaml",
        "quickstart/suite.yaml",
        "squad_qa/suite.gpu.yaml",
        "squad_qa/suite.openai.yaml",
        "squad_qa/suite.yaml",
    ]


@pytest.mark.parametrize("suite", EXAMPLE_SUITES)
def test_the_example_suites_validate(suite: str, home: Path) -> None:
    result = harness_cli("validate", str(REPO / "suites" / suite), home=home, timeout=60)
    assert result.returncode == 0, result.stderr
    assert COUNTS[suite.split("/")[0]] in result.stdout
    if suite.endswith("gpu.yaml"):  # GPU-only parts are named as such on a machine without one, not refused
        import torch

        assert ("needs an NVIDIA GPU (CUDA)" in result.stderr) != torch.cuda.is_available()


@pytest.mark.parametrize("name", ["squad_qa", "labelling_guide"])
def test_the_openai_variants_estimate_in_its_readme_is_current(name: str, home: Path) -> None:
    result = harness_cli("estimate", str(REPO / "suites" / name / "suite.openai.yaml"), home=home, timeout=60)
    assert result.returncode == 0, result.stderr
    readme = (REPO / "suites" / name / "README.md").read_text()
    assert result.stdout.strip() in readme, f"regenerate the estimate block in suites/{name}/README.md"
    assert "fine-tuning against each alternative" in result.stdout and "saved a request" in result.stdout


def test_the_prompt_length_table_in_the_labelling_guide_readme_is_current() -> None:
    """The saving grows with the guide's length, and the README's table is what the script prints now."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "suites" / "labelling_guide" / "prompt_length.py")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() in (REPO / "suites" / "labelling_guide" / "README.md").read_text()
    rows = [line.split(" | ") for line in proc.stdout.strip().splitlines()[2:]]
    savings = [float(r[5].strip("$")) for r in rows]
    paybacks = [int(r[6].replace(",", "")) for r in rows]
    assert savings == sorted(savings) and paybacks == sorted(paybacks, reverse=True) and len(rows) == 4


def test_schema_is_json_with_the_main_sections(home: Path) -> None:
    result = harness_cli("schema", home=home, timeout=60)
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert {"name", "task", "data", "strategies"} <= set(schema["properties"])


def test_list_shows_builtins(home: Path) -> None:
    result = harness_cli("list", home=home, timeout=60)
    assert result.returncode == 0, result.stderr
    for kind in ("fake", "hf", "zero_shot", "few_shot", "label_accuracy"):
        assert kind in result.stdout, f"{kind} missing from:\n{result.stdout}"


def test_init_writes_a_valid_suite_and_refuses_to_overwrite(tmp_path: Path, home: Path) -> None:
    subjects = [
        "phone",
        "laptop",
        "kettle",
        "chair",
        "lamp",
        "bike",
        "jacket",
        "printer",
        "camera",
        "desk",
        "blender",
        "mouse",
        "router",
        "watch",
        "speaker",
        "toaster",
        "tent",
        "backpack",
        "monitor",
        "sofa",
    ]
    moods = {
        "positive": "I really love the {} I bought",
        "negative": "The {} I bought is a total letdown",
        "neutral": "The {} I bought came in a box",
    }
    records = [
        {"id": f"r{len(moods) * i + j}", "text": template.format(subject), "label": label}
        for i, subject in enumerate(subjects)
        for j, (label, template) in enumerate(moods.items())
    ]
    assert len(records) == 60 and len({r["text"] for r in records}) == 60
    data = tmp_path / "cases.jsonl"
    write_jsonl(data, records)
    target = tmp_path / "my-suite"

    created = harness_cli("init", str(target), "--from", str(data), home=home, timeout=60)
    assert created.returncode == 0, created.stdout + created.stderr
    suite_file = target / "suite.yaml"
    assert suite_file.is_file()
    written = yaml.safe_load(suite_file.read_text(encoding="utf-8"))
    assert sorted(written["task"]["labels"]) == sorted(LABELS)

    checked = harness_cli("validate", str(suite_file), home=home, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.startswith("ok:")

    before = suite_file.read_text(encoding="utf-8")
    again = harness_cli("init", str(target), "--from", str(data), home=home, timeout=60)
    assert again.returncode == 2, again.stdout + again.stderr
    assert "already exists" in again.stderr and "--force" in again.stderr
    assert "Traceback" not in again.stderr
    assert suite_file.read_text(encoding="utf-8") == before

    forced = harness_cli("init", str(target), "--from", str(data), "--force", home=home, timeout=60)
    assert forced.returncode == 0, forced.stdout + forced.stderr
