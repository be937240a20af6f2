"""`harness init --template`: the example suites copied as starting points, and shipped in the wheel."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.commands.init import list_templates, templates_root
from tests.conftest import REPO

TEMPLATES = ["e2e_nlg", "labelling_guide", "quickstart", "squad_qa"]


def harness(*args: str):
    return CliRunner().invoke(app, list(args))


def assert_refused(result, *expected: str) -> None:
    """Exit 2 with the message and a fix on stderr, not a traceback."""
    assert result.exit_code == 2, f"exit {result.exit_code}\n{result.output}"
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    missing = [e for e in expected if e not in result.stderr]
    assert not missing, f"missing {missing} in:\n{result.stderr}"
    assert "Fix" in result.stderr, result.stderr


@pytest.mark.parametrize("name", TEMPLATES)
def test_a_template_copies_into_a_suite_that_validates(name: str, tmp_path: Path) -> None:
    target = tmp_path / "my-suite"
    created = harness("init", str(target), "--template", name)
    assert created.exit_code == 0, created.output
    assert f"harness validate {target}" in created.stdout
    assert (target / "README.md").is_file() and (target / "suite.yaml").is_file()
    data = sorted(p.name for p in (target / "data").iterdir())
    assert {"train.jsonl", "dev.jsonl", "test.jsonl"} <= set(data)

    validated = harness("validate", str(target))
    assert validated.exit_code == 0, validated.output
    assert validated.stdout.startswith(f"ok: {target / 'suite.yaml'}")


def test_the_copy_carries_suite_variants_and_leaves_run_leftovers(tmp_path: Path) -> None:
    root = tmp_path / "templates"
    source = root / "demo"
    (source / "data").mkdir(parents=True)
    (source / "suite.yaml").write_text("name: demo\n")
    (source / "suite.gpu.yaml").write_text("name: demo-gpu\n")
    (source / "README.md").write_text("# demo: a tiny task\n\nMore words.\n")
    (source / "data" / "test.jsonl").write_text("{}\n")
    (source / "__pycache__").mkdir()
    (source / "__pycache__" / "build_data.cpython-311.pyc").write_bytes(b"")
    (source / "my-run").mkdir()
    (source / "my-run" / "run.json").write_text("{}")
    (root / "not_a_suite").mkdir()

    [template] = list_templates(root)
    assert (template.name, template.description, template.suite_files) == (
        "demo",
        "a tiny task",
        ("suite.yaml", "suite.gpu.yaml"),
    )

    from harness.commands.init import copy_template

    copy_template(tmp_path / "copy", "demo", root=root)
    copied = sorted(str(p.relative_to(tmp_path / "copy")) for p in (tmp_path / "copy").rglob("*"))
    assert copied == ["README.md", "data", "data/test.jsonl", "suite.gpu.yaml", "suite.yaml"]


def test_an_existing_folder_is_refused_unless_forced(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.mkdir()
    (target / "notes.txt").write_text("mine")

    refused = harness("init", str(target), "--template", "quickstart")
    assert_refused(refused, str(target), "--force")
    assert not (target / "suite.yaml").exists()

    forced = harness("init", str(target), "--template", "quickstart", "--force")
    assert forced.exit_code == 0, forced.output
    assert (target / "suite.yaml").is_file() and (target / "notes.txt").read_text() == "mine"

    empty = tmp_path / "empty"
    empty.mkdir()
    assert harness("init", str(empty), "--template", "quickstart").exit_code == 0


def test_an_unknown_template_names_the_available_ones(tmp_path: Path) -> None:
    result = harness("init", str(tmp_path / "s"), "--template", "quickstrat")
    assert_refused(result, "quickstrat", "Did you mean 'quickstart'", *TEMPLATES)
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["--template", "quickstart", "--from", "cases.jsonl"],  # both
        [],  # neither
    ],
    ids=["both", "neither"],
)
def test_init_needs_exactly_one_of_from_and_template(args: list[str], tmp_path: Path) -> None:
    assert_refused(harness("init", str(tmp_path / "s"), *args), "--from", "--template")
    assert not (tmp_path / "s").exists()


def test_list_templates_describes_each_one_with_its_suite_files() -> None:
    result = harness("init", "--list-templates")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    for name in TEMPLATES:
        [line] = [line for line in lines if line.startswith(name + " ")]
        assert len(line.split(None, 1)[1]) > 10, line  # a description from the README's heading
    assert any(x.startswith("quickstart ") and x.endswith(" SNIPS intent classification") for x in lines)
    assert result.stdout.count("suite files: suite.yaml") == len(TEMPLATES)


def test_in_a_checkout_the_templates_are_the_repo_suites() -> None:
    assert templates_root() == REPO / "suites"
    assert [t.name for t in list_templates()] == TEMPLATES


def test_every_code_folder_is_a_listed_package() -> None:
    """pyproject.toml lists its packages (so that suites/ ships as harness/templates), so without this a new
    folder of code would be left out of the wheel unnoticed."""
    from setuptools.config.pyprojecttoml import read_configuration  # the reader the build itself uses (any Python)

    config = read_configuration(REPO / "pyproject.toml", expand=False)["tool"]["setuptools"]
    code_folders = {
        ".".join(py.parent.relative_to(REPO).parts)
        for top in ("harness", "strategies", "reports")
        for py in (REPO / top).rglob("*.py")
        if "__pycache__" not in py.parts
    }
    assert code_folders - set(config["packages"]) == set()
    assert config["package-dir"] == {"harness.templates": "suites"}


@pytest.mark.parametrize("name", TEMPLATES)
def test_a_copied_templates_rebuild_script_stands_on_its_own(name: str, tmp_path: Path) -> None:
    """The copy's build_data.py needs nothing from the repo's other suites: its --help runs from the copy."""
    import subprocess
    import sys

    assert harness("init", str(tmp_path / "copy"), "--template", name).exit_code == 0
    proc = subprocess.run(
        [sys.executable, str(tmp_path / "copy" / "build_data.py"), "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--sdist" in proc.stdout
