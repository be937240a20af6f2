"""The bad-input corpus (tests/bad_inputs/): each folder is a broken suite or data file, run through the real CLI.

Every case must end with exit code 2 and a message that names the file, points at the field or the line, hints at
the fix and shows no traceback; a `harness compare` case must also leave no results behind. Each folder's
expect.yaml says what the message must name (see tests/bad_inputs/README.md). The figures are reported at the end
of the run as the "bad-input corpus" line.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import harness_cli, report_check

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "bad_inputs"
CASES = sorted(p.name for p in CORPUS.iterdir() if p.is_dir() and not p.name.startswith("_"))
HINTS = ("Fix", "Did you mean", "Allowed")
COMMANDS = ("validate", "compare", "estimate")
# What the corpus must cover (issue 10), each by at least one case; cases may add categories of their own.
REQUIRED_CATEGORIES = {
    "unknown_key",
    "misspelt_key",
    "wrong_type",
    "missing_file",
    "empty_split",
    "duplicate_id",
    "broken_jsonl",
    "broken_csv",
    "non_utf8",
    "huge_case",
    "template_field",
    "negative_price",
    "impossible_budget",
    "unknown_component",
    "leakage",
    "path_outside",
    "symlink",
    "yaml_shape",
    "label",
    "reference",
    "data_size",
}
FIGURES = ("exit_2", "named_file", "named_field_or_line", "fix_hint", "no_traceback", "nothing_written")


def expectation(name: str) -> dict[str, Any]:
    return yaml.safe_load((CORPUS / name / "expect.yaml").read_text(encoding="utf-8"))


def materialise(name: str, where: Path) -> Path:
    """A copy of the case folder with its `setup` steps done (symbolic links, generated large fields)."""
    folder = where / name
    shutil.copytree(CORPUS / name, folder, symlinks=True)
    for step in expectation(name).get("setup") or []:
        if "symlink" in step:
            link = folder / step["symlink"]
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(step["to"])
        elif "expand" in step:
            path = folder / step["expand"]
            big = step["repeat"] * step["times"]
            path.write_text(path.read_text(encoding="utf-8").replace(step["placeholder"], big), encoding="utf-8")
        else:
            raise AssertionError(f"{name}/expect.yaml: unknown setup step {step}")
    return folder


# ---- the corpus ----------------------------------------------------------------------------------------------

RESULTS: dict[str, dict[str, bool]] = {}


@pytest.fixture(scope="module", autouse=True)
def _report_figures():
    """One summary line for the whole corpus, once its cases have run."""
    yield
    if RESULTS:
        report_check(
            "bad-input corpus",
            cases=len(RESULTS),
            **{figure: sum(r[figure] for r in RESULTS.values()) for figure in FIGURES},
        )


@pytest.mark.slow  # the CLI, 95 times: the whole battery runs in `make test`; the quick loop keeps the checks below
@pytest.mark.parametrize("name", CASES)
def test_bad_input_is_refused_with_a_useful_message(name: str, tmp_path: Path) -> None:
    expect = expectation(name)
    folder = materialise(name, tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    command = expect.get("command", "validate")
    args = [command, str(folder / expect.get("suite", "suite.yaml"))]
    if command == "compare":
        args += ["--out", str(tmp_path / "run")]
    result = harness_cli(*args, home=tmp_path / "home", cwd=work, timeout=120)
    err = result.stderr
    file = expect["file"]
    written = [p for p in tmp_path.rglob("cases.jsonl") if p.stat().st_size] if command == "compare" else []
    checks = {
        "exit_2": result.returncode == 2,
        "named_file": file in err,
        "named_field_or_line": (
            ("line" not in expect or f"{file}:{expect['line']}" in err)
            and ("field" not in expect or expect["field"] in err)
        ),
        "fix_hint": any(hint in err for hint in HINTS),
        "no_traceback": "Traceback" not in result.stdout + err,
        "nothing_written": not written and not result.stdout.startswith("ok:"),
    }
    RESULTS[name] = checks
    missing = [text for text in expect.get("contains") or [] if text not in err]
    failed = [figure for figure, ok in checks.items() if not ok]
    assert not failed and not missing, (
        f"{name} ({expect['about']}): failed {failed}, missing {missing}; expected {file}"
        f"{':' + str(expect['line']) if 'line' in expect else ''} {expect.get('field', '')}\n"
        f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{err}\nwritten: {written}"
    )


def test_the_corpus_covers_every_category() -> None:
    assert len(CASES) >= 40, CASES
    problems, categories = [], set()
    for name in CASES:
        expect = expectation(name)
        categories.add(expect.get("category"))
        if not expect.get("about") or not expect.get("file"):
            problems.append(f"{name}: expect.yaml needs `about` and `file`")
        if "line" not in expect and "field" not in expect:
            problems.append(f"{name}: expect.yaml names neither a `line` nor a `field`")
        if expect.get("command", "validate") not in COMMANDS:
            problems.append(f"{name}: command must be one of {COMMANDS}")
    assert not problems, "\n".join(problems)
    assert not REQUIRED_CATEGORIES - categories, f"no case for {sorted(REQUIRED_CATEGORIES - categories)}"
    assert any(expectation(n).get("command") == "compare" for n in CASES), "no case runs harness compare"


def test_the_suite_the_cases_start_from_is_valid(tmp_path: Path) -> None:
    """So each case fails for the one thing it breaks."""
    result = harness_cli("validate", str(CORPUS / "_valid"), home=tmp_path / "home", cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "train=12 dev=3 test=6" in result.stdout


# ---- where the refusals stop: what stays accepted -------------------------------------------------------------


def valid_copy(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    folder = tmp_path / "suite"
    shutil.copytree(CORPUS / "_valid", folder)
    return folder, yaml.safe_load((folder / "suite.yaml").read_text(encoding="utf-8"))


def validate(folder: Path, suite: dict[str, Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    (folder / "suite.yaml").write_text(yaml.safe_dump(suite, sort_keys=False), encoding="utf-8")
    return harness_cli("validate", str(folder), home=tmp_path / "home", cwd=tmp_path, timeout=120)


def test_data_outside_the_suite_folder_is_accepted_by_its_absolute_path(tmp_path: Path) -> None:
    folder, suite = valid_copy(tmp_path)
    elsewhere = tmp_path / "shared" / "train.jsonl"
    elsewhere.parent.mkdir()
    shutil.move(folder / "data" / "train.jsonl", elsewhere)
    suite["data"]["train"] = str(elsewhere)
    result = validate(folder, suite, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_symbolic_link_inside_the_suite_folder_is_accepted(tmp_path: Path) -> None:
    folder, suite = valid_copy(tmp_path)
    (folder / "data" / "train.jsonl").rename(folder / "data" / "train-2024-05.jsonl")
    (folder / "data" / "train.jsonl").symlink_to("train-2024-05.jsonl")
    result = validate(folder, suite, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_long_fields_under_the_limit_are_accepted_in_csv_as_in_jsonl(tmp_path: Path) -> None:
    """Python's csv module stops at 131,072 characters a field; the harness's one limit is data.max_field_chars."""
    folder, suite = valid_copy(tmp_path)
    lines = (folder / "data" / "train.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    records[0]["text"] = "so good " * 25_000  # 200,000 characters
    with (folder / "data" / "train.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["id", "text", "label"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
    suite["data"]["train"] = "data/train.csv"
    result = validate(folder, suite, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    suite["data"]["max_field_chars"] = 150_000
    result = validate(folder, suite, tmp_path)
    assert result.returncode == 2 and "train.csv:2" in result.stderr and "200,000 characters" in result.stderr, (
        result.stdout + result.stderr
    )
