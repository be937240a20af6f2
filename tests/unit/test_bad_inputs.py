"""Bad suites and bad data, run through the real `harness` CLI as a user would.

Every bad input must end with exit code 2 and a message that names the file, points at the field or the
line, hints at the fix, and shows no traceback. Each case builds a small valid suite (fake backend,
zero_shot + few_shot, label_accuracy) in tmp_path and breaks exactly one thing.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "suites" / "quickstart" / "suite.yaml"
LABELS = ["positive", "negative", "neutral"]
HINTS = ("Fix", "Did you mean", "Allowed")

TRAIN_TEXTS = [
    "I loved every minute of it", "Terrible service, never again", "The parcel arrived on Tuesday",
    "What a wonderful surprise", "The food was cold and bland", "The meeting is at noon",
    "Best purchase I made this year", "It broke after one day", "The store opens at nine",
    "Absolutely fantastic staff", "I want my money back", "The box is blue",
]
DEV_TEXTS = ["Really happy with the result", "Awful, just awful", "The train leaves at five"]
TEST_TEXTS = [
    "Great value and quick delivery", "The screen cracked immediately", "The manual has ten pages",
    "I would gladly buy it again", "Worst customer support ever", "The cable is two metres long",
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


def line_in(path: Path, needle: str) -> int:
    """1-based number of the first line of `path` containing `needle`."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def harness(*args: str, home: Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HARNESS_HOME": str(home), "HF_HUB_OFFLINE": "1", "CI": "1"}
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        capture_output=True, text=True, env=env, cwd=cwd or REPO, timeout=60,
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "harness-home"
    path.mkdir()
    return path


# ---- the bad inputs ------------------------------------------------------------------------------
# Each mutator breaks one thing in (suite dict, tmp_path), writes the suite, and returns
# (suite path, file name the message must name, substrings the message must contain).

Expect = tuple[Path, str, list[str]]


def misspelt_top_level_key(s: dict, tmp: Path) -> Expect:
    s["strategie"] = s.pop("strategies")
    path = dump(tmp, s)
    return path, "suite.yaml", ["strategie", "Did you mean 'strategies'", f"suite.yaml:{line_in(path, 'strategie:')}"]


def unknown_key_in_strategy_config(s: dict, tmp: Path) -> Expect:
    s["strategies"][1]["config"]["kk"] = 3
    path = dump(tmp, s)
    return path, "suite.yaml", ["strategies[1].config.kk", f"suite.yaml:{line_in(path, 'kk: 3')}"]


def wrong_type_repeats(s: dict, tmp: Path) -> Expect:
    s["repeats"] = "three"
    path = dump(tmp, s)
    return path, "suite.yaml", ["repeats", f"suite.yaml:{line_in(path, 'repeats:')}"]


def unknown_strategy_kind(s: dict, tmp: Path) -> Expect:
    s["strategies"][1]["kind"] = "few_shoot"
    path = dump(tmp, s)
    return path, "suite.yaml", [
        "strategies[1].kind", "few_shoot", "Did you mean 'few_shot'", "Allowed", "zero_shot",
        f"suite.yaml:{line_in(path, 'kind: few_shoot')}",
    ]


def unknown_backend_kind(s: dict, tmp: Path) -> Expect:
    s["backends"][0]["kind"] = "openai_chat"
    path = dump(tmp, s)
    return path, "suite.yaml", ["backends[0].kind", "openai_chat", "Allowed", "fake", "hf",
                                f"suite.yaml:{line_in(path, 'kind: openai_chat')}"]


def strategy_backend_misspelt(s: dict, tmp: Path) -> Expect:
    s["strategies"][0]["backend"] = "fakee"
    path = dump(tmp, s)
    return path, "suite.yaml", ["strategies[0].backend", "fakee", "Did you mean 'fake'",
                                f"suite.yaml:{line_in(path, 'backend: fakee')}"]


def strategy_backend_unrelated(s: dict, tmp: Path) -> Expect:
    s["strategies"][1]["backend"] = "gpt4"
    path = dump(tmp, s)
    return path, "suite.yaml", ["strategies[1].backend", "gpt4", f"suite.yaml:{line_in(path, 'backend: gpt4')}"]


