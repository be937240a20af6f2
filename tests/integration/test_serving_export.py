"""The handover to a serving engine: `harness tune --serve-out` writes the fine-tune a run chose as a folder an
OpenAI-compatible engine loads on its own (merged model, or adapter beside its base), and that engine, compared
through the `openai` backend with `base_url`, answers exactly as the fine-tune did inside the run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from harness.run.compare import CompareOptions, compare
from tests.conftest import assert_refused, harness_cli, write_suite
from tests.fake_openai import FakeOpenAI, Script, model_chat
from tests.integration.test_finetune import ft_suite

KEY = "sk-served-0000"


def _outputs(run_dir: Path, strategy: str) -> dict[str, str]:
    rows = [json.loads(x) for x in (run_dir / "cases.jsonl").read_text().splitlines()]
    return {r["case_id"]: r["output"] for r in rows if r["strategy"] == strategy}


def _engine(folder: Path, dtype: str, base: Path | None = None):
    """What vLLM does with the folder: load it from disk alone (merged), or the base with the adapter on top, in the
    precision the run answered in (`--dtype`)."""
    from harness.backends.hf import HFBackend, HFConfig
    from harness.suite.schema import BackendSpec, GenerationParams

    generation = GenerationParams(max_new_tokens=4)
    if base is None:
        spec = BackendSpec(name="engine", kind="hf", model=str(folder), generation=generation)
        return HFBackend(spec, HFConfig(dtype=dtype))
    spec = BackendSpec(name="engine", kind="hf", model=str(base), generation=generation)
    return HFBackend(spec, HFConfig(adapter=str(folder), dtype=dtype))


@pytest.mark.slow  # a training, two exports and two served compares on the embedded model
def test_the_chosen_fine_tune_is_served_by_an_openai_compatible_engine_with_the_same_answers(
    embedded_model_dir, tmp_path, monkeypatch
):
    # The real small model: a random tiny one answers the same blank text before and after training, so it could
    # not tell an exported fine-tune from its base.
    path = write_suite(tmp_path / "s", ft_suite(embedded_model_dir, epochs=2, learning_rate=2e-3))
    home = tmp_path / "harness-home"  # the one compare uses here (tests/conftest.py), so the CLI finds its training
    record, _ = compare(path, CompareOptions(out=tmp_path / "run"))
    chosen = record.strategies["ft"].setup.given.chosen
    in_run = _outputs(tmp_path / "run", "ft")
    assert len(in_run) == 9 and in_run != _outputs(tmp_path / "run", "zero")  # the base model answers otherwise

    merged = tmp_path / "serve-merged"
    done = harness_cli("tune", str(path), "--serve-out", str(merged), "--run", str(tmp_path / "run"), home=home)
    assert done.returncode == 0, done.stderr
    assert f"epoch {chosen.epoch:g}" in done.stdout and "parity: 6/6" in done.stdout
    written = json.loads((merged / "harness-export.json").read_text())
    assert written["checkpoint"]["step"] == chosen.step and written["format"] == "merged"
    assert {"config.json", "model.safetensors", "tokenizer.json", "SERVING.md"} <= {p.name for p in merged.iterdir()}
    assert not list(merged.glob("adapter_*"))  # one model folder, nothing peft-specific
    assert "vllm serve" in (merged / "SERVING.md").read_text()

    # The engine loads the folder alone; the suite compares it like any provider, through base_url.
    assert written["dtype"] == record.strategies["ft"].setup.serving["dtype"]  # as the run answered with it
    assert f"--dtype {written['dtype']}" in (merged / "SERVING.md").read_text()
    engine = _engine(merged, written["dtype"])
    monkeypatch.setenv("SERVED_API_KEY", KEY)
    with FakeOpenAI(Script(chat=model_chat(engine))) as url:
        served = yaml.safe_load(path.read_text())
        served["backends"] = [
            {
                "name": "served",
                "kind": "openai",
                "model": "ft",
                "generation": {"max_new_tokens": 4, "temperature": 0},
                "config": {"base_url": url, "api_key_env": "SERVED_API_KEY", "concurrency": 2},
            }
        ]
        served["strategies"] = [{"name": "ft-served", "kind": "zero_shot"}]
        served["economics"]["prices"] = {"ft": {"input_per_1m_usd": 0, "output_per_1m_usd": 0}}
        served_path = write_suite(tmp_path / "served", served)
        compare(served_path, CompareOptions(out=tmp_path / "served-run"))
    engine.close()
    assert _outputs(tmp_path / "served-run", "ft-served") == in_run  # every test case, same text

    # The adapter layout: vLLM's --lora-modules / TGI's LORA_ADAPTERS load it on the base it names.
    adapter = tmp_path / "serve-adapter"
    done = harness_cli(
        "tune", str(path), "--serve-out", str(adapter), "--format", "adapter", "--run", str(tmp_path / "run"), home=home
    )
    assert done.returncode == 0, done.stderr
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert Path(config["base_model_name_or_path"]) == Path(embedded_model_dir)
    assert (adapter / "adapter_model.safetensors").exists() and "--lora-modules" in (adapter / "SERVING.md").read_text()
    engine = _engine(adapter, written["dtype"], base=Path(config["base_model_name_or_path"]))
    with FakeOpenAI(Script(chat=model_chat(engine))) as url:
        served["backends"][0]["config"]["base_url"] = url
        compare(write_suite(tmp_path / "served2", served), CompareOptions(out=tmp_path / "served-run2"))
    engine.close()
    assert _outputs(tmp_path / "served-run2", "ft-served") == in_run

    # Bad input: a run folder without that fine-tune, a folder holding other files, an unknown format.
    zero_only = tmp_path / "zero-run"
    compare(path, CompareOptions(out=zero_only, strategies=["zero"], limit=1))
    refused = harness_cli("tune", str(path), "--serve-out", str(tmp_path / "x"), "--run", str(zero_only), home=home)
    assert_refused(refused, "run.json", "strategies.ft", "no finished fine-tune")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    refused = harness_cli("tune", str(path), "--serve-out", str(busy), "--run", str(tmp_path / "run"), home=home)
    assert_refused(refused, str(busy), "other files")
    assert (busy / "notes.txt").read_text() == "mine"
    refused = harness_cli("tune", str(path), "--serve-out", str(tmp_path / "y"), "--format", "gguf", home=home)
    assert_refused(refused, "--format gguf", "merged or adapter")
