"""Import weight and layering rules a user (and the rest of the code) relies on."""

from __future__ import annotations

import ast
import subprocess
import sys

from tests.conftest import REPO

HEAVY = ["torch", "transformers", "openai", "langchain", "ragas", "streamlit", "peft", "trl", "sklearn"]


def test_import_harness_stays_light():
    code = (
        "import sys, harness, harness.cli, harness.run.compare, harness.suite.load, harness.suite.schema\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "", f"heavy modules imported by `import harness`: {out.stdout}"


def test_validate_does_not_load_a_model_library():
    code = (
        "import sys\nfrom harness.suite.load import load_suite\n"
        "load_suite('suites/quickstart/suite.yaml')\n"
        "print(','.join(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == ""


def test_harness_never_imports_strategies_or_reports():
    offenders = []
    for path in (REPO / "harness").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in ("strategies", "reports")]
    assert offenders == []


def test_every_builtin_component_loads_and_has_a_strict_config():
    from harness.builtins import ALL

    for section, registry in ALL.items():
        for kind in registry.kinds():
            cls = registry.get(kind)
            assert cls.kind == kind, f"{section}: {kind} -> {cls}"
            assert cls.Config.model_config.get("extra") == "forbid"


def test_a_broken_plugin_is_reported_not_fatal(monkeypatch):
    from harness.errors import ConfigError
    from harness.registry import Registry

    reg = Registry("scorer", "harness.test-none", {"good": "harness.scoring.text:ExactMatch"})
    reg.register("broken", "no_such_module:Thing")
    assert reg.get("good").kind == "exact_match"
    try:
        reg.get("broken")
    except ConfigError as exc:
        assert "could not be loaded" in str(exc) and "broken" in str(exc)
    else:
        raise AssertionError("a broken plugin must raise ConfigError")