def missing_data_file(s: dict, tmp: Path) -> Expect:
    s["data"]["test"] = "data/nothere.jsonl"
    return dump(tmp, s), "nothere.jsonl", ["not found"]


def directory_instead_of_file(s: dict, tmp: Path) -> Expect:
    (tmp / "data" / "folder.jsonl").mkdir()
    s["data"]["dev"] = "data/folder.jsonl"
    return dump(tmp, s), "folder.jsonl", ["is a folder"]


def malformed_jsonl_line(s: dict, tmp: Path) -> Expect:
    path = tmp / "data" / "train.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[3] = '{"id": "train-4", "text": "oops", "label": "positive"\n'  # line 4: no closing brace
    path.write_text("".join(lines), encoding="utf-8")
    return dump(tmp, s), "train.jsonl", ["train.jsonl:4", "JSON"]


def non_utf8_data(s: dict, tmp: Path) -> Expect:
    path = tmp / "data" / "test.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    lines[2] = b'{"id": "test-3", "text": "caf\xff\xfe", "label": "neutral"}\n'  # line 3
    path.write_bytes(b"".join(lines))
    return dump(tmp, s), "test.jsonl", ["test.jsonl:3", "UTF-8"]


def empty_test_split(s: dict, tmp: Path) -> Expect:
    (tmp / "data" / "test.jsonl").write_text("", encoding="utf-8")
    return dump(tmp, s), "test.jsonl", ["empty", "test"]


def duplicate_id_within_split(s: dict, tmp: Path) -> Expect:
    records = rows("train-", TRAIN_TEXTS)
    records[5]["id"] = "train-2"
    write_jsonl(tmp / "data" / "train.jsonl", records)
    return dump(tmp, s), "train.jsonl", ["duplicate", "train-2"]


def duplicate_id_across_splits(s: dict, tmp: Path) -> Expect:
    records = rows("test-", TEST_TEXTS)
    records[1]["id"] = "train-3"
    write_jsonl(tmp / "data" / "test.jsonl", records)
    return dump(tmp, s), "test.jsonl", ["duplicate", "train-3", "train"]


def template_field_missing(s: dict, tmp: Path) -> Expect:
    s["task"]["prompt_template"] = "Q: {question}"
    return dump(tmp, s), "train.jsonl", ["task.prompt_template", "question"]


def few_shot_k_too_large(s: dict, tmp: Path) -> Expect:
    s["strategies"][1]["config"]["k"] = 50
    path = dump(tmp, s)
    return path, "suite.yaml", ["strategies[1].config.k", "50", "12", f"suite.yaml:{line_in(path, 'k: 50')}"]


def leakage_test_equals_train(s: dict, tmp: Path) -> Expect:
    records = rows("test-", TEST_TEXTS)
    records[4]["text"] = "  the FOOD was cold and   bland "  # same as train-5 after normalising
    write_jsonl(tmp / "data" / "test.jsonl", records)
    return dump(tmp, s), "test.jsonl", ["leakage", "allow_overlap", "test-5", "train-5"]


def target_not_in_labels(s: dict, tmp: Path) -> Expect:
    records = rows("test-", TEST_TEXTS)
    records[1]["label"] = "postive"
    write_jsonl(tmp / "data" / "test.jsonl", records)
    return dump(tmp, s), "test.jsonl", ["test.jsonl:2", "postive", "task.labels", "Did you mean 'positive'"]


def invalid_yaml_syntax(s: dict, tmp: Path) -> Expect:
    path = dump(tmp, s)
    text = path.read_text(encoding="utf-8").replace("seed: 7\n", "seed: 7: 8\n")
    path.write_text(text, encoding="utf-8")
    return path, "suite.yaml", [f"suite.yaml:{line_in(path, 'seed: 7: 8')}", "YAML"]


def split_fractions_not_one(s: dict, tmp: Path) -> Expect:
    write_jsonl(tmp / "data" / "all.jsonl", rows("all-", TRAIN_TEXTS + DEV_TEXTS + TEST_TEXTS))
    s["data"] = {"source": "data/all.jsonl", "split": {"train": 0.5, "dev": 0.1, "test": 0.2}}
    path = dump(tmp, s)
    return path, "suite.yaml", ["data.split", "0.8", f"suite.yaml:{line_in(path, 'split:')}"]


def primary_metric_misspelt(s: dict, tmp: Path) -> Expect:
    s["decision"] = {"primary_metric": "accuracy"}
    path = dump(tmp, s)
    return path, "suite.yaml", ["decision.primary_metric", "Did you mean 'label_accuracy'",
                                f"suite.yaml:{line_in(path, 'primary_metric:')}"]


def primary_metric_unrelated(s: dict, tmp: Path) -> Expect:
    s["decision"] = {"primary_metric": "f1"}
    path = dump(tmp, s)
    return path, "suite.yaml", ["decision.primary_metric", "'f1'", f"suite.yaml:{line_in(path, 'primary_metric:')}"]


def negative_usd_per_hour(s: dict, tmp: Path) -> Expect:
    s["economics"] = {"usd_per_hour": {"cpu": -0.5}}
    path = dump(tmp, s)
    return path, "suite.yaml", ["usd_per_hour", "cpu", "-0.5", f"suite.yaml:{line_in(path, 'economics:')}"]


def negative_model_price(s: dict, tmp: Path) -> Expect:
    s["economics"] = {"prices": {"gpt-4o-mini": {"input_per_1m_usd": -0.15}}}
    path = dump(tmp, s)
    return path, "suite.yaml", ["economics.prices.gpt-4o-mini.input_per_1m_usd", "-0.15",
                                f"suite.yaml:{line_in(path, 'input_per_1m_usd')}"]


def api_model_without_price(s: dict, tmp: Path) -> Expect:
    """An API model neither the price sheet nor the suite prices: refused before any paid call."""
    s["backends"].append({"name": "api", "kind": "openai", "model": "acme-llm-7", "config": {"base_url": "http://127.0.0.1:9"}})
    s["strategies"][0]["backend"] = "api"
    path = dump(tmp, s)
    return path, "suite.yaml", ["backends[1].model", "acme-llm-7", "input_per_1m_usd", "output_per_1m_usd",
                                f"suite.yaml:{line_in(path, 'acme-llm-7')}", "economics"]


def api_embedder_without_price(s: dict, tmp: Path) -> Expect:
    write_jsonl(tmp / "corpus.jsonl", [{"id": "d1", "title": "t", "text": "some text"}])
    s["strategies"].append({"name": "rag", "kind": "rag", "backend": "fake", "config": {
        "corpus": "corpus.jsonl", "embedder": {"kind": "openai", "model": "acme-embed-2", "base_url": "http://127.0.0.1:9"}}})
    path = dump(tmp, s)
    return path, "suite.yaml", ["strategies[2].config.embedder", "acme-embed-2", "usd_per_1m_tokens"]


def monthly_volume_zero(s: dict, tmp: Path) -> Expect:
    s["decision"] = {"monthly_requests": 0}
    path = dump(tmp, s)
    return path, "suite.yaml", ["decision.monthly_requests", "volume of 0", f"suite.yaml:{line_in(path, 'monthly_requests')}"]


def volume_range_reversed(s: dict, tmp: Path) -> Expect:
    s["decision"] = {"monthly_requests": [50000, 1000]}
    path = dump(tmp, s)
    return path, "suite.yaml", ["decision.monthly_requests", "low (50000) above high (1000)", "swap",
                                f"suite.yaml:{line_in(path, 'monthly_requests')}"]


def input_field_missing(s: dict, tmp: Path) -> Expect:
    s["task"]["input_field"] = "question"
    return dump(tmp, s), "train.jsonl", ["task.input_field", "question"]


def csv_row_with_extra_values(s: dict, tmp: Path) -> Expect:
    path = tmp / "data" / "train.csv"
    buffer = io.StringIO()
    csv.DictWriter(buffer, fieldnames=["id", "text", "label"], lineterminator="\n").writerows(
        [{"id": "id", "text": "text", "label": "label"}, *rows("train-", TRAIN_TEXTS)])
    body = buffer.getvalue().splitlines()
    body[4] = "train-4,Best purchase, I made this year,positive"  # line 5: unquoted comma
    path.write_text("\n".join(body) + "\n", encoding="utf-8")
    s["data"]["train"] = "data/train.csv"
    return dump(tmp, s), "train.csv", ["train.csv:5", "header"]


# Beyond the list above: two probes found while writing it.


def csv_target_not_in_labels(s: dict, tmp: Path) -> Expect:
    """Row errors in a CSV must point at the file line (the header is line 1), as they do for JSONL."""
    records = rows("train-", TRAIN_TEXTS)
    records[3]["label"] = "postive"  # data row 4 = file line 5
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["id", "text", "label"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    (tmp / "data" / "train.csv").write_text(buffer.getvalue(), encoding="utf-8")
    s["data"]["train"] = "data/train.csv"
    return dump(tmp, s), "train.csv", ["train.csv:5", "postive"]


def duplicate_yaml_key(s: dict, tmp: Path) -> Expect:
    """A key given twice must not silently keep the last value (a second `strategies:` would drop the first)."""
    path = dump(tmp, s)
    path.write_text(path.read_text(encoding="utf-8") + "seed: 9\n", encoding="utf-8")
    return path, "suite.yaml", ["seed", f"suite.yaml:{line_in(path, 'seed: 9')}"]


BAD_INPUTS: list[Callable[[dict, Path], Expect]] = [
    misspelt_top_level_key,
    unknown_key_in_strategy_config,
    wrong_type_repeats,
    unknown_strategy_kind,
    unknown_backend_kind,
    strategy_backend_misspelt,
    strategy_backend_unrelated,
    missing_data_file,
    directory_instead_of_file,
    malformed_jsonl_line,
    non_utf8_data,
    empty_test_split,
    duplicate_id_within_split,
    duplicate_id_across_splits,
    template_field_missing,
    few_shot_k_too_large,
    leakage_test_equals_train,
    target_not_in_labels,
    invalid_yaml_syntax,
    split_fractions_not_one,
    primary_metric_misspelt,
    primary_metric_unrelated,
    negative_usd_per_hour,
    negative_model_price,
    api_model_without_price,
    api_embedder_without_price,
    monthly_volume_zero,
    volume_range_reversed,
    input_field_missing,
    csv_row_with_extra_values,
    csv_target_not_in_labels,
    duplicate_yaml_key,
]


# ---- tests ---------------------------------------------------------------------------------------


def test_base_suite_is_valid(tmp_path: Path, home: Path) -> None:
    """The suite every bad case starts from validates, so each failure below is due to its one change."""
    result = harness("validate", str(dump(tmp_path, make_suite(tmp_path))), home=home)
    assert result.returncode == 0, result.stderr
    assert "train=12 dev=3 test=6" in result.stdout


@pytest.mark.parametrize("mutate", BAD_INPUTS, ids=[f.__name__ for f in BAD_INPUTS])
def test_bad_input_is_refused_with_a_useful_message(mutate, tmp_path: Path, home: Path) -> None:
    path, file_name, expected = mutate(make_suite(tmp_path), tmp_path)
    result = harness("validate", str(path), home=home)
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.returncode == 2, f"exit {result.returncode}\n{output}"
    assert file_name in result.stderr, f"file {file_name!r} not named:\n{output}"
    missing = [text for text in expected if text not in result.stderr]
    assert not missing, f"missing {missing} in:\n{output}"
    assert any(hint in result.stderr for hint in HINTS), f"no fix hint ({' / '.join(HINTS)}) in:\n{output}"
    assert not result.stdout.startswith("ok:"), output


def test_overlap_allowed_validates(tmp_path: Path, home: Path) -> None:
    """The leaking suite of `leakage_test_equals_train` passes once data.allow_overlap is set."""
    suite = make_suite(tmp_path)
    leakage_test_equals_train(suite, tmp_path)
    suite["data"]["allow_overlap"] = True
    result = harness("validate", str(dump(tmp_path, suite)), home=home)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "test=6" in result.stdout


def test_compare_refuses_bad_suite_before_writing_anything(tmp_path: Path, home: Path) -> None:
    suite = make_suite(tmp_path)
    suite["strategies"][1]["kind"] = "few_shoot"
    path = dump(tmp_path, suite)
    out = tmp_path / "run"
    work = tmp_path / "cwd"
    work.mkdir()
    result = harness("compare", str(path), "--out", str(out), home=home, cwd=work)
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
    result = harness("compare", str(dump(tmp_path, suite)), home=home, cwd=work)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert not (work / "runs").exists() or not any((work / "runs").rglob("*"))
    assert not list(tmp_path.rglob("cases.jsonl"))


COUNTS = {"quickstart": "train=300 dev=50 test=150", "squad_qa": "train=240 dev=40 test=120",
          "e2e_nlg": "train=300 dev=40 test=100"}
EXAMPLE_SUITES = sorted(str(p.relative_to(REPO / "suites")) for p in (REPO / "suites").glob("*/suite*.yaml"))


def test_every_example_suite_has_its_variants() -> None:
    assert EXAMPLE_SUITES == ["e2e_nlg/suite.gpu.yaml", "e2e_nlg/suite.yaml", "quickstart/suite.gpu.yaml",
                              "quickstart/suite.yaml", "squad_qa/suite.gpu.yaml", "squad_qa/suite.openai.yaml",
                              "squad_qa/suite.yaml"]


@pytest.mark.parametrize("suite", EXAMPLE_SUITES)
def test_the_example_suites_validate(suite: str, home: Path) -> None:
    result = harness("validate", str(REPO / "suites" / suite), home=home)
    assert result.returncode == 0, result.stderr
    assert COUNTS[suite.split("/")[0]] in result.stdout
    if suite.endswith("gpu.yaml"):  # GPU-only parts are named as such on a machine without one, not refused
        import torch

        assert ("needs an NVIDIA GPU (CUDA)" in result.stderr) != torch.cuda.is_available()


def test_the_openai_variants_estimate_in_its_readme_is_current(home: Path) -> None:
    result = harness("estimate", str(REPO / "suites" / "squad_qa" / "suite.openai.yaml"), home=home)
    assert result.returncode == 0, result.stderr
    readme = (REPO / "suites" / "squad_qa" / "README.md").read_text()
    assert result.stdout.strip() in readme, "regenerate the estimate block in suites/squad_qa/README.md"


def test_schema_is_json_with_the_main_sections(home: Path) -> None:
    result = harness("schema", home=home)
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert {"name", "task", "data", "strategies"} <= set(schema["properties"])


def test_list_shows_builtins(home: Path) -> None:
    result = harness("list", home=home)
    assert result.returncode == 0, result.stderr
    for kind in ("fake", "hf", "zero_shot", "few_shot", "label_accuracy"):
        assert kind in result.stdout, f"{kind} missing from:\n{result.stdout}"


def test_init_writes_a_valid_suite_and_refuses_to_overwrite(tmp_path: Path, home: Path) -> None:
    subjects = ["phone", "laptop", "kettle", "chair", "lamp", "bike", "jacket", "printer", "camera", "desk",
                "blender", "mouse", "router", "watch", "speaker", "toaster", "tent", "backpack", "monitor", "sofa"]
    moods = {"positive": "I really love the {} I bought", "negative": "The {} I bought is a total letdown",
             "neutral": "The {} I bought came in a box"}
    records = [{"id": f"r{len(moods) * i + j}", "text": template.format(subject), "label": label}
               for i, subject in enumerate(subjects) for j, (label, template) in enumerate(moods.items())]
    assert len(records) == 60 and len({r["text"] for r in records}) == 60
    data = tmp_path / "cases.jsonl"
    write_jsonl(data, records)
    target = tmp_path / "my-suite"

    created = harness("init", str(target), "--from", str(data), home=home)
    assert created.returncode == 0, created.stdout + created.stderr
    suite_file = target / "suite.yaml"
    assert suite_file.is_file()
    written = yaml.safe_load(suite_file.read_text(encoding="utf-8"))
    assert sorted(written["task"]["labels"]) == sorted(LABELS)

    checked = harness("validate", str(suite_file), home=home)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.startswith("ok:")

    before = suite_file.read_text(encoding="utf-8")
    again = harness("init", str(target), "--from", str(data), home=home)
    assert again.returncode == 2, again.stdout + again.stderr
    assert "already exists" in again.stderr and "--force" in again.stderr
    assert "Traceback" not in again.stderr
    assert suite_file.read_text(encoding="utf-8") == before

    forced = harness("init", str(target), "--from", str(data), "--force", home=home)
    assert forced.returncode == 0, forced.stdout + forced.stderr
